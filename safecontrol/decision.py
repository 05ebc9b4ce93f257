"""What a controller's ``update`` returns: an immutable record of the coefficients to use next.

Every decision answers two questions for the loss: ``loss_at(kl)`` (the penalty's value at a KL)
and ``slope_at(kl)`` (its derivative, the β to apply at that KL). A training loop that applies
these to the live KL of the batch, instead of to the KL the controller saw, is what lets the
penalty carry gradient (SPEC §2.1).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from ._state import finite_field, validated_fields
from ._validation import _show, finite, non_negative
from .penalty import dead_band_penalty, dead_band_slope, preview_step_scale

_D = TypeVar("_D")


def _construct(cls: type[_D], fields: dict[str, Any]) -> _D:
    """``cls(**fields)`` for a caller that passes every field, adopting ``fields`` as the
    instance dict (as pydantic's ``model_construct`` does). A frozen dataclass's ``__init__`` sets
    each field through ``object.__setattr__``: for SafeDecision's 19 fields that doubles the cost
    of the decision a controller builds on every update."""
    decision = object.__new__(cls)
    object.__setattr__(decision, "__dict__", fields)
    return decision


@dataclass(frozen=True)
class CoefDecision:
    """A linear penalty β·KL (or, for the entropy controller, a bonus coefficient)."""

    coef: float
    """The coefficient to use from now on, i.e. after this update."""
    step: int = 0
    """Accepted updates so far."""
    skipped: int = 0
    """Updates skipped because a measurement was not finite (``on_nonfinite="skip"``)."""

    def loss_at(self, kl: float) -> float:
        """β·kl for a finite ``kl`` (a number, see ``safecontrol._validation.as_float``); the
        penalty of a live tensor with gradient is ``safecontrol.torch.kl_penalty``."""
        return self.coef * finite("kl", kl)

    def slope_at(self, kl: float) -> float:
        """β, whatever the (finite) ``kl``."""
        finite("kl", kl)
        return self.coef

    max_preview_kl: ClassVar[float] = math.inf
    """A linear penalty never limits an optimizer step."""

    def step_scale(self, preview_kl: float) -> float:
        """1.0: keep every step whole (the ``preview_kl`` is only validated)."""
        non_negative("preview_kl", preview_kl)
        return 1.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SafeDecision:
    """SAFE's decision for the next rollout batch (SPEC §1.2–§1.3).

    The penalty is ``penalty_coef · gate · max(0, KL − threshold)²``; ``coef`` and ``penalty`` are
    its slope and value at the tracked (predicted) KL, for loops that can only apply β·KL.
    """

    threshold: float
    """τ_t, the KL (per token) above which the penalty acts."""
    gate: float
    """g_t = max(g_min, H_floor / (H_t + ε)); 1.0 when the gate is disabled."""
    coef: float
    """dP/dKL at ``kl_predicted``: the equivalent β for a β·KL loss."""
    penalty: float
    """P at ``kl_predicted``."""
    penalty_coef: float
    """c in P = c·g·max(0, KL − τ)²."""
    kl: float
    """The KL measurement of this update."""
    kl_short: float
    kl_long: float
    kl_predicted: float
    """kl_short extrapolated ``prediction_horizon`` steps along the short−long trend."""
    entropy: float
    reward: float
    reward_velocity: float
    phase: str
    phase_multiplier: float
    active: bool
    """Whether ``kl_predicted`` is above the threshold (the penalty is on)."""
    pid: tuple[float, float, float]
    """The threshold PID's (P, I, D) components; zeros when the PID is disabled."""
    max_preview_kl: float
    """The limit used by ``step_scale``."""
    step: int = 0
    skipped: int = 0

    def loss_at(self, kl: float) -> float:
        return dead_band_penalty(kl, self.threshold, self.gate, self.penalty_coef)

    def slope_at(self, kl: float) -> float:
        return dead_band_slope(kl, self.threshold, self.gate, self.penalty_coef)

    def step_scale(self, preview_kl: float) -> float:
        """Scale for a tentative update whose KL to the current policy is ``preview_kl``."""
        return preview_step_scale(preview_kl, self.max_preview_kl)

    def as_dict(self) -> dict[str, Any]:
        """A flat dict for logging (``pid`` split into ``pid_p``, ``pid_i``, ``pid_d``)."""
        out = dataclasses.asdict(self)
        out["pid_p"], out["pid_i"], out["pid_d"] = out.pop("pid")
        return out

    def _to_plain(self) -> dict[str, Any]:
        """The state codec's form (``safecontrol._state``): ``as_dict``."""
        return self.as_dict()

    @classmethod
    def _from_plain(cls, data: Any, owner: str) -> SafeDecision:
        """The decision ``as_dict`` wrote, every field's type checked (``ValueError``)."""
        if not isinstance(data, dict):
            raise ValueError(f"{owner} must be a dict, got {type(data).__name__} {_show(data)}")
        data = dict(data)
        pid_names = ("pid_p", "pid_i", "pid_d")
        if all(name in data for name in pid_names):
            data["pid"] = [finite_field(f"{owner}: {name}", data.pop(name)) for name in pid_names]
        return cls(**validated_fields(cls, data, owner))


@dataclass(frozen=True)
class BudgetDecision:
    """A linear penalty β·KL that also limits each optimizer step (``safecontrol.budget_kl``)."""

    coef: float
    """β, the KL coefficient to use from now on."""
    budget: float
    """The KL budget b in nats per token (0.0 before it is derived from the first entropy)."""
    max_preview_kl: float
    """The largest KL one optimizer step may move the policy (``inf`` before the budget exists)."""
    step: int = 0
    skipped: int = 0

    def loss_at(self, kl: float) -> float:
        """β·kl for a finite ``kl``."""
        return self.coef * finite("kl", kl)

    def slope_at(self, kl: float) -> float:
        """β, whatever the (finite) ``kl``."""
        finite("kl", kl)
        return self.coef

    def step_scale(self, preview_kl: float) -> float:
        """Scale for a tentative update whose KL to the current policy is ``preview_kl``:
        ``min(1, sqrt(max_preview_kl / preview_kl))``. KL grows with the square of a small
        step, so this brings the step's KL to the limit (SAFE's ``limit / preview`` shrinks it
        to ``limit² / preview``, far below: at a preview 100 × the limit, a step 10 × smaller
        than needed)."""
        preview = non_negative("preview_kl", preview_kl)
        if math.isinf(self.max_preview_kl) or preview <= self.max_preview_kl:
            return 1.0
        return math.sqrt(self.max_preview_kl / preview)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
