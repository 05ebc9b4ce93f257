"""The plant study's statistics as typed aggregates: event rates (Wilson intervals), means
(``benchmarks.stats.Estimate``), the runaway factor's sensitivity, and SAFE paired against each
other controller on the same (setting, seed) pairs (Newcombe's interval, McNemar's exact test,
Holm-adjusted over the overall comparisons). ``plan``'s docstring has the design.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from benchmarks.plant.plan import EVENTS, MEASURES, RUNAWAY_FACTORS, SAFE
from benchmarks.plant.records import Columns, Runs, concat
from benchmarks.stats import (
    RESAMPLES,
    Estimate,
    holm,
    mean_estimate,
    newcombe_paired_interval,
    wilson_interval,
)
from safecontrol.testing.demo import KL_BUDGET


@dataclass(frozen=True)
class Rate:
    """The share of runs with an event, with its 95% Wilson score interval."""

    count: int
    n: int
    rate: float
    low: float
    high: float


def event_rate(flags: np.ndarray) -> Rate:
    count, n = int(flags.sum()), int(flags.size)
    low, high = wilson_interval(count, n)
    return Rate(count=count, n=n, rate=count / n, low=low, high=high)


@dataclass(frozen=True)
class Group:
    """One controller's runs on a group of settings: event rates and measure means."""

    n: int
    events: dict[str, Rate]
    """By ``plan.EVENTS`` key."""
    measures: dict[str, Estimate]
    """By ``plan.MEASURES`` key."""


def summarize(columns: Columns, resamples: int = RESAMPLES) -> Group:
    return Group(
        n=int(columns["kl_p95"].size),
        events={key: event_rate(columns[key]) for key in EVENTS},
        measures={key: mean_estimate(columns[key], resamples) for key in MEASURES},
    )


@dataclass(frozen=True)
class PairedEvent:
    """SAFE's event flags against another controller's on the same runs."""

    n: int
    both: int
    safe_only: int
    other_only: int
    neither: int
    safe_rate: float
    other_rate: float
    difference: float
    """SAFE's rate − the other's: negative, fewer events under SAFE."""
    low: float
    high: float
    """Newcombe's paired interval of the difference."""
    p_value: float
    """McNemar's exact test: two-sided binomial test on the discordant pairs."""
    p_holm: float | None = None
    """Holm-adjusted over the overall comparisons (None per preset)."""

    @property
    def discordant(self) -> int:
        return self.safe_only + self.other_only


def paired_event(safe: np.ndarray, other: np.ndarray) -> PairedEvent:
    safe, other = safe.astype(bool), other.astype(bool)
    both, neither = int(np.sum(safe & other)), int(np.sum(~safe & ~other))
    safe_only, other_only = int(np.sum(safe & ~other)), int(np.sum(~safe & other))
    n = int(safe.size)
    discordant = safe_only + other_only
    p_value = 1.0 if discordant == 0 else float(stats.binomtest(safe_only, discordant).pvalue)
    low, high = newcombe_paired_interval(both, safe_only, other_only, neither)
    return PairedEvent(
        n=n,
        both=both,
        safe_only=safe_only,
        other_only=other_only,
        neither=neither,
        safe_rate=(both + safe_only) / n,
        other_rate=(both + other_only) / n,
        difference=(safe_only - other_only) / n,
        low=low,
        high=high,
        p_value=p_value,
    )


@dataclass(frozen=True)
class PlantAggregate:
    """Every statistic of the plant study, by controller (in sweep order)."""

    controllers: tuple[str, ...]
    overall: dict[str, Group]
    """Over every setting (equally weighted)."""
    settings_with_majority: dict[str, dict[str, int]]
    """Controller → event → settings where the event happened in more than half the seeds."""
    runaway_sensitivity: dict[str, dict[str, Rate]]
    """Controller → factor (``"1.5"``) → share of runs with KL p95 > factor × budget."""
    by_preset: dict[str, dict[str, Group]]
    """Preset → controller → its 9 grid cells."""
    by_setting: dict[str, dict[str, Group]]
    """Setting → controller."""
    paired_overall: dict[str, dict[str, PairedEvent]]
    """Other controller → event → SAFE against it over every setting (Holm-adjusted)."""
    paired_by_preset: dict[str, dict[str, dict[str, PairedEvent]]]
    """Preset → other controller → event (raw p-values)."""


def aggregate(
    runs: Runs, preset_of: Mapping[str, str], resamples: int = RESAMPLES
) -> PlantAggregate:
    """Every summary of the study from its runs (``preset_of``: setting name → its preset, in the
    settings' order)."""
    controllers = tuple(next(iter(runs.values())))
    names: Sequence[str] = list(preset_of)
    presets: dict[str, list[str]] = {}
    for name, preset in preset_of.items():
        presets.setdefault(preset, []).append(name)
    by_setting = {s: {c: summarize(runs[s][c], resamples) for c in controllers} for s in names}
    by_preset = {
        p: {c: summarize(concat(runs, members, c), resamples) for c in controllers}
        for p, members in presets.items()
    }
    overall, majority, sensitivity = {}, {}, {}
    for c in controllers:
        columns = concat(runs, names, c)
        overall[c] = summarize(columns, resamples)
        majority[c] = {e: sum(by_setting[s][c].events[e].rate > 0.5 for s in names) for e in EVENTS}
        sensitivity[c] = {
            f"{factor:g}": event_rate(columns["kl_p95"] > factor * KL_BUDGET)
            for factor in RUNAWAY_FACTORS
        }
    paired_overall: dict[str, dict[str, PairedEvent]] = {}
    paired_by_preset: dict[str, dict[str, dict[str, PairedEvent]]] = {}
    others = [c for c in controllers if c != SAFE]
    if SAFE in controllers:
        safe_all = concat(runs, names, SAFE)
        unadjusted = {
            c: {e: paired_event(safe_all[e], concat(runs, names, c)[e]) for e in EVENTS}
            for c in others
        }
        family = [(c, e) for c in others for e in EVENTS]
        adjusted = holm([unadjusted[c][e].p_value for c, e in family])
        p_holm = dict(zip(family, adjusted, strict=True))
        paired_overall = {
            c: {e: replace(unadjusted[c][e], p_holm=p_holm[c, e]) for e in EVENTS} for c in others
        }
        for p, members in presets.items():
            safe_p = concat(runs, members, SAFE)
            paired_by_preset[p] = {
                c: {e: paired_event(safe_p[e], concat(runs, members, c)[e]) for e in EVENTS}
                for c in others
            }
    return PlantAggregate(
        controllers=controllers,
        overall=overall,
        settings_with_majority=majority,
        runaway_sensitivity=sensitivity,
        by_preset=by_preset,
        by_setting=by_setting,
        paired_overall=paired_overall,
        paired_by_preset=paired_by_preset,
    )
