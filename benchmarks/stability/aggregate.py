"""The stability sweep's records → typed statistics per (regime, variant) and paired comparisons.

Per (regime, variant): mean and 95% bootstrap CI over seeds of each SPEC §5 measure
(``benchmarks.stats``: 10 000 resamples, seed 0). Paired on the same seeds, each variant against
PPO and each ablation against full SAFE: the mean difference with its 95% bootstrap CI and a
two-sided Wilcoxon signed-rank test. With n non-zero paired differences the smallest attainable p
is 2/2^n, so fewer than 6 seeds can never reach p < 0.05: such comparisons are "too few seeds to
conclude" whatever their CI says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import wilcoxon

from benchmarks.stability.plan import BASELINE, FULL_SAFE, is_ablation
from benchmarks.stability.records import MEASURES, RunRecord
from benchmarks.stats import Estimate, mean_estimate, paired_difference

ALPHA = 0.05
"""Significance level of the Wilcoxon test."""


@dataclass(frozen=True)
class PairedTest:
    """``values − baseline`` on the same seeds."""

    difference: Estimate
    """Mean paired difference with its bootstrap CI."""
    relative: float | None
    """mean(values) / mean(baseline) − 1; None when the baseline's mean is 0."""
    p_value: float | None
    """Two-sided Wilcoxon signed-rank p; None when every difference is 0."""
    min_attainable_p: float
    """2 / 2^n with n non-zero differences: the p of a unanimous sign."""
    verdict: str
    """"better" / "worse" (p < 0.05 and the CI excludes 0, in the measure's sense), "different"
    (a measure with no better side), "no significant difference", "too few seeds to conclude"
    or "no difference on any seed"."""


def min_attainable_p(n_nonzero: int) -> float:
    """The smallest two-sided exact Wilcoxon p with n non-zero differences: 2 / 2^n."""
    return 2.0 / 2.0**n_nonzero if n_nonzero > 0 else 1.0


def paired(
    values: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray, better: int
) -> PairedTest:
    """Paired comparison of ``values`` against ``baseline`` (same seeds, same order); ``better``:
    +1 when higher is better, -1 when lower is, 0 neither."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    difference = paired_difference(a, b)
    nonzero = int(np.count_nonzero(a - b))
    p_value = None
    if nonzero:
        p_value = float(wilcoxon(a - b, zero_method="wilcox").pvalue)
    smallest_p = min_attainable_p(nonzero)
    if smallest_p >= ALPHA:
        verdict = "too few seeds to conclude" if nonzero else "no difference on any seed"
    elif p_value is not None and p_value < ALPHA and difference.excludes_zero:
        sign = 1 if (difference.mean or 0.0) > 0 else -1
        verdict = "better" if sign * better > 0 else "worse" if better else "different"
    else:
        verdict = "no significant difference"
    base = float(np.mean(b))
    return PairedTest(
        difference=difference,
        relative=None if base == 0.0 else float(np.mean(a)) / base - 1.0,
        p_value=p_value,
        min_attainable_p=smallest_p,
        verdict=verdict,
    )


@dataclass(frozen=True)
class Group:
    """One (regime, variant) over its seeds."""

    regime: str
    variant: str
    lr: float
    steps: int
    seeds: tuple[int, ...]
    measures: Mapping[str, Estimate]
    """Each of ``MEASURES`` over the seeds that reported it."""


@dataclass(frozen=True)
class Comparison:
    """A variant against a baseline of the same regime on their common seeds."""

    regime: str
    variant: str
    baseline: str
    seeds: tuple[int, ...]
    measures: Mapping[str, PairedTest | None]
    """Each of ``MEASURES`` on the seeds where both report it; None where none do."""


@dataclass(frozen=True)
class StabilityAggregate:
    groups: tuple[Group, ...]
    """Sorted by regime, then variant."""
    comparisons: tuple[Comparison, ...]
    """Per regime, per variant: against PPO, then (an ablation) against full SAFE."""

    @property
    def regimes(self) -> list[str]:
        return list(dict.fromkeys(g.regime for g in self.groups))

    def in_regime(self, regime: str) -> list[Group]:
        return [g for g in self.groups if g.regime == regime]

    def group(self, regime: str, variant: str) -> Group | None:
        return next((g for g in self.in_regime(regime) if g.variant == variant), None)

    def comparison(self, regime: str, variant: str, baseline: str) -> Comparison | None:
        return next(
            (
                c
                for c in self.comparisons
                if (c.regime, c.variant, c.baseline) == (regime, variant, baseline)
            ),
            None,
        )


def _values(records: Mapping[int, RunRecord], name: str, seeds: Sequence[int]) -> np.ndarray:
    return np.array(
        [np.nan if (v := records[s].measures.get(name)) is None else v for s in seeds],
        dtype=np.float64,
    )


def _group(regime: str, variant: str, by_seed: Mapping[int, RunRecord]) -> Group:
    seeds = sorted(by_seed)
    measures = {}
    for name in MEASURES:
        x = _values(by_seed, name, seeds)
        measures[name] = mean_estimate(x[np.isfinite(x)])
    first = by_seed[seeds[0]]
    return Group(regime, variant, first.lr, first.steps, tuple(seeds), measures)


def _compare(
    regime: str,
    variant: str,
    baseline: str,
    runs: Mapping[int, RunRecord],
    base: Mapping[int, RunRecord],
) -> Comparison:
    common = sorted(set(runs) & set(base))
    measures: dict[str, PairedTest | None] = {}
    for name, measure in MEASURES.items():
        a, b = _values(runs, name, common), _values(base, name, common)
        keep = np.isfinite(a) & np.isfinite(b)
        measures[name] = paired(a[keep], b[keep], measure.better) if keep.any() else None
    return Comparison(regime, variant, baseline, tuple(common), measures)


def aggregate(records: Sequence[RunRecord]) -> StabilityAggregate:
    """Every (regime, variant) group and every paired comparison of ``records``."""
    runs: dict[tuple[str, str], dict[int, RunRecord]] = {}
    for record in records:
        key = (record.regime, record.variant)
        if record.seed in runs.setdefault(key, {}):
            raise ValueError(f"two records of {record.regime}/{record.variant}/seed{record.seed}")
        runs[key][record.seed] = record
    keys = sorted(runs)
    groups = tuple(_group(regime, variant, runs[(regime, variant)]) for regime, variant in keys)
    comparisons = []
    for regime, variant in keys:
        for baseline in (BASELINE, FULL_SAFE):
            if variant in (baseline, BASELINE) or (regime, baseline) not in runs:
                continue
            if baseline == FULL_SAFE and not is_ablation(variant):
                continue
            comparisons.append(
                _compare(
                    regime, variant, baseline, runs[(regime, variant)], runs[(regime, baseline)]
                )
            )
    return StabilityAggregate(groups, tuple(comparisons))
