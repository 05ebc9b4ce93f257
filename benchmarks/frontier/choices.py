"""What the cells say a user should run: the pick per task and overall, and the goal check of
the controller that needs no β (its goal: SPEC §7), both against the best fixed β in hindsight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from benchmarks.frontier.cells import NO_BETA, Cell, VariantStats

ADHERENCE_GOAL = 0.95
"""KL within 1.1 × the budget on at least this share of post-warm-up steps."""


@dataclass(frozen=True)
class RegimePick:
    best_beta: str | None
    pick: str | None
    """The controller with the highest mean gold regret here."""


@dataclass(frozen=True)
class TaskAnswer:
    """Which controller to run on a task (or, overall, on every task × regime)."""

    per_regime: dict[str, RegimePick]
    match_best_beta_everywhere: tuple[str, ...]
    """Controllers whose regret CI lower bound is ≥ −tolerance in every regime."""
    too_few_seeds: bool
    """No controller has a regret CI in every regime (one paired seed)."""
    pick: str | None
    """The highest worst-regime mean regret, among the matching ones where there are any."""
    pick_worst_regime_regret: float | None


def controllers(cell: Cell) -> dict[str, VariantStats]:
    """The variants of a cell that need no tuned β and have a regret against the best β."""
    return {
        n: e for n, e in cell.variants.items() if e.family is None and e.gold_regret is not None
    }


def _regret_mean(entry: VariantStats) -> float:
    regret = entry.gold_regret
    assert regret is not None and regret.estimate.mean is not None
    return regret.estimate.mean


def task_answer(by_regime: Mapping[str, Cell]) -> TaskAnswer:
    """Per regime the controller with the highest mean gold regret; across regimes the one whose
    worst regime's mean regret is highest, preferring those whose regret CI lower bound is
    ≥ −tolerance in every regime."""
    per_regime = {}
    for regime, cell in by_regime.items():
        found = controllers(cell)
        pick = max(found, key=lambda n: _regret_mean(found[n]), default=None)
        per_regime[regime] = RegimePick(best_beta=cell.best_beta, pick=pick)
    everywhere = set.intersection(*(set(controllers(c)) for c in by_regime.values()))
    worst = {n: min(_regret_mean(c.variants[n]) for c in by_regime.values()) for n in everywhere}

    matching = sorted(
        n
        for n in everywhere
        if all(
            (r := c.variants[n].gold_regret) is not None and r.within_tolerance
            for c in by_regime.values()
        )
    )
    pick = max(matching or sorted(everywhere), key=lambda n: worst[n], default=None)
    return TaskAnswer(
        per_regime=per_regime,
        match_best_beta_everywhere=tuple(matching),
        # With one paired seed there is no CI, so "no match" would be a statement about nothing.
        too_few_seeds=not any(
            all(
                (r := c.variants[n].gold_regret) is not None and r.estimate.ci is not None
                for c in by_regime.values()
            )
            for n in everywhere
        ),
        pick=pick,
        pick_worst_regime_regret=None if pick is None else worst[pick],
    )


@dataclass(frozen=True)
class GoalRow:
    task: str
    regime: str
    n: int
    regret_mean: float | None
    regret_low: float | None
    regret_high: float | None
    ci_low_ok: bool | None
    above_zero: bool | None
    crashes_ok: bool
    """No more proxy or gold crashes than the best β."""
    collapse_steps: float | None
    adherence: float | None
    adherence_ok: bool | None


@dataclass(frozen=True)
class GoalCheck:
    """The goal of the controller that needs no β: gold regret CI lower bound ≥ −tolerance on
    every cell and > 0 on at least half; never more crashes than the best β; no entropy
    collapse; KL ≤ 1.1 × budget on ≥ ``ADHERENCE_GOAL`` of post-warm-up steps."""

    controller: str
    cells: tuple[GoalRow, ...]
    cells_above_zero: int
    met: bool


def goal_check(cells: Mapping[str, Mapping[str, Cell]], name: str = NO_BETA) -> GoalCheck:
    rows = []
    for task, by_regime in cells.items():
        for regime, cell in by_regime.items():
            entry, best = cell.variants.get(name), cell.best_beta
            if entry is None or best is None or entry.gold_regret is None:
                continue
            regret, theirs = entry.gold_regret, cell.variants[best]
            adherence = entry.metrics["budget_adherence"].mean
            rows.append(
                GoalRow(
                    task=task,
                    regime=regime,
                    n=regret.estimate.n,
                    regret_mean=regret.estimate.mean,
                    regret_low=regret.estimate.low,
                    regret_high=regret.estimate.high,
                    ci_low_ok=regret.within_tolerance,
                    above_zero=regret.above_zero,
                    crashes_ok=entry.proxy_crashes.total <= theirs.proxy_crashes.total
                    and entry.gold_crashes.total <= theirs.gold_crashes.total,
                    collapse_steps=entry.metrics["entropy_collapse_steps"].mean,
                    adherence=adherence,
                    adherence_ok=None if adherence is None else adherence >= ADHERENCE_GOAL,
                )
            )
    above = sum(bool(r.above_zero) for r in rows)
    met = bool(rows) and all(
        r.ci_low_ok and r.crashes_ok and not r.collapse_steps and r.adherence_ok for r in rows
    )
    return GoalCheck(
        controller=name,
        cells=tuple(rows),
        cells_above_zero=above,
        met=met and 2 * above >= len(rows),
    )
