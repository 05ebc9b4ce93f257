"""Run records → the frontier study's aggregate: the cells (``cells.py``: per-variant statistics,
frontier points, family bests, regrets), what they say to run (``choices.py``) and gold against
the learning rate (``lr_curve.py``).

The picks are made over the regimes that run every variant (all but
``plan.LR_SWEEP_REGIMES``): the learning-rate sweep's regimes run three variants, and a pick "in
every regime" over them would leave only those three to choose from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from benchmarks.frontier.cells import Cell, cells_of
from benchmarks.frontier.choices import GoalCheck, TaskAnswer, goal_check, task_answer
from benchmarks.frontier.lr_curve import LrCurve, lr_curves
from benchmarks.frontier.plan import LR_SWEEP_REGIMES
from benchmarks.frontier.records import RunRecord


@dataclass(frozen=True)
class FrontierAggregate:
    cells: dict[str, dict[str, Cell]]
    """{task: {regime: cell}}."""
    answers: dict[str, TaskAnswer]
    """Per task: the pick over its regimes."""
    overall: TaskAnswer
    """The same rule over every task × regime: one default for a user who cannot name the task."""
    goal: GoalCheck
    lr_curves: dict[str, tuple[LrCurve, ...]]
    """Per task (those with two lrs or more): gold against the learning rate."""


def aggregate(records: Iterable[RunRecord]) -> FrontierAggregate:
    cells = cells_of(records)
    full = {
        task: {r: c for r, c in by.items() if r not in LR_SWEEP_REGIMES}
        for task, by in cells.items()
    }
    full = {task: by for task, by in full.items() if by}
    return FrontierAggregate(
        cells=cells,
        answers={task: task_answer(by_regime) for task, by_regime in full.items()},
        overall=task_answer({f"{t}/{r}": c for t, by in full.items() for r, c in by.items()}),
        goal=goal_check(cells),
        lr_curves=lr_curves(cells),
    )
