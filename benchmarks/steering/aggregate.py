"""Runs → the steering study's typed aggregate: held-out gold regret against the best fixed β,
and drawdown.

A run is read from its directory (``done.json`` and the ``eval_*`` rows of ``metrics.jsonl``,
laid out as ``<task>/<regime>/<variant>/seed<k>``) or from the per-run records that
``steering.json`` stores. Per task, learning rate and horizon h: the best fixed β in hindsight is
the ``beta-*`` variant with the highest mean held-out gold at h; a variant's gold regret is its
gold at h minus the best β's on the same seed, mean over the paired seeds with
``benchmarks.stats``' bootstrap interval; its drawdown at h is the best evaluation's gold up to h
minus the gold at h (mean over seeds with its interval). Crashes (SPEC §5, of the proxy and of
the batch gold) and entropy-collapse steps are the whole run's.

The same comparison at each run's *best evaluation* up to h (the best fixed β then chosen by its
mean best evaluation) bounds what any rule that stops or steers a run by labelled evaluations
could keep of the variant's own path: it is the gold of a run stopped at its best evaluation by
an oracle. Every run has the same evaluations, so the maximum's upward bias from evaluation noise
is alike for every variant.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stats import Estimate, mean_estimate, paired_difference
from benchmarks.steering.plan import is_fixed_beta
from reference_trainer.run_dir.files import read_step_records


@dataclass(frozen=True)
class RunResult:
    """One finished run's evaluations and its whole-run incidents."""

    task: str
    regime: str
    variant: str
    seed: int
    gold: dict[int, float]
    """Held-out gold per evaluated iteration."""
    kl: dict[int, float]
    """Held-out KL to the reference (k3, nats per token) per evaluated iteration."""
    crashes: int
    """Proxy and batch-gold crashes over the whole run."""
    collapse_steps: int
    """Entropy-collapse steps over the whole run."""


@dataclass(frozen=True)
class VariantRow:
    """One variant in one cell, at the cell's horizon."""

    variant: str
    n: int
    """Seeds of the variant."""
    gold: float
    """Mean held-out gold over its seeds."""
    kl: float
    """Mean held-out KL (k3, nats per token)."""
    regret: Estimate | None
    """Gold − the best fixed β's over the seeds both ran; None without such a seed."""
    drawdown: Estimate
    """Best evaluation's gold up to the horizon − the gold at it: mean over seeds, with its
    bootstrap interval (the goal is a bound on the mean, so its uncertainty is reported)."""
    best_eval_gold: float
    """Mean over seeds of the best evaluation's gold up to the horizon."""
    best_eval_regret: Estimate | None
    """Best evaluation's gold − that of the fixed β best by it, over the seeds both ran."""
    crashes: int
    """Summed over seeds."""
    collapse_steps: int
    """Summed over seeds."""


@dataclass(frozen=True)
class Cell:
    task: str
    regime: str
    horizon: int
    """Iteration at which gold is judged."""
    best_beta: str
    best_beta_at_best_eval: str
    """The fixed β with the highest mean best-evaluation gold up to the horizon."""
    rows: tuple[VariantRow, ...]
    """By variant name."""


@dataclass(frozen=True)
class SteeringResults:
    """What ``steering.json`` holds: the cells and the per-run records they come from."""

    cells: tuple[Cell, ...]
    runs: tuple[RunResult, ...]


def load_runs(runs_dir: Path) -> list[RunResult]:
    """Every finished run (``done.json``) under ``runs_dir``."""
    results = []
    for done_path in sorted(runs_dir.glob("*/*/*/seed*/done.json")):
        run_dir = done_path.parent
        done = json.loads(done_path.read_text())
        spec, summary = done["spec"], done["summary"]
        evaluations = [r for r in read_step_records(run_dir / "metrics.jsonl") if "eval_gold" in r]
        results.append(
            RunResult(
                task=spec["task"],
                regime=spec["regime"],
                variant=spec["variant"],
                seed=int(spec["seed"]),
                gold={int(r["step"]): float(r["eval_gold"]) for r in evaluations},
                kl={int(r["step"]): float(r["eval_kl"]) for r in evaluations},
                crashes=int(summary.get("crashes", 0)) + int(summary.get("gold_crashes", 0)),
                collapse_steps=int(summary.get("entropy_collapse_steps", 0)),
            )
        )
    return results


def runs_from_results(results: Mapping[str, Any]) -> list[RunResult]:
    """The per-run records of a ``steering.json`` (JSON keys of the evaluations are strings)."""
    return [
        RunResult(
            task=r["task"],
            regime=r["regime"],
            variant=r["variant"],
            seed=int(r["seed"]),
            gold={int(step): float(v) for step, v in r["gold"].items()},
            kl={int(step): float(v) for step, v in r["kl"].items()},
            crashes=int(r["crashes"]),
            collapse_steps=int(r["collapse_steps"]),
        )
        for r in results.get("runs", ())
    ]


def read_results(path: Path) -> SteeringResults:
    """The aggregate of a ``steering.json``, recomputed from its per-run records (the horizons
    are those of its cells)."""
    stored = json.loads(path.read_text())
    horizons = tuple(sorted({int(c["horizon"]) for c in stored["cells"]}))
    return aggregate(runs_from_results(stored), horizons)


def best_eval_gold(gold: Mapping[int, float], horizon: int) -> float:
    """The best evaluation's gold up to ``horizon``."""
    return max(v for step, v in gold.items() if step <= horizon)


def drawdown(gold: Mapping[int, float], horizon: int) -> float:
    """Best evaluation's gold up to ``horizon`` − the gold at ``horizon``."""
    return best_eval_gold(gold, horizon) - gold[horizon]


def paired_regret(
    seeds: Mapping[int, RunResult],
    best: Mapping[int, RunResult],
    value: Callable[[RunResult], float],
) -> Estimate | None:
    """``value`` of a variant's runs − the best β's, over the seeds both ran (None: no pair)."""
    paired = [s for s in sorted(seeds) if s in best]
    if not paired:
        return None
    return paired_difference([value(seeds[s]) for s in paired], [value(best[s]) for s in paired])


def variant_runs(
    results: Iterable[RunResult], task: str, regime: str, horizon: int
) -> dict[str, dict[int, RunResult]]:
    """The runs of ``task`` and ``regime`` that reached ``horizon``: by variant, by seed."""
    by_variant: dict[str, dict[int, RunResult]] = {}
    for run in results:
        if run.task == task and run.regime == regime and horizon in run.gold:
            by_variant.setdefault(run.variant, {})[run.seed] = run
    return by_variant


def seed_mean(seeds: Mapping[int, RunResult], value: Callable[[RunResult], float]) -> float:
    """The mean of ``value`` over a variant's runs."""
    return float(np.mean([value(r) for r in seeds.values()]))


def best_fixed_beta(
    by_variant: Mapping[str, Mapping[int, RunResult]], value: Callable[[RunResult], float]
) -> str | None:
    """The fixed β whose runs have the highest mean ``value`` over its seeds (None: no fixed β)."""
    betas = [v for v in by_variant if is_fixed_beta(v)]
    if not betas:
        return None
    return max(betas, key=lambda v: seed_mean(by_variant[v], value))


def cell(results: Iterable[RunResult], task: str, regime: str, horizon: int) -> Cell | None:
    """None when no fixed-β run of ``task`` and ``regime`` reached ``horizon``."""
    by_variant = variant_runs(results, task, regime, horizon)

    def final(run: RunResult) -> float:
        return run.gold[horizon]

    def at_best_eval(run: RunResult) -> float:
        return best_eval_gold(run.gold, horizon)

    best = best_fixed_beta(by_variant, final)
    best_at_best_eval = best_fixed_beta(by_variant, at_best_eval)
    if best is None or best_at_best_eval is None:
        return None
    rows = []
    for variant, seeds in sorted(by_variant.items()):
        rows.append(
            VariantRow(
                variant=variant,
                n=len(seeds),
                gold=seed_mean(seeds, final),
                kl=seed_mean(seeds, lambda r: r.kl[horizon]),
                regret=paired_regret(seeds, by_variant[best], final),
                drawdown=mean_estimate([drawdown(r.gold, horizon) for r in seeds.values()]),
                best_eval_gold=seed_mean(seeds, at_best_eval),
                best_eval_regret=paired_regret(seeds, by_variant[best_at_best_eval], at_best_eval),
                crashes=sum(r.crashes for r in seeds.values()),
                collapse_steps=sum(r.collapse_steps for r in seeds.values()),
            )
        )
    return Cell(task, regime, horizon, best, best_at_best_eval, tuple(rows))


def cells(results: Sequence[RunResult], horizons: Sequence[int]) -> list[Cell]:
    """Every (task, regime) with runs, by name, at each horizon."""
    keys = sorted({(r.task, r.regime) for r in results})
    found = [cell(results, task, regime, h) for task, regime in keys for h in horizons]
    return [c for c in found if c is not None]


def aggregate(runs: Sequence[RunResult], horizons: Sequence[int]) -> SteeringResults:
    ordered = sorted(runs, key=lambda r: (r.task, r.regime, r.variant, r.seed))
    return SteeringResults(tuple(cells(ordered, horizons)), tuple(ordered))
