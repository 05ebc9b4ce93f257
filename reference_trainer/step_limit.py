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

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from safecontrol.torch import global_means

from .ppo import exact_kl_per_token
from .rollout import ForwardResult, Rollout

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


class LimitedStep(NamedTuple):
    """What ``StepLimiter.limit`` did to one optimizer step."""

    scale: float
    """The share of the step kept (1: whole)."""
    step_kl: float | None
    """Its KL(before ‖ after) in nats per response token, previewed or predicted (None: the
    step was not limited)."""
    after: ForwardResult | None
    """The forward of the new weights, with gradients, when previewed whole for the next epoch."""
    unchecked: UncheckedStep | None
    """The predicted step, to be measured at the next epoch's forward (``StepLimiter.checked``)."""


class StepLimiter:
    """Shrinks each optimizer step so that KL(before ‖ after) ≤ ``decision.max_preview_kl``.

    The KL is the exact KL between the two policies' next-token distributions, averaged over the
    sampled response tokens (``exact_kl_per_token``): previewed (``step_limit="preview"``, and a
    predicted run's first step) or predicted from ``curvature``. ``curvature`` (KL per squared
    step length) is the run's state; it is checkpointed.
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        predicted: bool,
        forward: Callable[[Rollout], ForwardResult],
        check_finite: Callable[[str, float], None],
    ) -> None:
        self.params = params
        self.predicted = predicted
        self.forward = forward
        """The policy's forward on a rollout (with gradients where enabled)."""
        self.check_finite = check_finite
        self.curvature: float | None = None
        """KL per squared step length of the last measured step (predicted limit only)."""
        self.measured_at = -1
        """The iteration that measured it: an unchecked step (an iteration's last) is predicted
        only from this iteration's measurement."""

    def limit(
        self,
        decision: Any,
        rollout: Rollout,
        before: ForwardResult,
        saved: list[torch.Tensor],
        iteration: int,
        keep_forward: bool,
    ) -> LimitedStep:
        """Shrink the step just taken from ``saved`` (the forward of which is ``before``). With
        ``keep_forward`` a preview's forward runs with gradients and is returned when the step
        was kept whole (it is the next epoch's forward), and a predicted step is returned to be
        measured there; without it (an iteration's last step) a prediction is made only from a
        curvature measured in this iteration, else the step is previewed."""
        length_sq = squared_distance(self.params, saved) if self.predicted else 0.0
        fresh = keep_forward or self.measured_at == iteration
        if self.predicted and self.curvature is not None and fresh:
            step_kl = self.curvature * length_sq
            scale = decision.step_scale(step_kl)
            shrink(self.params, saved, scale)
            unchecked = UncheckedStep(before, saved, scale**2 * length_sq)
            return LimitedStep(scale, step_kl, None, unchecked if keep_forward else None)
        with torch.set_grad_enabled(keep_forward):
            after = self.forward(rollout)
        step_kl = self._step_kl(rollout, before, after)
        if self.predicted:
            self._measured(step_kl, length_sq, iteration)
        scale = decision.step_scale(step_kl)
        shrink(self.params, saved, scale)
        return LimitedStep(scale, step_kl, after if keep_forward and scale == 1.0 else None, None)

    def checked(
        self,
        decision: Any,
        rollout: Rollout,
        new: ForwardResult,
        step: UncheckedStep,
        iteration: int,
    ) -> tuple[ForwardResult, float]:
        """Measure a predicted step at the forward of the weights it reached (and so the next
        prediction's curvature); one that overshot its limit by more than ``STEP_SLACK`` is
        shrunk, its forward redone and measured again (at most ``MAX_SHRINKS`` times). Returns
        (the forward to use, the step's extra shrink factor)."""
        limit, factor = decision.max_preview_kl, 1.0
        for shrinks in range(MAX_SHRINKS + 1):
            step_kl = self._step_kl(rollout, step.before, new)
            self._measured(step_kl, step.length_sq * factor**2, iteration)
            if step_kl <= STEP_SLACK * limit or shrinks == MAX_SHRINKS:
                break
            more = decision.step_scale(step_kl)
            shrink(self.params, step.saved, more)
            factor *= more
            new = self.forward(rollout)
        return new, factor

    def state_dict(self) -> dict[str, Any]:
        return {"step_curvature": self.curvature}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        curvature = state.get("step_curvature")  # absent: saved before it existed
        if curvature is not None and not (math.isfinite(curvature) and curvature >= 0.0):
            raise ValueError(f"step_curvature must be finite and >= 0, got {curvature!r}")
        self.curvature = curvature

    def _measured(self, step_kl: float, length_sq: float, iteration: int) -> None:
        if length_sq > 0.0:  # a zero step (zero gradient) says nothing of the curvature
            self.curvature, self.measured_at = step_kl / length_sq, iteration

    def _step_kl(self, rollout: Rollout, before: ForwardResult, after: ForwardResult) -> float:
        """KL(before ‖ after) per response token, exact over the vocabulary, all processes
        (computed on the response tokens alone: padding is a third of the positions)."""
        mask = rollout.response_mask
        with torch.no_grad():
            kl = exact_kl_per_token(before.logits.detach()[mask], after.logits.detach()[mask])
            step_kl = global_means(kl=kl)["kl"]
        self.check_finite("KL of the policy step", step_kl)
        return step_kl
