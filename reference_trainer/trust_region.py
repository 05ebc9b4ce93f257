"""The step limit a run applies: the controller's own and the trainer's trust region, the tighter.

A controller limits steps through its decision (a finite ``max_preview_kl``: SAFE's preview,
kl-budget's step limit), and ``preview_steps = false`` switches that off. ``max_step_kl`` is the
trainer's own trust region (TRPO's δ, in nats per token of KL(before ‖ after) per optimizer step),
applied whatever the controller: with fixed-kl it is trust-region PPO, the baseline a user who
bounds every step would run beside a fixed β.

A limit tighter than the decision's shrinks a step by ``sqrt(limit / step KL)`` (KL grows with
the square of a small step, so that brings the step's KL to the limit); where the decision's own
limit is the tighter one, its own rule applies unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from safecontrol.contract import Decision


@dataclass(frozen=True)
class TrustRegion:
    """A decision whose step limit is the trust region's (``step_limit``); every other field is
    the decision's."""

    decision: Decision
    max_preview_kl: float

    @property
    def coef(self) -> float:
        return self.decision.coef

    @property
    def step(self) -> int:
        return self.decision.step

    @property
    def skipped(self) -> int:
        return self.decision.skipped

    def loss_at(self, kl: float) -> float:
        return self.decision.loss_at(kl)

    def slope_at(self, kl: float) -> float:
        return self.decision.slope_at(kl)

    def step_scale(self, preview_kl: float) -> float:
        if math.isinf(self.max_preview_kl) or preview_kl <= self.max_preview_kl:
            return 1.0
        return math.sqrt(self.max_preview_kl / preview_kl)


def step_limit(decision: Decision, preview_steps: bool, max_step_kl: float) -> Decision:
    """What the step limiter reads for this batch: the decision itself where it alone limits (or
    nothing limits), else a ``TrustRegion`` at the tighter of the two limits (``inf``: none)."""
    own = decision.max_preview_kl if preview_steps else math.inf
    region = max_step_kl if max_step_kl > 0 else math.inf
    if preview_steps and own <= region:
        return decision
    return TrustRegion(decision, min(own, region))
