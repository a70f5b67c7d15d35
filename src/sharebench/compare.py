"""Compare two runs: is the current run slower than the baseline, beyond noise?

Statistics as pure functions over the DataFrames that :func:`sharebench.results.read_summary`
and :func:`sharebench.results.read_rounds` return; no file is read or written here.

Per benchmark (matched by :data:`sharebench.results.BENCHMARK_KEY`), from the per-round
throughputs of both runs:

* medians and their ratio ``current / baseline`` (> 1 = faster);
* a 99 % percentile-bootstrap confidence interval of that ratio (2000 resamples, seeded per
  benchmark so a benchmark's interval does not depend on which others are present);
* the two-sided Mann-Whitney U p-value (exact when there are no ties, else asymptotic), then
  Holm's step-down correction across every benchmark compared;
* a verdict: ``faster`` / ``slower`` (significant after correction), ``same``, or
  ``insufficient data`` when the sample sizes cannot reach ``alpha`` after correction even for
  perfectly separated rounds — so three rounds never turn into a false "same" or regression.

A **regression** is ``slower`` *and* beyond the threshold: each operation takes more than
``1 + threshold`` times as long (``ratio < 1 / (1 + threshold)``); ``--threshold 100%`` gates
on a 2x slowdown only.

Noise floor. Rounds of one run are not independent draws of "the machine": on a shared machine
the speed drifts between runs more than between the rounds of one run (the suite spreads each
benchmark over passes, 2 quick and 3 full, to let its rounds see that drift, but a run still
has its own luck). Each comparison therefore measures the run-to-run noise it is looking at:
``sigma_run`` is the robust spread (1.4826 x median absolute deviation) of the log ratios of
*all* compared benchmarks — most benchmarks do not change between two runs, so their spread is
the noise. A regression must also be slower than ``exp(k * sigma_run)``, ``k = noise`` (3.5 by
default; 0 turns the floor off). A uniform slowdown of everything does not widen the floor
(the spread is taken around the median), so it is still caught; with fewer than
:data:`MIN_FOR_NOISE` benchmarks compared ``sigma_run`` is taken as 0.

A change that slows *most* benchmarks by different amounts would widen that spread and hide
itself, so ``sigma_run`` is capped by what the runs themselves show: the spread between the
passes of each run (:func:`drift_noise`), which no change between the runs can inflate
(:data:`NO_DRIFT_CAP` when the runs have one pass). A benchmark whose own passes jump (a
contended lock on more processes than cores can switch between a fast and a slow mode for
a whole pass) gets a floor from its own pass-to-pass spread when that is wider.

Compare CSV format history (bump :data:`COMPARE_SCHEMA_VERSION` on any change a reader could
notice):

* 1 — first version: see :data:`COMPARE_COLUMNS`.
* 2 — ``noise`` (the k of the noise floor), ``run_noise`` (sigma_run) and per-row
  ``noise_floor`` (the slowdown, as a fraction of time per op, that noise can explain).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sharebench import fmt
from sharebench.errors import ResultsError
from sharebench.fmt import fraction_pct
from sharebench.normalize import (
    Key,
    Normalization,
    RunIdentity,
    decide_normalization,
    is_reference,
    key_of,
    pick_reference,
    records,
    reference_throughputs,
    round_values,
    run_identity,
)
from sharebench.rules import RegressionRule
from sharebench.schema import BENCHMARK_KEY, benchmark_id
from sharebench.stats import (
    RESAMPLES,
    bootstrap_ratio_ci,
    has_ties,
    holm,
    mann_whitney_p,
    min_attainable_p,
    noise_floors,
)
from sharebench.status import Status

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    FloatArray = npt.NDArray[np.float64]

STATUS_OK = str(Status.OK)

COMPARE_SCHEMA_VERSION = 2

#: Fewer compared benchmarks than this give no usable estimate of the run-to-run spread.
MIN_FOR_NOISE = 8
#: The cap on sigma_run when the runs carry no pass information (one pass each): +-10 %.
NO_DRIFT_CAP = 0.1

#: Verdicts of compared benchmarks, and of benchmarks that are only listed.
FASTER = "faster"
SLOWER = "slower"
SAME = "same"
INSUFFICIENT = "insufficient data"
ONLY_BASELINE = "only in baseline"
ONLY_CURRENT = "only in current"
NOT_COMPARED = "not compared"
#: ok in the baseline, an error now: the change broke the benchmark (exit 1, like a regression).
FAILED_NOW = "failed now"
COMPARED_VERDICTS: tuple[str, ...] = (FASTER, SLOWER, SAME, INSUFFICIENT)


COMPARE_COLUMNS: tuple[str, ...] = (
    "schema_version",
    "baseline_run_id",
    "current_run_id",
    # identity
    "benchmark",
    *BENCHMARK_KEY,
    # parameters of the comparison (the same on every row)
    "normalize",
    "machine_ratio",
    "threshold",
    "alpha",
    "noise",
    "run_noise",
    # metrics
    "baseline_rounds",
    "current_rounds",
    "baseline_median_ops_s",
    "current_median_ops_s",
    "ratio",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "p_floor",
    "noise_floor",
    "verdict",
    "regression",
    "note",
)


def _seed_for(name: str) -> list[int]:
    """A fixed seed per benchmark: its interval does not depend on the other benchmarks."""
    return [20261126, zlib.crc32(name.encode("utf-8"))]


def pass_spread(rounds: pd.DataFrame) -> dict[Key, float]:
    """Per benchmark with rounds from at least two passes: the standard deviation of the
    log median throughput of its passes — the run's own drift, whatever another run did."""
    import numpy as np

    out: dict[Key, float] = {}
    logs = rounds.assign(_log=np.log(rounds["throughput_ops_s"].to_numpy(dtype="float64")))
    medians = logs.groupby([*BENCHMARK_KEY, "pass"], sort=False)["_log"].median()
    for key, group in medians.groupby(level=list(range(len(BENCHMARK_KEY))), sort=False):
        if group.size >= 2:
            out[tuple(key)] = float(group.std(ddof=1))  # type: ignore[arg-type]  # a MultiIndex level tuple
    return out


def _check_pair(summary: pd.DataFrame, rounds: pd.DataFrame, name: str) -> None:
    """The rounds file must belong to the same run as the summary (not a stale leftover)."""
    s_ids = set(summary["run_id"].astype(str))
    r_ids = set(rounds["run_id"].astype(str))
    if not r_ids <= s_ids:
        raise ResultsError(
            f"{name} rounds belong to run {', '.join(sorted(r_ids - s_ids))}, the summary to "
            f"{', '.join(sorted(s_ids))}: the rounds file is stale"
        )


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare_runs`: one row per benchmark plus how it was compared."""

    table: pd.DataFrame
    baseline: RunIdentity
    current: RunIdentity
    normalization: Normalization
    rule: RegressionRule
    #: sigma_run: robust spread of the log ratios (see the module docstring).
    run_noise: float = 0.0
    #: The cap on sigma_run from each run's own pass-to-pass drift.
    drift: float = math.nan

    @property
    def compared(self) -> pd.DataFrame:
        """Rows that were tested (verdict faster, slower, same or insufficient data)."""
        return self.table[self.table["verdict"].isin(COMPARED_VERDICTS)]

    @property
    def regressions(self) -> pd.DataFrame:
        """Rows flagged as regressions."""
        return self.table[self.table["regression"].astype(bool)]

    def listed(self, verdict: str) -> list[str]:
        """Benchmark names with a listing verdict (only in baseline/current, not compared)."""
        return [str(b) for b in self.table.loc[self.table["verdict"] == verdict, "benchmark"]]

    @property
    def exit_code(self) -> int:
        """1 if any regression or any benchmark that was ok and fails now, else 0."""
        failed = (self.table["verdict"] == FAILED_NOW).any()
        return 1 if len(self.regressions) or failed else 0


def _name(row: Mapping[str, Any]) -> str:
    name = str(row.get("benchmark", "") or "")
    if name:
        return name
    return benchmark_id(
        str(row["mechanism"]),
        str(row["sync"]),
        str(row["operation"]),
        int(row["processes"]),
        str(row["start_method"]),
        int(row["payload_bytes"]),
    )


def compare_runs(
    baseline_summary: pd.DataFrame,
    baseline_rounds: pd.DataFrame,
    current_summary: pd.DataFrame,
    current_rounds: pd.DataFrame,
    *,
    rule: RegressionRule | None = None,
    normalize: str = "auto",
    resamples: int = RESAMPLES,
) -> Comparison:
    """Compare two runs benchmark by benchmark; raise :class:`ResultsError` if impossible.

    Benchmarks are matched by ``BENCHMARK_KEY``. Those in one run only, and those whose status
    is not ok in either run, are listed in the table but not tested. With normalisation on,
    the reference benchmark itself is listed as not compared: it is the yardstick.
    """
    import numpy as np
    import pandas as pd

    rule = rule or RegressionRule()
    _check_pair(baseline_summary, baseline_rounds, "baseline")
    _check_pair(current_summary, current_rounds, "current")
    base_id, cur_id = run_identity(baseline_summary), run_identity(current_summary)
    base_refs = reference_throughputs(baseline_summary, baseline_rounds)
    cur_refs = reference_throughputs(current_summary, current_rounds)
    norm = decide_normalization(normalize, base_id, cur_id, base_refs, cur_refs)
    base_values = round_values(baseline_rounds)
    cur_values = round_values(current_rounds)

    base_rows = {key_of(r): r for r in records(baseline_summary)}
    cur_rows = {key_of(r): r for r in records(current_summary)}
    keys = list(base_rows) + [k for k in cur_rows if k not in base_rows]
    if not any(k in cur_rows for k in base_rows):
        raise ResultsError(
            f"no common benchmarks: baseline has {len(base_rows)}, current has {len(cur_rows)}, "
            f"none match on {', '.join(BENCHMARK_KEY)}"
        )

    rows: list[dict[str, Any]] = []
    tested: list[tuple[int, FloatArray, FloatArray]] = []
    tested_keys: list[Key] = []
    for key in keys:
        b, c = base_rows.get(key), cur_rows.get(key)
        some = b if b is not None else c
        assert some is not None
        row: dict[str, Any] = dict.fromkeys(COMPARE_COLUMNS, math.nan)
        row.update(
            schema_version=COMPARE_SCHEMA_VERSION,
            baseline_run_id=base_id.run_id,
            current_run_id=cur_id.run_id,
            benchmark=_name(some),
            **{col: some[col] for col in BENCHMARK_KEY},
            normalize=norm.mode,
            machine_ratio=norm.machine_ratio,
            threshold=rule.threshold,
            alpha=rule.alpha,
            noise=rule.noise,
            regression=False,
            note="",
        )
        rows.append(row)
        if b is None or c is None:
            row["verdict"] = ONLY_CURRENT if b is None else ONLY_BASELINE
            continue
        if b["status"] == STATUS_OK and Status.parse(str(c["status"])).is_error:
            row["verdict"] = FAILED_NOW
            row["note"] = f"ok in the baseline, now {c['status']}"
            continue
        if b["status"] != STATUS_OK or c["status"] != STATUS_OK:
            row["verdict"] = NOT_COMPARED
            row["note"] = f"status baseline: {b['status']}; current: {c['status']}"
            continue
        if norm.applied and is_reference(b):
            row["verdict"] = NOT_COMPARED
            row["note"] = "reference benchmark: the yardstick of normalisation"
            continue
        x, y = base_values.get(key), cur_values.get(key)
        if x is None or y is None or x.size == 0 or y.size == 0:
            row["verdict"] = NOT_COMPARED
            which = "baseline" if x is None or x.size == 0 else "current"
            row["note"] = f"no rounds in the {which} rounds file"
            continue
        for run, values in (("baseline", x), ("current", y)):
            if not (np.isfinite(values).all() and (values > 0).all()):
                raise ResultsError(
                    f"{run} benchmark {row['benchmark']}: round throughput must be a positive "
                    "number in every round"
                )
        if norm.applied:
            sm = str(b["start_method"])
            x = x / pick_reference(norm.baseline_refs, sm)
            y = y / pick_reference(norm.current_refs, sm)
        tested.append((len(rows) - 1, x, y))
        tested_keys.append(key)

    if not tested and not any(r["verdict"] == FAILED_NOW for r in rows):
        raise ResultsError(
            f"no benchmark could be compared: {len(rows)} listed, none ok in both runs "
            "with rounds in both rounds files"
        )
    pvalues = []
    for i, x, y in tested:
        row = rows[i]
        med_x, med_y = float(np.median(x)), float(np.median(y))
        lo, hi = bootstrap_ratio_ci(x, y, resamples=resamples, seed=_seed_for(row["benchmark"]))
        p = mann_whitney_p(x, y)
        row.update(
            baseline_rounds=len(x),
            current_rounds=len(y),
            baseline_median_ops_s=med_x,
            current_median_ops_s=med_y,
            ratio=med_y / med_x,
            ci_low=lo,
            ci_high=hi,
            p_value=p,
        )
        pvalues.append(p)
    adjusted = holm(pvalues)
    family = len(tested)
    drift, own_drift = drift_noise(baseline_rounds, current_rounds, tested_keys)
    run_noise, floors_b = noise_floors([x for _, x, _ in tested], [y for _, _, y in tested],
                                       rule.noise, cap=drift, own=own_drift,
                                       min_count=MIN_FOR_NOISE)
    # Holm multiplies the smallest p by the family size, and no p can be below its own floor:
    # a benchmark whose adjusted p can never reach alpha gets "insufficient data".
    floors = [min_attainable_p(len(x), len(y), has_ties(x, y)) for _, x, y in tested]
    global_floor = min(floors, default=1.0) * family
    for (i, _x, _y), p_adj, floor, noise_floor in zip(
        tested, adjusted, floors, floors_b, strict=True
    ):
        row = rows[i]
        row["p_holm"] = float(p_adj)
        row["noise_floor"] = noise_floor
        row["run_noise"] = run_noise
        row["p_floor"] = min(1.0, max(floor, global_floor))
        if row["p_floor"] > rule.alpha:
            row["verdict"] = INSUFFICIENT
            row["note"] = (
                f"{row['baseline_rounds']} vs {row['current_rounds']} rounds cannot reach "
                f"alpha {rule.alpha:g} over {family} benchmarks"
            )
        elif p_adj <= rule.alpha:
            row["verdict"] = FASTER if row["ratio"] > 1 else SLOWER
        else:
            row["verdict"] = SAME
        beyond = row["verdict"] == SLOWER and rule.beyond(row["ratio"])
        within_noise = row["ratio"] >= 1.0 / (1.0 + noise_floor)
        if beyond and within_noise:
            row["note"] = (f"slower by more than the threshold, but within the noise floor "
                           f"({fraction_pct(noise_floor)})")
        row["regression"] = bool(beyond and not within_noise)

    for row in rows:  # round trips: say what happened to the latency (lower is better)
        key = tuple(row[c] for c in BENCHMARK_KEY)
        b, c = base_rows.get(key), cur_rows.get(key)
        lat = [float(r.get("latency_p50_s", math.nan)) if r is not None else math.nan
               for r in (b, c)]
        if all(math.isfinite(x) for x in lat):
            note = (f"p50 latency {fmt.duration_ns(lat[0] * 1e9)} -> "
                    f"{fmt.duration_ns(lat[1] * 1e9)} ({lat[1] / lat[0]:.3g}×)")
            row["note"] = f"{note}; {row['note']}" if row["note"] else note
    for row in rows:  # a slowed benchmark is a test of the tool, never a clean comparison
        key = tuple(row[c] for c in BENCHMARK_KEY)
        slowed = [f"{name} ×{float(r['slowdown']):g}" for name, r in
                  (("baseline", base_rows.get(key)), ("current", cur_rows.get(key)))
                  if r is not None and float(r["slowdown"]) != 1.0]
        if slowed:
            note = f"slowed on purpose ({', '.join(slowed)})"
            row["note"] = f"{note}; {row['note']}" if row["note"] else note

    table = pd.DataFrame(rows, columns=list(COMPARE_COLUMNS))
    table["regression"] = table["regression"].astype(bool)
    return Comparison(table, base_id, cur_id, norm, rule, run_noise, drift)


def drift_noise(
    baseline_rounds: pd.DataFrame, current_rounds: pd.DataFrame, keys: Sequence[Key]
) -> tuple[float, list[float]]:
    """What each run's own drift says the run-to-run spread of a median can be.

    Returns ``(cap, own)``. ``cap``: the typical (median over benchmarks) pass-to-pass spread
    times ``sqrt(2 / passes)`` (a run's median averages its passes; a ratio has two runs) —
    measured *inside* each run, so no change between the runs can inflate it;
    :data:`NO_DRIFT_CAP` when the runs have fewer than two passes or too few benchmarks.
    ``own``: the same for each benchmark from its own passes (the larger of the two runs;
    0 without passes) — a benchmark that jumps between modes within a run (contended locks
    on more processes than cores do) gets a floor as wide as its jumps."""
    import numpy as np

    spreads = [pass_spread(baseline_rounds), pass_spread(current_rounds)]
    passes = min(int(r["pass"].nunique()) for r in (baseline_rounds, current_rounds))
    scale = float(np.sqrt(2.0 / max(passes, 2)))
    typical, own = [], []
    for key in keys:
        values = [d[key] for d in spreads if key in d]
        if values:
            typical.append(float(np.sqrt(np.mean(np.square(values)))))
        own.append(scale * max(values) if values and passes >= 2 else 0.0)
    if len(typical) < MIN_FOR_NOISE or passes < 2:
        return NO_DRIFT_CAP, own
    return scale * float(np.median(typical)), own
