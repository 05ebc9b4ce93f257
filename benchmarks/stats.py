"""Statistics shared by every study: the one bootstrap, paired differences and proportions.

- ``Estimate`` / ``mean_estimate`` / ``paired_difference``: a mean with its percentile-bootstrap
  interval (``bootstrap_mean_ci``: scipy.stats.bootstrap, ``RESAMPLES`` resamples from a generator
  seeded with ``SEED``, the same in every study so that one seed set gives one interval);
- ``wilson_interval``: Wilson's score interval of a binomial proportion (Wilson 1927);
- ``newcombe_paired_interval``: the difference of paired proportions (Newcombe 1998, method 10);
- ``holm``: Holm's step-down adjusted p-values;
- ``pooled_auc``: the AUC (Mann–Whitney) of a signal between two groups, pooled over strata;
- ``cluster_interval``: the percentile interval of any statistic, resampling whole clusters
  (a run's windows, say, which are not independent of each other).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 0


@dataclass(frozen=True)
class Estimate:
    """A mean over paired seeds (or runs) with its 95% bootstrap interval."""

    n: int
    mean: float | None
    """None when there are no values."""
    low: float | None = None
    high: float | None = None
    """The interval; None below 2 values."""

    @property
    def ci(self) -> tuple[float, float] | None:
        return None if self.low is None or self.high is None else (self.low, self.high)

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def mean_estimate(values: Sequence[float] | np.ndarray, resamples: int = RESAMPLES) -> Estimate:
    """The mean of ``values`` with its bootstrap interval (``bootstrap_mean_ci``)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return Estimate(n=0, mean=None)
    ci = bootstrap_mean_ci(x, resamples)
    return Estimate(
        n=int(x.size),
        mean=float(x.mean()),
        low=None if ci is None else ci[0],
        high=None if ci is None else ci[1],
    )


def paired_difference(
    values: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    resamples: int = RESAMPLES,
) -> Estimate:
    """Mean of ``values − baseline`` (the same seeds, in the same order) with its interval."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal shapes, got {a.shape} and {b.shape}")
    return mean_estimate(a - b, resamples)


def bootstrap_mean_ci(
    values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the mean; None below 2 values, exact for constant data
    (where scipy would warn about a degenerate distribution)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return None
    if np.ptp(x) == 0.0:
        return float(x[0]), float(x[0])
    result = stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion (Wilson 1927); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, {n}], got {successes!r}")
    z2, p = _z(confidence) ** 2, successes / n
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = math.sqrt(z2 * (p * (1 - p) / n + z2 / (4 * n * n))) / (1 + z2 / n)
    # The interval always holds p; min/max only absorb rounding at p = 0 or 1.
    return min(max(0.0, centre - half), p), max(min(1.0, centre + half), p)


def newcombe_paired_interval(
    both: int, first_only: int, second_only: int, neither: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Interval for p1 − p2 of paired proportions: Newcombe's (1998, Stat Med 17:2635, method 10)
    square-and-add of Wilson intervals with the continuity-corrected correlation φ*."""
    n = both + first_only + second_only + neither
    if n == 0:
        return -1.0, 1.0
    p1, p2 = (both + first_only) / n, (both + second_only) / n
    l1, u1 = wilson_interval(both + first_only, n, confidence)
    l2, u2 = wilson_interval(both + second_only, n, confidence)
    margins = (both + first_only) * (second_only + neither) * (both + second_only)
    margins *= first_only + neither
    phi = 0.0
    if margins > 0:
        cross = both * neither - first_only * second_only
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross < 0:
            phi = cross / math.sqrt(margins)
    diff = p1 - p2
    lower = diff - math.sqrt(
        max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2))
    )
    upper = diff + math.sqrt(
        max(0.0, (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1))
    )
    return max(-1.0, min(lower, diff)), min(1.0, max(upper, diff))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control)."""
    order = np.argsort(p_values, kind="stable")
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def pooled_auc(strata: Iterable[tuple[Sequence[float], Sequence[float]]]) -> float | None:
    """P(a value of the first group > one of the second, ties half) within each stratum's
    (first, second) pair of groups, pooled weighted by their pairs (None: no stratum has both).
    """
    total = weight = 0.0
    for first, second in strata:
        if len(first) and len(second):
            pairs = len(first) * len(second)
            total += float(stats.mannwhitneyu(first, second).statistic)
            weight += pairs
    return total / weight if weight else None


Item = TypeVar("Item")


def cluster_interval(
    clusters: Sequence[Sequence[Item]],
    statistic: Callable[[list[Item]], float | None],
    rng: np.random.Generator,
    resamples: int,
) -> tuple[float, float] | None:
    """The 95% percentile interval of ``statistic`` over ``resamples`` draws of as many clusters
    as there are, with replacement, their items pooled (None: it was undefined on half of them).
    """
    values = []
    for _ in range(resamples):
        drawn = rng.choice(len(clusters), size=len(clusters), replace=True)
        value = statistic([item for i in drawn for item in clusters[i]])
        if value is not None and math.isfinite(value):
            values.append(value)
    if len(values) < resamples // 2:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)
