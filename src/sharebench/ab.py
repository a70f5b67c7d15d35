"""Interleaved A/B runs: measure two sides in one run, in pairs of blocks, and judge the pairs.

On a shared machine the speed drifts by 1.4–1.7× within a minute, so a run of A followed by a
run of B carries that drift in every ratio. Here both sides are open at once — each side a
server (:mod:`sharebench.abside`) keeping its benchmark's workers alive — and measured in
*pairs of adjacent blocks* (a block: ``block_rounds`` rounds of one side), in a fresh random
order per pair (Abedi & Brecht's randomized multiple interleaved trials). Whatever the machine
does to a pair, it does to both halves: the pair's log ratio ``log(B/A)`` of throughputs is
the unit of analysis (Kalibera & Jones: repeat at the level where the variance is).

Per benchmark, from its pairs (:func:`judge`):

* the Hodges-Lehmann estimate of the log ratio and its 99 % distribution-free interval;
* the two-sided Wilcoxon signed-rank p-value, then Holm's correction across all benchmarks;
* a **regression** when significant and the estimated slowdown exceeds the threshold (5 %
  by default: a 10 % slowdown is then flagged with high power wherever the machine allows),
  and it shows again, beyond the threshold, in each of two *confirmation sessions* with fresh
  processes on both sides. A process carries its own luck for its whole life — where its
  memory landed, its hash seed, where the scheduler put its workers — worth several percent
  on this machine, the same in every pair; only new processes draw new luck. When the
  sessions disagree beyond their own noise (:func:`sessions_disagree`), two more;
* ``same`` (no regression of that size) only when its interval rules out a slowdown of the
  resolution asked (``--judge``, 10 %), else ``too noisy`` — never a silent "same" — and the
  **minimum detectable slowdown**
  at the pairs it got (about 80 % power), so a user sees which benchmarks this machine can
  judge at 10 %.

Adaptive effort (:class:`sharebench.ab_run.Runner`): every benchmark gets a pilot of a few
pairs; a clearly unchanged one stops there, so does one too noisy to ever be judged
(:func:`futile`); the others get pairs while the interval still straddles the threshold, until
decided, ``max_pairs``, or their share of the time budget. Clear cases stop early; close ones
get the pairs.

The module is long because the rule, the per-benchmark state and the verdicts are one piece:
each verdict reads all three, and splitting them would only scatter the definitions.

This module holds what is judged and how (the rule, the per-benchmark state, the statistics,
the verdicts); :mod:`sharebench.ab_run` schedules the pairs, :mod:`sharebench.sides` starts the
sides, :mod:`sharebench.ab_report` renders the result.

ab CSV format history (bump :data:`AB_SCHEMA_VERSION` on any change a reader could notice):

* 1 — first version: see :data:`AB_COLUMNS`.
* 2 — ``mds_max_pairs``: the minimum detectable slowdown at ``max_pairs`` pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sharebench.compare import FAILED_NOW, FASTER, SAME, SLOWER
from sharebench.errors import RuleError
from sharebench.fmt import fraction_pct
from sharebench.rules import parse_alpha, parse_threshold
from sharebench.schema import BENCHMARK_KEY
from sharebench.stats import (
    hodges_lehmann,
    holm,
    min_detectable,
    robust_sigma,
    wilcoxon_p,
)
from sharebench.status import Status

if TYPE_CHECKING:
    import pandas as pd

AB_SCHEMA_VERSION = 2
#: z of a two-sided 99 % interval.
Z_CI99 = 2.5758

REGRESSION = "regression"
TOO_NOISY = "too noisy"
#: Not measured on both sides (an error on A, skipped, missing on one side, out of budget).
NOT_JUDGED = "not judged"
JUDGED_VERDICTS: tuple[str, ...] = (REGRESSION, SLOWER, FASTER, SAME, TOO_NOISY)

AB_COLUMNS: tuple[str, ...] = (
    "schema_version",
    "a_run_id",
    "b_run_id",
    "a_side",
    "b_side",
    # identity
    "benchmark",
    *BENCHMARK_KEY,
    # parameters of the judgement (the same on every row)
    "threshold",
    "alpha",
    "judge",
    "block_rounds",
    # metrics
    "pairs",
    "a_median_ops_s",
    "b_median_ops_s",
    "ratio",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "pair_sigma",
    "min_detectable",
    "mds_max_pairs",
    "slowdown_a",
    "slowdown_b",
    "verdict",
    "regression",
    "note",
)


@dataclass(frozen=True)
class AbRule:
    """When a paired difference is a regression, and what "can judge" means."""

    #: Estimated slowdown (fraction of time per op) beyond which a significant one regresses.
    threshold: float = 0.05
    #: Family-wise significance level, after Holm's correction over all benchmarks.
    alpha: float = 0.01
    #: A benchmark whose minimum detectable slowdown exceeds this is ``too noisy``.
    judge: float = 0.10

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise RuleError(f"threshold {self.threshold!r} must be a finite number >= 0")
        if not 0 < self.alpha < 1:
            raise RuleError(f"alpha {self.alpha!r} must lie strictly between 0 and 1")
        if not (math.isfinite(self.judge) and self.judge > 0):
            raise RuleError(f"judge {self.judge!r} must be a finite number > 0")

    @classmethod
    def parse(cls, threshold: str = "5%", alpha: str = "0.01", judge: str = "10%") -> AbRule:
        """From command-line strings: ``"5%"``, ``"0.01"``, ``"10%"`` (or ``"1.1x"``)."""
        return cls(parse_threshold(threshold), parse_alpha(alpha), parse_threshold(judge))


@dataclass(frozen=True)
class AbSettings:
    """How much to measure."""

    #: Rounds per block (one side's half of a pair).
    block_rounds: int = 1
    #: A benchmark whose pairs spread more than this (robust sd of their log ratios) after
    #: the pilot is measured again with blocks of ``noisy_blocks`` rounds.
    noisy: float = 0.08
    noisy_blocks: int = 3
    #: Pairs after which a clearly unchanged benchmark may stop.
    pilot: int = 8
    #: Pairs every benchmark gets first; None = the fewest with which the test can reach
    #: alpha over the benchmarks judged.
    min_pairs: int | None = None
    #: No benchmark gets more pairs than this.
    max_pairs: int = 80
    #: Seconds for the whole run; a benchmark may use up to ``share`` times its fair part.
    budget: float = 600.0
    share: float = 3.0
    #: Fresh sessions (new workers on both sides) in which a regression must show again.
    confirm: int = 2
    #: More fresh sessions when the sessions so far disagree beyond their own noise.
    extra: int = 2
    #: Seed of the random order of each pair.
    seed: int = 0

    def __post_init__(self) -> None:
        if self.block_rounds < 1:
            raise RuleError("block rounds must be >= 1")
        if self.max_pairs < 2 or (self.min_pairs is not None
                                  and not 2 <= self.min_pairs <= self.max_pairs):
            raise RuleError("pairs: need 2 <= min pairs <= max pairs")
        if not (math.isfinite(self.budget) and self.budget > 0):
            raise RuleError(f"budget {self.budget!r} must be a positive number of seconds")
        if self.confirm < 0 or self.extra < 0:
            raise RuleError("confirm and extra sessions must be >= 0")
        if not 2 <= self.pilot <= self.max_pairs or self.noisy_blocks < 1:
            raise RuleError("need 2 <= pilot pairs <= max pairs, and noisy blocks >= 1")


@dataclass
class Bench:
    """One benchmark of the run: both sides' rounds and the pairs they formed."""

    case: dict[str, Any]
    k: int = 0
    ops: int = 0
    family: str = ""
    workers_kind: str = "process"
    a_seconds: list[float] = field(default_factory=list)
    b_seconds: list[float] = field(default_factory=list)
    a_lost: list[int] = field(default_factory=list)
    b_lost: list[int] = field(default_factory=list)
    #: Throughput (ops/s) of each side's block, one entry per pair.
    pairs: list[tuple[float, float]] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    #: Which session (a fresh pair of worker pools) measured each pair, and with how many
    #: rounds per block; only pairs of the final block size (``block``) are judged.
    sessions: list[int] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)
    block: int = 1
    status_a: Status = Status.OK
    status_b: Status = Status.OK
    #: Why it was not measured on both sides (missing on one, out of budget).
    note: str = ""
    seconds: float = 0.0
    #: Seconds from its opening to the end of its pilot (0 if it never got that far).
    pilot_seconds: float = 0.0
    slowdown_a: float = 1.0
    slowdown_b: float = 1.0

    @property
    def id(self) -> str:
        """The benchmark id, as in run CSVs."""
        return str(self.case["id"])

    def log_ratios(self, session: int | None = None) -> list[float]:
        """``log(B / A)`` of the judged pairs' throughputs (> 0: B faster): those of the final
        block size, of one session or all."""
        blocks = self.blocks if len(self.blocks) == len(self.pairs) else [self.block] * len(
            self.pairs)
        return [math.log(b / a) for (a, b), s, n in zip(self.pairs, self._sessions(), blocks,
                                                        strict=True)
                if (session is None or s == session) and n == self.block]

    def judged_pairs(self) -> list[tuple[float, float]]:
        """The pairs of the final block size (see :meth:`log_ratios`)."""
        blocks = self.blocks if len(self.blocks) == len(self.pairs) else [self.block] * len(
            self.pairs)
        return [p for p, n in zip(self.pairs, blocks, strict=True) if n == self.block]

    def _sessions(self) -> list[int]:
        return self.sessions if len(self.sessions) == len(self.pairs) else [0] * len(self.pairs)

    def session_slowdowns(self, rule: AbRule, tests: int) -> list[float]:
        """Each session's own estimated slowdown (see :func:`judge`), in session order."""
        return [judge(self.log_ratios(s), rule, tests).slowdown
                for s in sorted(set(self._sessions()))]


@dataclass(frozen=True)
class Judgement:
    """The verdict on one benchmark's pairs (see the module docstring)."""

    pairs: int
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    sigma: float
    min_detectable: float

    @property
    def slowdown(self) -> float:
        """Estimated extra time per operation of B over A (0.1 = 10 % slower)."""
        return 1.0 / self.ratio - 1.0 if self.ratio > 0 else math.inf

    @property
    def worst_slowdown(self) -> float:
        """The largest slowdown of B the 99 % interval admits."""
        return 1.0 / self.ci_low - 1.0 if self.ci_low > 0 else math.inf


def judge(log_ratios: Sequence[float], rule: AbRule, tests: int) -> Judgement:
    """Statistics of one benchmark's pairs; ``tests`` benchmarks share the family-wise alpha."""
    import numpy as np

    d = np.asarray(log_ratios, dtype="float64")
    est, lo, hi = hodges_lehmann(d)
    p = wilcoxon_p(d) if d.size else math.nan
    sigma = robust_sigma(d) if d.size else math.nan
    if d.size > 1 and sigma == 0.0:  # more than half the pairs identical: use the plain sd
        sigma = float(np.std(d, ddof=1))
    mds = min_detectable(sigma, int(d.size), rule.alpha / max(tests, 1), rule.threshold)
    return Judgement(int(d.size), math.exp(est), math.exp(lo), math.exp(hi),
                     1.0 if math.isnan(p) and d.size else p, sigma, mds)


def reachable_mds(j: Judgement, rule: AbRule, settings: AbSettings, tests: int) -> float:
    """The minimum detectable slowdown at ``max_pairs`` pairs, from the spread of the pairs
    a benchmark got: what the run can catch in it. A benchmark that looks unchanged stops
    after its pilot, too few pairs for significance after Holm (its own ``min_detectable``
    is then infinite); one that looks slower keeps getting pairs up to ``max_pairs`` (budget
    permitting), and this is the slowdown it would then flag with 80 % power."""
    pairs = max(j.pairs, settings.max_pairs)
    return min_detectable(j.sigma, pairs, rule.alpha / max(tests, 1), rule.threshold)


def clearly_no_regression(j: Judgement, rule: AbRule) -> bool:
    """The interval already excludes a slowdown beyond the threshold; or it excludes one of
    the resolution asked (``judge``) while the estimate is well inside the threshold — more
    pairs would only split hairs between the two, so a noisy benchmark stops there."""
    if not math.isfinite(j.ci_low):
        return False
    return j.worst_slowdown < rule.threshold or (
        j.worst_slowdown < rule.judge and j.slowdown < rule.threshold / 2)


def decided(j: Judgement, rule: AbRule, tests: int) -> bool:
    """Whether more pairs could still change this benchmark's verdict: not if it is clearly
    no regression, or its interval shows one at the Bonferroni level."""
    if not math.isfinite(j.ci_low):
        return False
    best = 1.0 / j.ci_high - 1.0  # the smallest slowdown the interval admits
    clear_regression = best > rule.threshold and j.p_value <= rule.alpha / max(tests, 1)
    return clearly_no_regression(j, rule) or clear_regression


def futile(j: Judgement, rule: AbRule, settings: AbSettings) -> bool:
    """Whether a benchmark that shows no sign of a regression (its estimate within the
    threshold) could not, even with ``max_pairs`` pairs, narrow its 99 % interval to the
    resolution asked (``judge``), judging by the robust spread of the pairs (a few wild pairs
    widen the interval early on but not this spread). Such a benchmark is too noisy here, and
    its time is better spent on others. One that does look slower keeps its pairs: they may
    yet make the slowdown significant."""
    if not math.isfinite(j.sigma) or j.pairs < 2 or j.slowdown > rule.threshold:
        return False
    half = Z_CI99 * j.sigma / math.sqrt(settings.max_pairs * 3.0 / math.pi)
    return half > math.log1p(rule.judge)


def sessions_disagree(bench: Bench, alpha: float = 0.01) -> bool:
    """Whether the sessions' estimates differ by more than their own pairs' noise allows
    (Cochran's Q of the per-session median log ratios, each with the standard error of the
    pairs' spread within sessions; p below ``alpha``). That is luck a process keeps for its
    whole life — a benchmark whose throughput has two modes, one per process (seen here:
    zmq append at 1 process, 1.1M or 2.0M ops/s) — and three sessions with B in the slow
    mode and A in the fast one happen often enough to pass for a regression."""
    import numpy as np
    from scipy.stats import chi2

    sessions = sorted(set(bench._sessions()))
    groups = [np.asarray(bench.log_ratios(s), dtype="float64") for s in sessions]
    groups = [g for g in groups if g.size >= 2]
    if len(groups) < 2:
        return False
    within = np.concatenate([g - np.median(g) for g in groups])
    sigma = robust_sigma(within)
    if not sigma > 0:
        sigma = float(np.std(within, ddof=1)) or 1e-12
    est = np.array([np.median(g) for g in groups])
    weight = np.array([g.size * 3.0 / math.pi for g in groups]) / sigma**2
    pooled = float(np.sum(weight * est) / np.sum(weight))
    q = float(np.sum(weight * (est - pooled) ** 2))
    return bool(chi2.sf(q, len(groups) - 1) < alpha)


def sessions_needed(bench: Bench, settings: AbSettings) -> int:
    """Sessions a regression must show in: the first and ``confirm`` more with fresh
    processes, and ``extra`` more when they disagree (:func:`sessions_disagree`)."""
    base = 1 + settings.confirm
    if settings.confirm and len(set(bench._sessions())) >= base and sessions_disagree(bench):
        return base + settings.extra
    return base


def candidate(bench: Bench, rule: AbRule, tests: int) -> bool:
    """A regression so far: significant (Bonferroni) over all pairs, beyond the threshold
    over all pairs and in every session measured; it must show again in a fresh session."""
    j = judge(bench.log_ratios(), rule, tests)
    return (j.p_value <= rule.alpha / max(tests, 1) and j.slowdown > rule.threshold
            and all(s > rule.threshold for s in bench.session_slowdowns(rule, tests)))


# --------------------------------------------------------------------------------------
# Judging the run


@dataclass(frozen=True)
class AbResult:
    """The judged run: one row per benchmark (:data:`AB_COLUMNS`) and how it was judged."""

    table: pd.DataFrame
    rule: AbRule
    settings: AbSettings
    sides: dict[str, str]
    run_ids: dict[str, str]
    seconds: float
    min_pairs: int

    @property
    def judged(self) -> pd.DataFrame:
        """Rows with a verdict from pairs."""
        return self.table[self.table["verdict"].isin(JUDGED_VERDICTS)]

    @property
    def regressions(self) -> pd.DataFrame:
        """Rows flagged as regressions."""
        return self.table[self.table["regression"].astype(bool)]

    @property
    def exit_code(self) -> int:
        """1 on a regression or a benchmark that fails on B only; 2 if nothing was judged."""
        if len(self.regressions) or (self.table["verdict"] == FAILED_NOW).any():
            return 1
        return 0 if len(self.judged) else 2


def analyse(benches: Sequence[Bench], rule: AbRule, settings: AbSettings,
            sides: dict[str, str], run_ids: dict[str, str], seconds: float,
            min_pairs_used: int) -> AbResult:
    """Verdicts for every benchmark (Holm across those with pairs)."""
    import numpy as np
    import pandas as pd

    tests = max(1, len(benches))
    rows: list[dict[str, Any]] = []
    judged: list[tuple[int, Judgement]] = []
    for bench in benches:
        row: dict[str, Any] = dict.fromkeys(AB_COLUMNS, math.nan)
        row.update(
            schema_version=AB_SCHEMA_VERSION, a_run_id=run_ids["A"], b_run_id=run_ids["B"],
            a_side=sides["A"], b_side=sides["B"], benchmark=bench.id,
            **{k: bench.case.get(k, 0) for k in BENCHMARK_KEY},
            threshold=rule.threshold, alpha=rule.alpha, judge=rule.judge,
            block_rounds=bench.block, pairs=len(bench.judged_pairs()),
            slowdown_a=bench.slowdown_a, slowdown_b=bench.slowdown_b,
            regression=False, note=bench.note,
        )
        if bench.judged_pairs():
            a = np.array([p[0] for p in bench.judged_pairs()])
            b = np.array([p[1] for p in bench.judged_pairs()])
            row.update(a_median_ops_s=float(np.median(a)), b_median_ops_s=float(np.median(b)))
        rows.append(row)
        if not bench.status_a.is_ok or not bench.status_b.is_ok:
            failed_now = bench.status_a.is_ok and bench.status_b.is_error
            row["verdict"] = FAILED_NOW if failed_now else NOT_JUDGED
            row["note"] = f"A: {bench.status_a}; B: {bench.status_b}"
            continue
        if len(bench.judged_pairs()) < 2:
            row["verdict"] = NOT_JUDGED
            row["note"] = bench.note or f"{len(bench.judged_pairs())} pairs"
            continue
        j = judge(bench.log_ratios(), rule, tests)
        row.update(ratio=j.ratio, ci_low=j.ci_low, ci_high=j.ci_high, p_value=j.p_value,
                   pair_sigma=j.sigma, min_detectable=j.min_detectable,
                   mds_max_pairs=reachable_mds(j, rule, settings, tests))
        judged.append((len(rows) - 1, j))
    adjusted = holm([j.p_value for _, j in judged])
    for (i, j), p_adj in zip(judged, adjusted, strict=True):
        row = rows[i]
        row["p_holm"] = float(p_adj)
        significant = bool(p_adj <= rule.alpha)
        bench = benches[i]
        per_session = bench.session_slowdowns(rule, tests)
        replicated = (len(per_session) >= sessions_needed(bench, settings)
                      and all(x > rule.threshold for x in per_session))
        if significant and j.slowdown > rule.threshold and replicated:
            row["verdict"] = REGRESSION
            row["regression"] = True
            row["note"] = "in each of " + ", ".join(fraction_pct(x) for x in per_session) + \
                " (fresh workers each)"
        elif significant and j.slowdown > rule.threshold:
            row["verdict"] = SLOWER
            every = all(x > rule.threshold for x in per_session)
            why = ("its sessions disagree beyond their noise, and it did not show in "
                   f"{sessions_needed(bench, settings)}" if every
                   else "not replicated with fresh workers")
            row["note"] = (f"{why} (sessions: "
                           + ", ".join(fraction_pct(x) for x in per_session) + ")")
        elif significant:
            row["verdict"] = FASTER if j.ratio > 1 else SLOWER
        elif j.worst_slowdown < rule.judge:
            row["verdict"] = SAME
        else:
            row["verdict"] = TOO_NOISY
            row["note"] = (f"its interval admits B/A from {j.ci_low:.3g} to {j.ci_high:.3g} "
                           f"(can detect {describe_mds(j.min_detectable)})")
        if bench_slowed(row):
            note = (f"slowed on purpose (A ×{row['slowdown_a']:g}, B ×{row['slowdown_b']:g})")
            row["note"] = f"{note}; {row['note']}" if row["note"] else note
    table = pd.DataFrame(rows, columns=list(AB_COLUMNS))
    table["regression"] = table["regression"].astype(bool)
    return AbResult(table, rule, settings, sides, run_ids, seconds, min_pairs_used)


def bench_slowed(row: dict[str, Any]) -> bool:
    """Whether either side of a row was slowed on purpose."""
    return float(row["slowdown_a"]) != 1.0 or float(row["slowdown_b"]) != 1.0


def describe_mds(value: float) -> str:
    """A minimum detectable slowdown for people: ``4.2%`` or ``∞``."""
    return fraction_pct(value) if math.isfinite(value) else "∞"


__all__ = [
    "AB_COLUMNS",
    "AbResult",
    "AbRule",
    "AbSettings",
    "Bench",
    "analyse",
    "decided",
    "judge",
]
