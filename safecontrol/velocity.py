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

from ._state import Stateful, record_from_dict, record_to_dict, require
from ._validation import all_finite, measurement, one_of, positive
from ._validation import decay as check_decay
from .filters import debiased

VELOCITY_MODES = ("published", "scale_invariant", "holt")


class VelocityState(NamedTuple):
    count: int = 0
    level: float = 0.0
    """Published/scale-invariant: the raw (zero-started) EMA moment; Holt: the level ℓ."""
    trend: float = 0.0
    """Holt's trend b."""
    mean: float = 0.0
    """Exponentially weighted mean and variance of the reward (scale-invariant mode)."""
    variance: float = 0.0
    velocity: float = 0.0


class RewardVelocity(Stateful):
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
        saved = self._state
        velocity = self._update_unchecked(measurement("reward", reward))
        s = self._state
        if not all_finite(s.level, s.trend, s.mean, s.variance, velocity):
            self._state = saved  # unreachable for bounded rewards; kept as the contract's guard
            raise ValueError(f"reward {reward!r} overflows the velocity estimate")
        return velocity

    def _update_unchecked(self, r: float) -> float:
        """``update`` for a caller that has already checked that ``r`` is a finite float."""
        s = self._state
        count = s.count + 1
        if self.mode == "holt":
            if s.count == 0:
                self._state = s._replace(count=1, level=r, trend=0.0, velocity=0.0)
                return 0.0
            alpha, beta = 1.0 - self.decay, 1.0 - self.trend_decay  # type: ignore[operator]
            level = alpha * r + (1.0 - alpha) * (s.level + s.trend)
            trend = beta * (level - s.level) + (1.0 - beta) * s.trend
            self._state = VelocityState(count, level, trend, s.mean, s.variance, trend)
            return trend

        d = self.decay
        moment = d * s.level + (1.0 - d) * r
        velocity = 0.0
        if s.count > 0:
            velocity = debiased(moment, d, count) - debiased(s.level, d, s.count)
        mean, variance = s.mean, s.variance
        if self.mode == "scale_invariant":
            # West's exponentially weighted mean and variance, started at the first reward.
            sd = self.std_decay
            if s.count == 0:
                mean, variance = r, 0.0
            else:
                diff = r - s.mean
                increment = (1.0 - sd) * diff  # type: ignore[operator]
                mean = s.mean + increment
                variance = sd * (s.variance + diff * increment)  # type: ignore[operator]
            # Below eps·|mean| the std is rounding noise of a (near-)constant reward, not spread.
            scale = max(variance**0.5, self.eps * abs(mean))
            velocity = velocity / scale if scale > 0.0 else 0.0
        self._state = VelocityState(count, moment, s.trend, mean, variance, velocity)
        return velocity

    @property
    def velocity(self) -> float:
        return self._state.velocity

    @property
    def count(self) -> int:
        return self._state.count

    def reset(self) -> None:
        self._state = VelocityState()

    def _config(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "decay": self.decay,
            "std_decay": self.std_decay,
            "trend_decay": self.trend_decay,
            "eps": self.eps,
        }

    def _get_state(self) -> dict[str, Any]:
        return record_to_dict(self._state)

    def _set_state(self, state: dict[str, Any]) -> None:
        self._state = record_from_dict(VelocityState, state, "RewardVelocity", _check_state)


def _check_state(record: VelocityState) -> None:
    require(record.variance >= 0.0, "RewardVelocity", "variance", "be >= 0", record.variance)
