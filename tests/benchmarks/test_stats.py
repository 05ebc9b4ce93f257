"""The statistics every study shares (``benchmarks.stats``): the one bootstrap and its
``Estimate``, Wilson's and Newcombe's intervals and Holm's adjustment, on known values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmarks import stats as intervals
from benchmarks.stats import RESAMPLES, Estimate, mean_estimate, paired_difference


def test_an_estimate_is_the_mean_with_a_bootstrap_interval_around_it():
    values = np.array([0.1, 0.4, 0.35, 0.2, 0.5, 0.3, 0.25, 0.45])
    estimate = mean_estimate(values)
    assert estimate.n == 8 and estimate.mean == pytest.approx(values.mean())
    assert estimate.low < estimate.mean < estimate.high
    assert estimate.ci == intervals.bootstrap_mean_ci(values, RESAMPLES)  # the one bootstrap
    assert estimate.excludes_zero  # every value is above 0
    assert mean_estimate([]) == Estimate(n=0, mean=None)
    assert mean_estimate([0.3]).ci is None  # one value: a mean, no interval
    assert mean_estimate([0.2, 0.2, 0.2]).ci == (0.2, 0.2)  # constant: exact


def test_a_paired_difference_subtracts_seed_by_seed_and_refuses_unequal_shapes():
    base = np.array([0.3, 0.5, 0.1, 0.4])
    shifted = paired_difference(base + 0.05, base)
    assert shifted.mean == pytest.approx(0.05) and shifted.ci == pytest.approx((0.05, 0.05))
    assert shifted.excludes_zero
    mixed = paired_difference([0.1, -0.1, 0.2, -0.2], [0.0, 0.0, 0.0, 0.0])
    assert not mixed.excludes_zero
    with pytest.raises(ValueError, match=r"equal shapes, got \(3,\) and \(2,\)"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        (0, 10, (0.0, 3.841459 / 13.841459)),  # z²/(n + z²) at zero successes
        (10, 10, (10 / 13.841459, 1.0)),
        (5, 10, (0.236593, 0.763407)),
        (81, 263, (0.255289, 0.366210)),
    ],
)
def test_wilson_interval_matches_known_values(successes, n, expected):
    lo, hi = intervals.wilson_interval(successes, n)
    assert lo == pytest.approx(expected[0], abs=1e-5)
    assert hi == pytest.approx(expected[1], abs=1e-5)
    reference = stats.binomtest(successes, n).proportion_ci(method="wilson")
    assert (lo, hi) == pytest.approx((reference.low, reference.high), abs=1e-9)


def test_wilson_interval_edges():
    assert intervals.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        intervals.wilson_interval(3, 2)
    for n in (1, 7, 100):
        for k in range(n + 1):
            lo, hi = intervals.wilson_interval(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_newcombe_paired_interval_matches_fagerland_example():
    # Cavo et al. 2012 in Fagerland, Lydersen & Laake, ch. 8: estimate −0.0621 (−0.1186, −0.0046).
    lo, hi = intervals.newcombe_paired_interval(both=59, first_only=6, second_only=16, neither=80)
    assert lo == pytest.approx(-0.1186, abs=5e-5)
    assert hi == pytest.approx(-0.0046, abs=5e-5)


def test_holm_adjustment():
    assert intervals.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
