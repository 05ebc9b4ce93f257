"""Gold against the learning rate, per task: does the controller remove the lr search too?

The learning-rate sweep runs ``plan.LR_SWEEP`` (the standard lr's best fixed β, the best
trust-region β and the default controller) at lr 3e-4 and 3e-3; with the standard (1e-3) and
stress (1e-2) cells, which run every variant, each of them has four points. Beside them, each
lr's best fixed β in hindsight (the family best of that cell: at the two sweep-only lrs that is
the one β run there, not a β tuned to that lr). Read from the cells (``cells.py``); told in
``lr_report.py`` (its sentence, table and plot).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from benchmarks.frontier.cells import FIXED_BETA, Cell
from benchmarks.frontier.plan import LR_SWEEP
from benchmarks.stats import Estimate

BEST_FIXED_BETA = "best fixed β"
"""The curve through each lr's fixed-β family best (its points name the β)."""


@dataclass(frozen=True)
class LrPoint:
    regime: str
    lr: float
    variant: str
    """The run's variant (on the best-β curve, the β that was best at this lr)."""
    gold_final: Estimate
    kl_final: Estimate


@dataclass(frozen=True)
class LrCurve:
    name: str
    """A variant of ``LR_SWEEP``, or ``BEST_FIXED_BETA``."""
    points: tuple[LrPoint, ...]
    """By learning rate, ascending; only the lrs where it ran."""

    @property
    def best(self) -> LrPoint | None:
        """The point with the highest mean final gold."""
        scored = [(g, -p.lr, p) for p in self.points if (g := p.gold_final.mean) is not None]
        return max(scored, key=lambda s: s[:2])[2] if scored else None


def _point(cell: Cell, variant: str) -> LrPoint | None:
    entry = cell.variants.get(variant)
    if entry is None or cell.lr is None:
        return None
    return LrPoint(
        regime=cell.regime,
        lr=cell.lr,
        variant=variant,
        gold_final=entry.metrics["gold_final"],
        kl_final=entry.metrics["kl_final"],
    )


def lr_curves(cells: Mapping[str, Mapping[str, Cell]]) -> dict[str, tuple[LrCurve, ...]]:
    """Per task, the curves with points at two lrs or more (none: the sweep has not run)."""
    out = {}
    for task, by_regime in cells.items():
        ordered = sorted(
            (c for c in by_regime.values() if c.lr is not None), key=lambda c: c.lr or 0.0
        )
        curves = []
        for name in (*LR_SWEEP, BEST_FIXED_BETA):
            points = []
            for cell in ordered:
                variant = cell.families[FIXED_BETA].best if name == BEST_FIXED_BETA else name
                point = None if variant is None else _point(cell, variant)
                if point is not None:
                    points.append(point)
            if len(points) >= 2:
                curves.append(LrCurve(name, tuple(points)))
        if curves:
            out[task] = tuple(curves)
    return out
