"""Run records → the frontier study's aggregate: the cells (``cells.py``: per-variant statistics,
frontier points, family bests, regrets) and what they say to run (``choices.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from benchmarks.frontier.cells import Cell, cells_of
from benchmarks.frontier.choices import GoalCheck, TaskAnswer, goal_check, task_answer
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


def aggregate(records: Iterable[RunRecord]) -> FrontierAggregate:
    cells = cells_of(records)
    return FrontierAggregate(
        cells=cells,
        answers={task: task_answer(by_regime) for task, by_regime in cells.items()},
        overall=task_answer({f"{t}/{r}": c for t, by in cells.items() for r, c in by.items()}),
        goal=goal_check(cells),
    )
