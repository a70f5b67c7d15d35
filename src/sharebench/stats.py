"""Statistics for comparing benchmark runs: arrays in, numbers out.

Pure functions over numpy arrays (SciPy where a test needs it), importing nothing of the
project, in the spirit of asv's ``_stats.py``: a reader can check each one with a few arrays.

Unpaired samples (two stored runs, :mod:`sharebench.compare`): the Mann-Whitney U test and
the smallest p-value it can reach at given sample sizes, a percentile bootstrap of the ratio
of medians. Paired samples (interleaved runs, :mod:`sharebench.ab`): the Wilcoxon
signed-rank test on per-pair log ratios, a bootstrap of their median, and the smallest
slowdown a set of pairs can detect. Across many benchmarks: Holm's step-down correction and a
robust spread (1.4826 x MAD).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

#: Bootstrap resamples for confidence intervals, and the default confidence level.
RESAMPLES = 2000
CI_LEVEL = 0.99
#: Above this many rounds per side the asymptotic Mann-Whitney test is used even without ties.
EXACT_MAX_ROUNDS = 100
#: Scale of the median absolute deviation to the standard deviation of a normal sample.
MAD_TO_SIGMA = 1.4826


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


def has_ties(x: FloatArray, y: FloatArray) -> bool:
    import numpy as np

    both = np.concatenate([x, y])
    return bool(np.unique(both).size < both.size)


def _mwu_method(n: int, m: int, ties: bool) -> str:
    return "exact" if not ties and max(n, m) <= EXACT_MAX_ROUNDS else "asymptotic"


def mann_whitney_p(x: FloatArray, y: FloatArray) -> float:
    """Two-sided Mann-Whitney U p-value; exact without ties, asymptotic (tie-corrected) with."""
    from scipy.stats import mannwhitneyu

    if len(x) < 1 or len(y) < 1:
        return math.nan
    method = _mwu_method(len(x), len(y), has_ties(x, y))
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


def robust_sigma(values: Sequence[float] | FloatArray) -> float:
    """1.4826 x the median absolute deviation: a standard deviation that outliers don't move
    (NaN for an empty sample)."""
    import numpy as np

    x = np.asarray(values, dtype="float64")
    if x.size == 0:
        return math.nan
    return float(MAD_TO_SIGMA * np.median(np.abs(x - np.median(x))))


def noise_floors(
    baseline: Sequence[FloatArray],
    current: Sequence[FloatArray],
    k: float,
    cap: float = math.inf,
    own: Sequence[float] | None = None,
    min_count: int = 8,
) -> tuple[float, list[float]]:
    """``(sigma_run, floors)``: the run-to-run spread of the log ratios of medians across all
    benchmarks (at most ``cap``), and per benchmark the slowdown (fraction of time per op)
    that ``k * max(sigma_run, own)`` of noise explains (``own``: the benchmark's own drift,
    see ``sharebench.compare.drift_noise``); with fewer than ``min_count`` benchmarks the
    spread is taken as 0 (too few to estimate it)."""
    import numpy as np

    own = list(own) if own is not None else [0.0] * len(baseline)
    if k <= 0 or not baseline:
        return 0.0, [0.0] * len(baseline)
    lr = np.array([np.log(np.median(y)) - np.log(np.median(x))
                   for x, y in zip(baseline, current, strict=True)])
    sigma_run = 0.0
    if lr.size >= min_count:
        sigma_run = robust_sigma(lr)
    sigma_run = min(sigma_run, cap)
    return sigma_run, [float(np.expm1(k * max(sigma_run, o))) for o in own]


# --------------------------------------------------------------------------------------
# Paired samples: interleaved A/B runs


def wilcoxon_p(d: Sequence[float] | FloatArray) -> float:
    """Two-sided Wilcoxon signed-rank p-value that the differences ``d`` are centred on 0
    (exact without ties or zeros up to 50 pairs, else the normal approximation); NaN with no
    non-zero difference."""
    import numpy as np
    from scipy.stats import wilcoxon

    x = np.asarray(d, dtype="float64")
    x = x[x != 0]
    if x.size == 0:
        return math.nan
    ties = np.unique(np.abs(x)).size < x.size
    method = "exact" if x.size <= 50 and not ties else "approx"
    return float(wilcoxon(x, alternative="two-sided", method=method).pvalue)


def min_pairs(alpha: float, tests: int) -> int:
    """Fewest pairs with which a signed-rank test can reach ``alpha / tests`` at all: with
    every difference of one sign its exact two-sided p is ``2 / 2**n``."""
    if not 0 < alpha < 1 or tests < 1:
        raise ValueError("alpha must lie in (0, 1) and tests be >= 1")
    return max(1, math.ceil(math.log2(2 * tests / alpha)))


def hodges_lehmann(d: Sequence[float] | FloatArray, level: float = CI_LEVEL
                   ) -> tuple[float, float, float]:
    """The Hodges-Lehmann estimate of the centre of ``d`` (the median of its Walsh averages)
    and its distribution-free confidence interval at ``level`` (the Walsh averages at the
    signed-rank critical ranks, normal approximation): ``(estimate, low, high)``."""
    import numpy as np
    from scipy.stats import norm

    x = np.asarray(d, dtype="float64")
    n = x.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    i, j = np.triu_indices(n)
    walsh = np.sort((x[i] + x[j]) / 2.0)
    estimate = float(np.median(walsh))
    z = float(norm.ppf(0.5 + level / 2.0))
    mean = n * (n + 1) / 4.0
    sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
    k = math.floor(mean - z * sd)  # ranks below this are outside the interval
    k = min(max(k, 0), walsh.size - 1)
    return (estimate, float(walsh[k]), float(walsh[walsh.size - 1 - k]))


#: z of 80 % power, one-sided.
Z_POWER_80 = 0.8416


def min_detectable(sigma: float, n: int, alpha: float, threshold: float) -> float:
    """The smallest slowdown (a fraction of time per op, 0.1 = 10 %) that ``n`` pairs with a
    robust spread ``sigma`` of their log ratios would flag with about 80 % power: it must be
    significant at two-sided ``alpha`` and its estimate beyond ``threshold``.

    Normal approximation with the signed-rank test's efficiency (3/pi of the t-test's); a
    ``sigma`` of 0 still needs the threshold. Infinite when ``n`` is too small for the
    signed-rank test to ever reach ``alpha`` (see :func:`min_pairs`).
    """
    from scipy.stats import norm

    if n < 1 or 2.0 / 2**n > alpha or not math.isfinite(sigma):
        return math.inf
    se = sigma / math.sqrt(n * 3.0 / math.pi)
    z = float(norm.ppf(1.0 - alpha / 2.0))
    log_slow = max(math.log1p(threshold) + Z_POWER_80 * se, (z + Z_POWER_80) * se)
    return math.expm1(log_slow)
