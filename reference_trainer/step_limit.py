"""Limiting how far one optimizer step moves the policy (``TrainConfig.preview_steps``).

A controller that limits steps (a finite ``decision.max_preview_kl``) bounds KL(π_before ‖
π_after) of every step. The trainer either previews each step (``step_limit="preview"``: one
more forward after every optimizer step, SAFE's) or predicts it (``"predicted"``): near the
current weights KL grows with the square of the step, KL ≈ κ·‖Δθ‖², so the κ measured on the
last step and this step's length ‖Δθ‖² predict its KL before it is used; the next epoch's forward,
which runs anyway, measures it and refreshes κ. The prediction costs two vector norms instead
of a forward; a step that overshot is shrunk and its forward redone.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .rollout import ForwardResult

STEP_SLACK = 1.5
"""A predicted step whose measured KL exceeds its limit by more than this factor is shrunk and
its forward redone. The prediction is a rough one (measured over 25 iterations of the offline
default: measured / predicted 0.45–2.4), so a step lands near its limit on average and only
outliers cost a forward (about one step in twelve at lr 0.01)."""
MAX_SHRINKS = 3
"""At most this many shrinks of one predicted step (each a forward); KL ∝ step² is accurate for
small steps, so one usually lands within the slack."""


class UncheckedStep(NamedTuple):
    """A predicted step, measured at the next forward."""

    before: ForwardResult
    """The forward of the weights the step started from."""
    saved: list[torch.Tensor]
    """Those weights (a shrink moves back toward them)."""
    length_sq: float
    """‖Δθ‖² of the step as taken (after its predicted shrink)."""


def squared_distance(params: list[torch.Tensor], saved: list[torch.Tensor]) -> float:
    """‖θ − θ_saved‖² over all parameters."""
    with torch.no_grad():
        return float(sum(((p - s).float() ** 2).sum() for p, s in zip(params, saved, strict=True)))


def shrink(params: list[torch.Tensor], saved: list[torch.Tensor], scale: float) -> None:
    """Keep ``scale`` of the step from ``saved``: θ ← θ_saved + scale · (θ − θ_saved)."""
    if scale >= 1.0:
        return
    with torch.no_grad():
        for param, old in zip(params, saved, strict=True):
            param.copy_(old + scale * (param - old))
