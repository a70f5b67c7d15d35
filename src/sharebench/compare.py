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
benchmark over three passes to let its rounds see that drift, but a run still has its own
luck). Each comparison therefore measures the run-to-run noise it is looking at:
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

Machine normalisation: every run holds a reference benchmark (one process incrementing a plain
Python int, shares nothing). With normalisation on, each run's round throughputs are divided by
the median throughput of its own reference, so a uniformly faster or slower machine cancels
out. ``auto`` turns it on when hostname, CPU model or CPU count differ.

Compare CSV format history (bump :data:`COMPARE_SCHEMA_VERSION` on any change a reader could
notice):

* 1 — first version: see :data:`COMPARE_COLUMNS`.
* 2 — ``noise`` (the k of the noise floor), ``run_noise`` (sigma_run) and per-row
  ``noise_floor`` (the slowdown, as a fraction of time per op, that noise can explain).
"""

from __future__ import annotations

import functools
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sharebench.results import (
    BENCHMARK_KEY,
    STATUS_OK,
    ResultsError,
    benchmark_id,
    to_csv_text,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    FloatArray = npt.NDArray[np.float64]

COMPARE_SCHEMA_VERSION = 2

#: Fewer compared benchmarks than this give no usable estimate of the run-to-run spread.
MIN_FOR_NOISE = 8
#: The cap on sigma_run when the runs carry no pass information (one pass each): +-10 %.
NO_DRIFT_CAP = 0.1

NormalizeMode = Literal["auto", "on", "off"]
NORMALIZE_MODES: tuple[str, ...] = ("auto", "on", "off")

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

#: The reference benchmark that normalisation divides by (see the harness).
REFERENCE = {
    "family": "harness",
    "mechanism": "reference",
    "sync": "none",
    "operation": "increment",
    "processes": 1,
}

#: Bootstrap resamples for the confidence interval, and the confidence level.
RESAMPLES = 2000
CI_LEVEL = 0.99
#: Above this many rounds per side the asymptotic test is used even without ties.
_EXACT_MAX_ROUNDS = 100

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


class RuleError(ValueError):
    """A threshold or alpha that cannot be understood; the message is one line."""


# --------------------------------------------------------------------------------------
# The rule


_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"


def parse_threshold(text: str | float) -> float:
    """Allowed slowdown as a fraction of time per op: ``"10%"``, ``"0.1"`` -> 0.1, ``"2x"`` -> 1.0.

    A bare number is a fraction and must be at most 1 (``"10"`` is refused as ambiguous);
    a factor ``"Nx"`` means each operation may take up to N times as long.
    """
    if isinstance(text, int | float):
        text = repr(float(text))
    s = str(text).strip().lower().replace(" ", "")
    hint = "write e.g. 10% or 0.1 (a fraction of extra time per op) or 2x (a factor)"
    if not s:
        raise RuleError(f"empty threshold; {hint}")
    if m := re.fullmatch(rf"({_NUMBER})%", s):
        value = float(m.group(1)) / 100.0
    elif m := re.fullmatch(rf"({_NUMBER})x", s):
        factor = float(m.group(1))
        if factor < 1:
            raise RuleError(f"threshold {text!r}: a slowdown factor must be at least 1x")
        value = factor - 1.0
    elif re.fullmatch(_NUMBER, s):
        value = float(s)
        if value > 1:
            raise RuleError(
                f"threshold {text!r} is ambiguous: a bare number is a fraction (at most 1); "
                f"write {s}% or {s}x"
            )
    elif s.startswith("-"):
        raise RuleError(f"threshold {text!r} must not be negative")
    else:
        raise RuleError(f"threshold {text!r} not understood; {hint}")
    if not math.isfinite(value):
        raise RuleError(f"threshold {text!r} must be finite")
    return value


def parse_alpha(text: str | float) -> float:
    """Significance level: ``"0.01"`` or ``"1%"``; must lie strictly between 0 and 1."""
    s = str(text).strip().lower().replace(" ", "")
    try:
        value = float(s[:-1]) / 100.0 if s.endswith("%") else float(s)
    except ValueError:
        raise RuleError(f"alpha {text!r} not understood; write e.g. 0.01 or 1%") from None
    if not 0 < value < 1:
        raise RuleError(f"alpha {text!r} must lie strictly between 0 and 1")
    return value


def _format_pct(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


@dataclass(frozen=True)
class RegressionRule:
    """When a slowdown is a regression: beyond ``threshold`` and significant at ``alpha``.

    ``threshold`` is a fraction of extra time per operation (0.1 = 10 % slower);
    ``alpha`` is the family-wise significance level after Holm's correction.
    """

    threshold: float = 0.10
    alpha: float = 0.01
    #: k of the noise floor (multiples of the run-to-run spread); 0 disables it.
    noise: float = 3.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise RuleError(f"threshold {self.threshold!r} must be a finite number >= 0")
        if not 0 < self.alpha < 1:
            raise RuleError(f"alpha {self.alpha!r} must lie strictly between 0 and 1")
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise RuleError(f"noise {self.noise!r} must be a finite number >= 0")

    @classmethod
    def parse(
        cls,
        threshold: str | float = "10%",
        alpha: str | float = "0.01",
        noise: str | float = 3.5,
    ) -> RegressionRule:
        """Build a rule from command-line strings such as ``"10%"``, ``"0.01"``, ``"3.5"``."""
        try:
            k = float(noise)
        except ValueError:
            raise RuleError(f"noise {noise!r} not understood; write e.g. 3.5 (0 = off)") from None
        return cls(parse_threshold(threshold), parse_alpha(alpha), k)

    @property
    def min_ratio(self) -> float:
        """Throughput ratios below this are beyond the threshold."""
        return 1.0 / (1.0 + self.threshold)

    def beyond(self, ratio: float) -> bool:
        """True if ``ratio`` (current/baseline throughput) is slower than the threshold allows."""
        return ratio < self.min_ratio

    def describe(self) -> str:
        """``'slower by more than 10% (time per op), significant at alpha 0.01 (Holm)'``."""
        floor = (f", and beyond the noise floor ({self.noise:g} x the run-to-run spread)"
                 if self.noise > 0 else "")
        return (
            f"slower by more than {_format_pct(self.threshold)} (time per op) and significant "
            f"at alpha {self.alpha:g} after Holm's correction{floor}"
        )


# --------------------------------------------------------------------------------------
# Statistics


def holm(pvalues: Sequence[float] | FloatArray) -> FloatArray:
    """Holm's step-down adjusted p-values (same order as given; NaN stays NaN)."""
    import numpy as np

    p = np.asarray(pvalues, dtype="float64")
    out = np.full_like(p, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def _has_ties(x: FloatArray, y: FloatArray) -> bool:
    import numpy as np

    both = np.concatenate([x, y])
    return bool(np.unique(both).size < both.size)


def _mwu_method(n: int, m: int, ties: bool) -> str:
    return "exact" if not ties and max(n, m) <= _EXACT_MAX_ROUNDS else "asymptotic"


def mann_whitney_p(x: FloatArray, y: FloatArray) -> float:
    """Two-sided Mann-Whitney U p-value; exact without ties, asymptotic (tie-corrected) with."""
    from scipy.stats import mannwhitneyu

    if len(x) < 1 or len(y) < 1:
        return math.nan
    method = _mwu_method(len(x), len(y), _has_ties(x, y))
    return float(mannwhitneyu(x, y, alternative="two-sided", method=method).pvalue)


@functools.lru_cache(maxsize=256)
def min_attainable_p(n: int, m: int, ties: bool = False) -> float:
    """The smallest two-sided p-value :func:`mann_whitney_p` can return for sizes n and m.

    Reached when every round of one run beats every round of the other; with the exact test
    it is ``2 / C(n + m, n)``. Three rounds against three can never go below 0.1.
    """
    import numpy as np

    if n < 1 or m < 1:
        return 1.0
    if _mwu_method(n, m, ties) == "exact":
        return min(1.0, 2.0 / math.comb(n + m, n))
    from scipy.stats import mannwhitneyu

    lo = np.arange(n, dtype="float64")
    hi = np.arange(n, n + m, dtype="float64")
    return float(mannwhitneyu(lo, hi, alternative="two-sided", method="asymptotic").pvalue)


def bootstrap_ratio_ci(
    x: FloatArray,
    y: FloatArray,
    *,
    level: float = CI_LEVEL,
    resamples: int = RESAMPLES,
    seed: int | Sequence[int] = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``median(y) / median(x)``; vectorised, seeded."""
    import numpy as np

    if len(x) < 1 or len(y) < 1:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    bx = np.median(x[rng.integers(0, len(x), size=(resamples, len(x)))], axis=1)
    by = np.median(y[rng.integers(0, len(y), size=(resamples, len(y)))], axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(by / bx, [tail, 1.0 - tail])
    return (float(lo), float(hi))


def _seed_for(name: str) -> list[int]:
    """A fixed seed per benchmark: its interval does not depend on the other benchmarks."""
    return [20261126, zlib.crc32(name.encode("utf-8"))]


# --------------------------------------------------------------------------------------
# Machines and normalisation


@dataclass(frozen=True)
class RunIdentity:
    """Which run a file holds and on what machine it ran."""

    run_id: str
    hostname: str
    cpu_model: str
    cpu_count: str

    def describe(self) -> str:
        """``'20261126T... on host (CPU model, 8 CPUs)'``."""
        return f"{self.run_id} on {self.hostname} ({self.cpu_model}, {self.cpu_count} CPUs)"


def _one_value(summary: pd.DataFrame, column: str) -> str:
    values = list(dict.fromkeys(str(v) for v in summary[column]))
    return "+".join(values) if values else ""


def run_identity(summary: pd.DataFrame) -> RunIdentity:
    """Run id and machine of a summary (values joined with '+' if a file mixes runs)."""
    return RunIdentity(
        run_id=_one_value(summary, "run_id"),
        hostname=_one_value(summary, "hostname"),
        cpu_model=_one_value(summary, "cpu_model"),
        cpu_count=_one_value(summary, "cpu_count"),
    )


def machine_differences(baseline: RunIdentity, current: RunIdentity) -> list[str]:
    """What differs between the machines, e.g. ``['hostname a != b']``; empty if the same."""
    out = []
    for attr in ("hostname", "cpu_model", "cpu_count"):
        a, b = getattr(baseline, attr), getattr(current, attr)
        if a != b:
            out.append(f"{attr} {a} != {b}")
    return out


def reference_throughputs(summary: pd.DataFrame, rounds: pd.DataFrame) -> dict[str, float]:
    """Median round throughput of each ok reference benchmark, by start method (file order)."""
    import numpy as np

    mask = summary["status"] == STATUS_OK
    for col, value in REFERENCE.items():
        mask &= summary[col] == value
    rmask = rounds["mechanism"] == REFERENCE["mechanism"]
    values = _round_values(rounds.loc[rmask])
    out: dict[str, float] = {}
    for row in _records(summary.loc[mask]):
        found = values.get(_key_of(row))
        if found is not None and found.size:
            out.setdefault(str(row["start_method"]), float(np.median(found)))
    return out


def _pick_reference(refs: Mapping[str, float], start_method: str) -> float:
    if start_method in refs:
        return refs[start_method]
    return next(iter(refs.values()))


@dataclass(frozen=True)
class Normalization:
    """Which normalisation was used and why; ``machine_ratio`` = current ref / baseline ref."""

    requested: str
    applied: bool
    reason: str
    machine_ratio: float
    baseline_refs: Mapping[str, float]
    current_refs: Mapping[str, float]

    @property
    def mode(self) -> str:
        """``'on'`` or ``'off'``: what was actually done."""
        return "on" if self.applied else "off"

    def describe(self) -> str:
        """One line for the report."""
        ratio = (
            f"machine ratio (current/baseline reference throughput) {self.machine_ratio:.3g}"
            if math.isfinite(self.machine_ratio)
            else "machine ratio unknown (no reference benchmark in both runs)"
        )
        how = "on" if self.applied else "off"
        return f"Normalisation: {how} ({self.requested}: {self.reason}); {ratio}"


def decide_normalization(
    mode: str,
    baseline: RunIdentity,
    current: RunIdentity,
    baseline_refs: Mapping[str, float],
    current_refs: Mapping[str, float],
) -> Normalization:
    """Resolve ``auto``/``on``/``off``; raise :class:`ResultsError` if on but no reference."""
    if mode not in NORMALIZE_MODES:
        raise RuleError(f"normalize {mode!r}: choose one of {', '.join(NORMALIZE_MODES)}")
    ratio = math.nan
    if baseline_refs and current_refs:
        common = [s for s in baseline_refs if s in current_refs]
        if common:
            ratio = current_refs[common[0]] / baseline_refs[common[0]]
        else:
            ratio = next(iter(current_refs.values())) / next(iter(baseline_refs.values()))
    diffs = machine_differences(baseline, current)
    if mode == "off":
        applied, reason = False, "as requested"
    elif mode == "on":
        applied, reason = True, "as requested"
    elif diffs:
        applied, reason = True, "different machines: " + "; ".join(diffs)
    else:
        applied, reason = False, "same machine"
    if applied:
        for name, refs in (("baseline", baseline_refs), ("current", current_refs)):
            if not refs:
                why = f" ({reason})" if mode == "auto" else ""
                raise ResultsError(
                    f"normalisation is on{why} but the {name} run has no ok reference "
                    "benchmark (mechanism reference, sync none, operation increment, 1 process); "
                    "rerun it or pass --normalize off"
                )
    return Normalization(mode, applied, reason, ratio, dict(baseline_refs), dict(current_refs))


# --------------------------------------------------------------------------------------
# Matching and comparing


Key = tuple[Any, ...]


def _round_values(rounds: pd.DataFrame) -> dict[Key, FloatArray]:
    """Per-round throughputs of each benchmark, by BENCHMARK_KEY, in round order."""
    out: dict[Key, FloatArray] = {}
    ordered = rounds.sort_values([*BENCHMARK_KEY, "round"], kind="stable")
    for key, group in ordered.groupby(list(BENCHMARK_KEY), sort=False):
        out[tuple(key)] = group["throughput_ops_s"].to_numpy(dtype="float64")
    return out


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


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts keyed by column name (typed for mypy: our columns are strings)."""
    return [{str(k): v for k, v in r.items()} for r in df.to_dict("records")]


def _key_of(row: Mapping[str, Any]) -> Key:
    return tuple(row[c] for c in BENCHMARK_KEY)


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


def _is_reference(row: Mapping[str, Any]) -> bool:
    return all(row[c] == v for c, v in REFERENCE.items())


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
    base_values = _round_values(baseline_rounds)
    cur_values = _round_values(current_rounds)

    base_rows = {_key_of(r): r for r in _records(baseline_summary)}
    cur_rows = {_key_of(r): r for r in _records(current_summary)}
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
        if b["status"] == STATUS_OK and str(c["status"]).startswith("error"):
            row["verdict"] = FAILED_NOW
            row["note"] = f"ok in the baseline, now {c['status']}"
            continue
        if b["status"] != STATUS_OK or c["status"] != STATUS_OK:
            row["verdict"] = NOT_COMPARED
            row["note"] = f"status baseline: {b['status']}; current: {c['status']}"
            continue
        if norm.applied and _is_reference(b):
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
            x = x / _pick_reference(norm.baseline_refs, sm)
            y = y / _pick_reference(norm.current_refs, sm)
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
                                       rule.noise, cap=drift, own=own_drift)
    # Holm multiplies the smallest p by the family size, and no p can be below its own floor:
    # a benchmark whose adjusted p can never reach alpha gets "insufficient data".
    floors = [min_attainable_p(len(x), len(y), _has_ties(x, y)) for _, x, y in tested]
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
                           f"({_format_pct(noise_floor)})")
        row["regression"] = bool(beyond and not within_noise)

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


def noise_floors(
    baseline: Sequence[FloatArray],
    current: Sequence[FloatArray],
    k: float,
    cap: float = math.inf,
    own: Sequence[float] | None = None,
) -> tuple[float, list[float]]:
    """``(sigma_run, floors)``: the run-to-run spread of the log ratios of medians across all
    benchmarks (at most ``cap``), and per benchmark the slowdown (fraction of time per op)
    that ``k * max(sigma_run, own)`` of noise explains (``own``: the benchmark's own drift,
    see :func:`drift_noise`); see the module docstring."""
    import numpy as np

    own = list(own) if own is not None else [0.0] * len(baseline)
    if k <= 0 or not baseline:
        return 0.0, [0.0] * len(baseline)
    lr = np.array([np.log(np.median(y)) - np.log(np.median(x))
                   for x, y in zip(baseline, current, strict=True)])
    sigma_run = 0.0
    if lr.size >= MIN_FOR_NOISE:
        sigma_run = float(1.4826 * np.median(np.abs(lr - np.median(lr))))
    sigma_run = min(sigma_run, cap)
    return sigma_run, [float(np.expm1(k * max(sigma_run, o))) for o in own]


# --------------------------------------------------------------------------------------
# Presenting


def compare_csv_text(comparison: Comparison) -> str:
    """The comparison table as CSV text (columns :data:`COMPARE_COLUMNS`)."""
    records = _records(comparison.table)
    for r in records:
        r["regression"] = "true" if r["regression"] else "false"
    return to_csv_text(records, COMPARE_COLUMNS)


_ORDER = {SLOWER: 1, FASTER: 2, SAME: 3, INSUFFICIENT: 4}


def _fmt_rate(value: float) -> str:
    if not math.isfinite(value):
        return ""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def _fmt_norm(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else ""


def _fmt_p(value: float) -> str:
    if not math.isfinite(value):
        return ""
    return f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"


def _pipe_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """A GitHub Markdown pipe table, padded so it also lines up in a terminal."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        ("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)
    ) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def markdown_report(comparison: Comparison) -> str:
    """The report for stdout: reads in a terminal and pastes as Markdown into a pull request."""
    c = comparison
    compared = c.compared
    unit = "normalised" if c.normalization.applied else "ops/s"
    lines = [
        "## sharebench compare",
        "",
        f"- Baseline: {c.baseline.describe()}",
        f"- Current: {c.current.describe()}",
        f"- {c.normalization.describe()}",
        f"- Regression: {c.rule.describe()}; {len(compared)} benchmarks compared, "
        f"99% bootstrap CI of the throughput ratio, ratio > 1 = faster",
        f"- Run-to-run spread of the log ratios (sigma_run): {c.run_noise:.3f}"
        f" (±{math.expm1(c.run_noise) * 100:.1f} %; capped at {c.drift:.3f}, the runs' own"
        f" pass-to-pass drift); noise floor {math.expm1(c.rule.noise * c.run_noise) * 100:.0f} %",
        "",
    ]
    ordered = compared.assign(
        _severity=[0 if r else _ORDER.get(v, 9)
                   for r, v in zip(compared["regression"], compared["verdict"], strict=True)]
    ).sort_values(["_severity", "ratio"], kind="stable")
    header = ["benchmark", f"baseline {unit}", f"current {unit}", "ratio", "99% CI",
              "p (Holm)", "noise floor", "verdict"]
    body = []
    for r in _records(ordered):
        verdict = "**REGRESSION**" if r["regression"] else str(r["verdict"])
        fmt = _fmt_norm if c.normalization.applied else _fmt_rate
        body.append([
            f"`{r['benchmark']}`",
            fmt(r["baseline_median_ops_s"]),
            fmt(r["current_median_ops_s"]),
            f"{r['ratio']:.3f}",
            f"{r['ci_low']:.3f}-{r['ci_high']:.3f}",
            _fmt_p(r["p_holm"]),
            f"{r['noise_floor'] * 100:.0f}%" if math.isfinite(r["noise_floor"]) else "",
            verdict,
        ])
    if body:
        lines.append(_pipe_table(header, body, right={1, 2, 3, 4, 5, 6}))
        lines.append("")
    for verdict, title in ((ONLY_BASELINE, "Only in baseline"), (ONLY_CURRENT, "Only in current")):
        names = c.listed(verdict)
        if names:
            lines.append(f"{title} ({len(names)}): " + ", ".join(f"`{n}`" for n in names))
    failed = c.table[c.table["verdict"] == FAILED_NOW]
    if len(failed):
        lines.append(f"**Failed now** ({len(failed)}), ok in the baseline:")
        lines.extend(f"- `{r['benchmark']}`: {r['note']}" for r in _records(failed))
    skipped = c.table[c.table["verdict"] == NOT_COMPARED]
    if len(skipped):
        lines.append(f"Not compared ({len(skipped)}):")
        lines.extend(f"- `{r['benchmark']}`: {r['note']}" for r in _records(skipped))
    counts = compared["verdict"].value_counts()
    n_reg = len(c.regressions)
    lines += [
        "",
        f"**{n_reg} regression{'s' if n_reg != 1 else ''}**"
        + (f", **{len(failed)} failed now**" if len(failed) else "") + "; "
        + ", ".join(f"{int(counts.get(v, 0))} {v}" for v in COMPARED_VERDICTS),
    ]
    return "\n".join(lines).rstrip() + "\n"
