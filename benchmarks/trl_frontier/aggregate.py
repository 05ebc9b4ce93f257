"""Runs → the TRL frontier's typed aggregate: per regime, each variant's final values by seed,
the best fixed β in hindsight, kl-budget's paired gold regret against it, and the step limit's
cost.

Final gold (proxy, KL) = the mean of the last ``FINAL_WINDOW`` steps' ``rewards/gold/mean``
(``rewards/vader/mean``, ``kl``). The best fixed β in hindsight is the ``beta-*`` variant with
the highest mean final gold (the first in ``VARIANTS`` order on a tie); a controlled variant's
gold regret is its final gold − the best β's on the same seed, mean over the paired seeds with
``benchmarks.stats``' bootstrap interval.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stats import Estimate, paired_difference
from benchmarks.trl_frontier.plan import (
    CONTROLLED,
    COST_PLAIN,
    FINAL_WINDOW,
    LEARNING_RATES,
    LIMITED,
    UNLIMITED,
    VARIANTS,
    is_fixed_beta,
    run_path,
    run_specs,
)


@dataclass(frozen=True)
class RunSummary:
    """One run's final values."""

    seed: int
    gold: float
    """Gold reward (never trained on), mean of the last ``FINAL_WINDOW`` steps."""
    proxy: float
    """VADER, GRPO's reward."""
    kl: float
    """TRL's logged KL to the reference (k3, nats per token)."""
    seconds_per_step: float
    """Median wall-clock seconds per optimizer step."""


@dataclass(frozen=True)
class VariantResult:
    variant: str
    runs: tuple[RunSummary, ...]
    """By seed, ascending."""

    def mean(self, value: str) -> float:
        """The mean over seeds of one ``RunSummary`` field (``"gold"``, ``"kl"`` ...)."""
        return float(np.mean([getattr(run, value) for run in self.runs]))

    def by_seed(self) -> dict[int, RunSummary]:
        return {run.seed: run for run in self.runs}


@dataclass(frozen=True)
class Regret:
    variant: str
    against: str
    """The best fixed β in hindsight."""
    gold: Estimate
    """Final gold − the best β's, paired by seed."""


@dataclass(frozen=True)
class RegimeResult:
    regime: str
    lr: float
    best_beta: str
    variants: tuple[VariantResult, ...]
    """Those with at least one run, in ``VARIANTS`` order."""
    regrets: tuple[Regret, ...]
    """Of the controlled variants with runs paired with the best β's."""
    limit_cost_ratio: float | None
    """Median over paired seeds of kl-budget's seconds per step with the limit / without it
    (runs two at a time on two shared cores); None without paired runs."""


@dataclass(frozen=True)
class StepLimitCost:
    """The step limit's cost measured apart (``--cost``): median seconds per step."""

    steps_measured: int
    """Per variant, after the warm-up."""
    seconds_per_step: dict[str, float]
    limit_over_plain_trl: float
    limit_over_no_limit: float


@dataclass(frozen=True)
class TrlFrontier:
    regimes: tuple[RegimeResult, ...]
    """Those with fixed-β runs, in ``LEARNING_RATES`` order."""
    step_limit_cost: StepLimitCost | None


Records = Mapping[tuple[str, str], Sequence[RunSummary]]
"""(regime, variant) → its runs' summaries."""


def summarise(run: Mapping[str, Any], seed: int) -> RunSummary:
    """Final (last ``FINAL_WINDOW`` steps) gold, proxy and KL, and the median seconds per step,
    of one run's JSON (``grpo_run.run_one``)."""
    tail = run["logs"][-FINAL_WINDOW:]

    def final(key: str) -> float:
        return float(np.mean([row[key] for row in tail if key in row]))

    return RunSummary(
        seed=seed,
        gold=final("rewards/gold/mean"),
        proxy=final("rewards/vader/mean"),
        kl=final("kl"),
        seconds_per_step=statistics.median(run["seconds"]),
    )


def records_from_runs(runs_dir: Path) -> dict[tuple[str, str], list[RunSummary]]:
    """The summaries of every planned run with a file under ``runs_dir``."""
    records: dict[tuple[str, str], list[RunSummary]] = {}
    for spec in sorted(run_specs(), key=lambda s: s.seed):
        path = run_path(runs_dir, spec)
        if path.is_file():
            run = json.loads(path.read_text())
            records.setdefault((spec.regime, spec.variant), []).append(summarise(run, spec.seed))
    return records


def records_from_results(results: Mapping[str, Any]) -> dict[tuple[str, str], list[RunSummary]]:
    """The per-run summaries stored in a results JSON (``words.TrlFrontierResults.to_json``)."""
    return {
        (regime["regime"], variant["variant"]): [RunSummary(**run) for run in variant["runs"]]
        for regime in results["frontier"]["regimes"]
        for variant in regime["variants"]
    }


def regime_result(records: Records, regime: str) -> RegimeResult | None:
    """None when ``regime`` has no fixed-β run."""
    variants = tuple(
        VariantResult(v, tuple(sorted(records[regime, v], key=lambda r: r.seed)))
        for v in VARIANTS
        if records.get((regime, v))
    )
    grid = [v for v in variants if is_fixed_beta(v.variant)]
    if not grid:
        return None
    best = max(grid, key=lambda v: v.mean("gold"))
    by_variant = {v.variant: v.by_seed() for v in variants}
    best_runs = by_variant[best.variant]
    regrets = []
    for variant in CONTROLLED:
        runs = by_variant.get(variant, {})
        seeds = sorted(set(runs) & set(best_runs))
        if seeds:
            gold = paired_difference(
                [runs[s].gold for s in seeds], [best_runs[s].gold for s in seeds]
            )
            regrets.append(Regret(variant, best.variant, gold))
    limited, unlimited = by_variant.get(LIMITED, {}), by_variant.get(UNLIMITED, {})
    paired = sorted(set(limited) & set(unlimited))
    ratios = [limited[s].seconds_per_step / unlimited[s].seconds_per_step for s in paired]
    return RegimeResult(
        regime=regime,
        lr=LEARNING_RATES[regime],
        best_beta=best.variant,
        variants=variants,
        regrets=tuple(regrets),
        limit_cost_ratio=float(np.median(ratios)) if ratios else None,
    )


def step_limit_cost(seconds: Mapping[str, Sequence[float]]) -> StepLimitCost:
    """Medians and ratios of ``grpo_run.measure_step_seconds``' seconds per step."""
    median = {v: statistics.median(values) for v, values in seconds.items()}
    return StepLimitCost(
        steps_measured=len(seconds[LIMITED]),
        seconds_per_step=median,
        limit_over_plain_trl=median[LIMITED] / median[COST_PLAIN],
        limit_over_no_limit=median[LIMITED] / median[UNLIMITED],
    )


def read_step_limit_cost(path: Path) -> StepLimitCost | None:
    """The cost file ``--cost`` writes (``dataclasses.asdict`` of ``StepLimitCost``); None
    where it was never measured."""
    return StepLimitCost(**json.loads(path.read_text())) if path.is_file() else None


def aggregate(records: Records, cost: StepLimitCost | None) -> TrlFrontier:
    found = (regime_result(records, regime) for regime in LEARNING_RATES)
    return TrlFrontier(tuple(r for r in found if r is not None), cost)
