"""SAFE's PID-controlled KL threshold (SPEC §1.3)::

    τ_t = clip((τ_base + PID(v_t)) · φ_t, lower, upper)

The PID acts on the reward velocity v_t with error v_t − v_target, so the threshold rises (more
KL allowed) while the reward climbs faster than the target and tightens when it stalls. Unlike
the published code (SPEC §2.3), the clip is fed back into the PID: before each update its output
limits are set to [lower/φ_t − τ_base, upper/φ_t − τ_base], so the PID's own clamp (and its
anti-windup) sees exactly the saturation the threshold sees and nothing winds up in between.
"""

from __future__ import annotations

from typing import Any

from ._state import Stateful, parts_of, require
from ._validation import all_finite, clamp, finite, limits, non_negative, positive
from .pid import PID


class AdaptiveThreshold(Stateful):
    """Args:
    base: τ_base, the threshold at zero PID output (published 0.3).
    threshold_limits: (lower, upper) clip of τ (published (0.1, 0.6)); lower ≥ 0.
    kp, ki, kd: PID gains on the velocity error (published 0.3, 0.01, 0.05).
    velocity_target: v_target (published 0.001 reward units per step).
    derivative_filter, anti_windup: passed to the PID.
    """

    def __init__(
        self,
        base: float = 0.3,
        threshold_limits: tuple[float, float] = (0.1, 0.6),
        kp: float = 0.3,
        ki: float = 0.01,
        kd: float = 0.05,
        velocity_target: float = 0.001,
        derivative_filter: float | None = None,
        anti_windup: str = "clamp",
    ) -> None:
        self.base = non_negative("base", base)
        lower, upper = limits("threshold_limits", threshold_limits)
        if lower is None or upper is None:
            raise ValueError(f"threshold_limits must both be finite, got {threshold_limits!r}")
        self.lower = non_negative("threshold_limits[0]", lower)
        self.upper = finite("threshold_limits[1]", upper)
        self.velocity_target = finite("velocity_target", velocity_target)
        # Reverse action: feeding −v against a setpoint of −v_target makes e = v − v_target.
        self.pid = PID(
            kp,
            ki,
            kd,
            setpoint=-self.velocity_target,
            derivative_filter=derivative_filter,
            anti_windup=anti_windup,
        )
        self._threshold = clamp(self.base, self.lower, self.upper)

    def update(self, velocity: float, multiplier: float = 1.0) -> float:
        """One step: reward velocity v_t and phase multiplier φ_t in, τ_t out."""
        v = finite("velocity", velocity)
        phi = positive("multiplier", multiplier)
        if not all_finite(self.lower / phi, self.upper / phi):
            raise ValueError(f"multiplier {phi!r} is so small that the PID's limits overflow")
        saved = self.pid._state
        try:
            return self._update_unchecked(v, phi)
        except ValueError:
            self.pid._state = saved  # the new limits too: a rejected update changes nothing
            raise ValueError(f"velocity {v!r} overflows the threshold PID") from None

    def _update_unchecked(self, v: float, phi: float) -> float:
        """``update`` for a caller that has checked ``v`` (finite) and ``phi`` (> 0, limits
        finite) and restores the PID's state itself if the PID rejects the update."""
        # Valid by construction (lower ≤ upper and φ > 0 give ordered, non-NaN limits), so the
        # PID's checks are skipped.
        self.pid._set_limits_unchecked(self.lower / phi - self.base, self.upper / phi - self.base)
        u = self.pid._update_unchecked(-v, 1.0)
        # The PID's limits already keep this inside; the clip only absorbs rounding.
        self._threshold = clamp((self.base + u) * phi, self.lower, self.upper)
        return self._threshold

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def components(self) -> tuple[float, float, float]:
        return self.pid.components

    def reset(self) -> None:
        self.pid.reset()
        self._threshold = clamp(self.base, self.lower, self.upper)

    def _config(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "threshold_limits": [self.lower, self.upper],
            "velocity_target": self.velocity_target,
            "pid": self.pid._config(),
        }

    def _get_state(self) -> dict[str, Any]:
        return {"threshold": self._threshold, "pid": self.pid._get_state()}

    def _set_state(self, state: dict[str, Any]) -> None:
        parts_of(state, ("threshold", "pid"), "AdaptiveThreshold")
        threshold = state["threshold"]
        require(
            isinstance(threshold, int | float)
            and not isinstance(threshold, bool)
            and self.lower <= threshold <= self.upper,
            "AdaptiveThreshold",
            "threshold",
            f"be a float in the threshold limits [{self.lower!r}, {self.upper!r}]",
            threshold,
        )
        self.pid._set_state(state["pid"])  # validates all of the PID's state, then assigns it
        self._threshold = float(threshold)
