"""Reward velocity: how fast the batch reward is climbing, per update (SPEC §1.3).

Modes:
- ``"published"``: v_t = m_t − m_{t−1} with m the bias-corrected EMA_decay of the reward
  (decay 0.95), the estimator of the SAFE code. In reward units per step; 0 on the first update.
- ``"scale_invariant"``: the published velocity divided by the running reward std (an
  exponentially weighted std with ``std_decay``), so the same ``velocity_target`` means the same
  thing whatever the reward's scale.
- ``"holt"``: Holt's linear (double exponential) smoothing, ℓ_t = α·r_t + (1 − α)(ℓ_{t−1} +
  b_{t−1}), b_t = β(ℓ_t − ℓ_{t−1}) + (1 − β)·b_{t−1} with α = 1 − decay, β = 1 − trend_decay;
  v_t = b_t. Unlike a differenced EMA its trend does not lag a steady climb.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._state import Stateful, build_record, json_keys, require
from ._validation import all_finite, measurement, one_of, positive
from ._validation import decay as check_decay
from .filters import debiased

VELOCITY_MODES = ("published", "scale_invariant", "holt")


@json_keys(seen="count")
class VelocityState(NamedTuple):
    seen: int = 0
    """Rewards seen (saved as ``count``)."""
    level: float = 0.0
    """Published/scale-invariant: the raw (zero-started) EMA moment; Holt: the level ℓ."""
    trend: float = 0.0
    """Holt's trend b."""
    mean: float = 0.0
    """Exponentially weighted mean and variance of the reward (scale-invariant mode)."""
    variance: float = 0.0
    velocity: float = 0.0


class RewardVelocity(Stateful[VelocityState]):
    """Estimate d(reward)/d(step) from a stream of batch-mean rewards.

    Args:
        mode: "published", "scale_invariant" or "holt" (see the module docstring).
        decay: EMA decay of the reward level (published 0.95); Holt's α = 1 − decay.
        std_decay: decay of the reward std estimate; only in "scale_invariant" mode
            (default 0.99).
        trend_decay: Holt's trend decay, β = 1 − trend_decay; only in "holt" mode (default 0.9).
        eps: in "scale_invariant" mode, the std is floored at eps·|mean reward| so that rounding
            noise of a constant reward is not mistaken for movement.
    """

    _record = VelocityState

    def __init__(
        self,
        mode: str = "published",
        decay: float = 0.95,
        std_decay: float | None = None,
        trend_decay: float | None = None,
        eps: float = 1e-6,
    ) -> None:
        self.mode = one_of("mode", mode, VELOCITY_MODES)
        self.decay = check_decay("decay", decay)
        if std_decay is not None and self.mode != "scale_invariant":
            raise ValueError(f"std_decay={std_decay!r} is only used in mode 'scale_invariant'")
        if trend_decay is not None and self.mode != "holt":
            raise ValueError(f"trend_decay={trend_decay!r} is only used in mode 'holt'")
        self.std_decay = None
        if self.mode == "scale_invariant":
            self.std_decay = check_decay("std_decay", 0.99 if std_decay is None else std_decay)
        self.trend_decay = None
        if self.mode == "holt":
            given = 0.9 if trend_decay is None else trend_decay
            self.trend_decay = check_decay("trend_decay", given)
        self.eps = positive("eps", eps)
        self._state = VelocityState()

    def update(self, reward: float) -> float:
        """Feed one batch-mean reward (finite, magnitude ≤ ``MAX_MEASUREMENT``); returns the
        velocity estimate."""
        s, velocity = self._step(self._state, measurement("reward", reward))
        if not all_finite(s.level, s.trend, s.mean, s.variance, velocity):
            # Unreachable for bounded rewards; kept as the contract's guard.
            raise ValueError(f"reward {reward!r} overflows the velocity estimate")
        self._state = s
        return velocity

    def _step(self, s: VelocityState, r: float) -> tuple[VelocityState, float]:
        """The record after the (finite) reward ``r``, and the velocity estimate."""
        count = s.seen + 1
        if self.mode == "holt":
            if s.seen == 0:
                return s._replace(seen=1, level=r, trend=0.0, velocity=0.0), 0.0
            assert self.trend_decay is not None  # set in this mode
            alpha, beta = 1.0 - self.decay, 1.0 - self.trend_decay
            level = alpha * r + (1.0 - alpha) * (s.level + s.trend)
            trend = beta * (level - s.level) + (1.0 - beta) * s.trend
            fields = (count, level, trend, s.mean, s.variance, trend)
            return build_record(VelocityState, fields), trend

        d = self.decay
        moment = d * s.level + (1.0 - d) * r
        velocity = 0.0
        if s.seen > 0:
            velocity = debiased(moment, d, count) - debiased(s.level, d, s.seen)
        mean, variance = s.mean, s.variance
        if self.mode == "scale_invariant":
            # West's exponentially weighted mean and variance, started at the first reward.
            sd = self.std_decay
            assert sd is not None  # set in this mode
            if s.seen == 0:
                mean, variance = r, 0.0
            else:
                diff = r - s.mean
                increment = (1.0 - sd) * diff
                mean = s.mean + increment
                variance = sd * (s.variance + diff * increment)
            # Below eps·|mean| the std is rounding noise of a (near-)constant reward, not spread.
            scale = max(variance**0.5, self.eps * abs(mean))
            velocity = velocity / scale if scale > 0.0 else 0.0
        fields = (count, moment, s.trend, mean, variance, velocity)
        return build_record(VelocityState, fields), velocity

    @property
    def velocity(self) -> float:
        return self._state.velocity

    @property
    def count(self) -> int:
        return self._state.seen

    def _initial_state(self) -> VelocityState:
        return VelocityState()

    def _config(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "decay": self.decay,
            "std_decay": self.std_decay,
            "trend_decay": self.trend_decay,
            "eps": self.eps,
        }

    def _check_state(self, record: VelocityState, owner: str) -> None:
        require(record.variance >= 0.0, owner, "variance", "be >= 0", record.variance)
