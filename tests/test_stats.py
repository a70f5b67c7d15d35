"""Pure statistics: arrays in, numbers out (the paired ones ``sharebench ab`` uses)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sharebench.stats import (
    hodges_lehmann,
    min_detectable,
    min_pairs,
    robust_sigma,
    wilcoxon_p,
)


def test_wilcoxon_all_one_sign_reaches_its_exact_floor():
    d = np.arange(1, 11) / 100.0  # 10 positive differences, no ties
    assert wilcoxon_p(d) == pytest.approx(2 / 2**10)
    assert wilcoxon_p(-d) == pytest.approx(2 / 2**10)


def test_wilcoxon_symmetric_differences_are_not_significant():
    d = np.array([-0.03, 0.01, -0.01, 0.02, -0.02, 0.03, 0.005, -0.004])
    assert wilcoxon_p(d) > 0.5
    assert math.isnan(wilcoxon_p([0.0, 0.0]))


def test_min_pairs_is_where_the_exact_floor_meets_the_level():
    n = min_pairs(0.01, 64)
    assert 2 / 2**n <= 0.01 / 64 < 2 / 2 ** (n - 1)
    assert min_pairs(0.05, 1) == 6
    with pytest.raises(ValueError, match="alpha"):
        min_pairs(1.5, 3)


def test_hodges_lehmann_estimate_and_interval():
    d = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    est, lo, hi = hodges_lehmann(d)
    walsh = sorted((d[i] + d[j]) / 2 for i in range(5) for j in range(i, 5))
    assert est == pytest.approx(np.median(walsh))
    assert lo <= est <= hi
    assert est < 10  # one wild pair does not drag the estimate


def test_hodges_lehmann_interval_covers_the_centre_of_noisy_pairs():
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(200):
        _, lo, hi = hodges_lehmann(rng.normal(0.05, 0.03, 20), level=0.9)
        covered += lo <= 0.05 <= hi
    assert 160 <= covered <= 198  # about 90 %


def test_robust_sigma_ignores_an_outlier():
    x = np.array([0.0, 0.01, -0.01, 0.02, -0.02, 5.0])
    assert robust_sigma(x) < 0.05
    assert math.isnan(robust_sigma([]))


def test_min_detectable_shrinks_with_pairs_and_never_beats_the_threshold():
    few = min_detectable(0.05, 12, 0.01 / 60, 0.05)
    many = min_detectable(0.05, 48, 0.01 / 60, 0.05)
    assert many < few
    assert many > 0.05  # it must still exceed the threshold to be flagged
    assert min_detectable(0.0, 20, 0.01, 0.05) == pytest.approx(0.05)
    assert min_detectable(0.05, 3, 0.01, 0.05) == math.inf  # 3 pairs cannot reach 0.01
