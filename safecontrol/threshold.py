"""SAFE's PID-controlled KL threshold (SPEC §1.3)::

    τ_t = clip((τ_base + PID(v_t)) · φ_t, lower, upper)

The PID acts on the reward velocity v_t with error v_t − v_target, so the threshold rises (more
KL allowed) while the reward climbs faster than the target and tightens when it stalls. Unlike
the published code (SPEC §2.3), the clip is fed back into the PID: before each update its output
limits are set to [lower/φ_t − τ_base, upper/φ_t − τ_base], so the PID's own clamp (and its
anti-windup) sees exactly the saturation the threshold sees and nothing winds up in between.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._state import Stateful, build_record, require, view
from ._validation import all_finite, clamp, finite, limits, non_negative, positive
from .pid import PID, PIDState


class ThresholdState(NamedTuple):
    threshold: float
    """τ of the last update (τ_base clipped before any). Kept, not derived: recomputing it from
    the PID would need the last φ, which only the limits set for that update encode."""
    pid: PIDState


class AdaptiveThreshold(Stateful[ThresholdState]):
    """Args:
    base: τ_base, the threshold at zero PID output (published 0.3).
    threshold_limits: (lower, upper) clip of τ (published (0.1, 0.6)); lower ≥ 0.
    kp, ki, kd: PID gains on the velocity error (published 0.3, 0.01, 0.05).
    velocity_target: v_target (published 0.001 reward units per step).
    derivative_filter, anti_windup: passed to the PID.
    """

    _record = ThresholdState

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
        # The PID is a transition here; its record lives in this one's.
        self._pid = PID(
            kp,
            ki,
            kd,
            setpoint=-self.velocity_target,
            derivative_filter=derivative_filter,
            anti_windup=anti_windup,
        )
        self._state = self._initial_state()

    def update(self, velocity: float, multiplier: float = 1.0) -> float:
        """One step: reward velocity v_t and phase multiplier φ_t in, τ_t out."""
        v = finite("velocity", velocity)
        phi = positive("multiplier", multiplier)
        if not all_finite(self.lower / phi, self.upper / phi):
            raise ValueError(f"multiplier {phi!r} is so small that the PID's limits overflow")
        try:
            self._state, threshold = self._step(self._state, v, phi)
        except ValueError:
            raise ValueError(f"velocity {v!r} overflows the threshold PID") from None
        return threshold

    def _step(self, s: ThresholdState, v: float, phi: float) -> tuple[ThresholdState, float]:
        """The record after velocity ``v`` (finite) and multiplier ``phi`` (> 0, limits finite),
        and τ; a ``ValueError`` if the PID's terms overflow."""
        # Valid by construction (lower ≤ upper and φ > 0 give ordered, non-NaN limits), so the
        # PID's checks are skipped.
        pid = self._pid
        pid_state = pid._with_limits(
            s.pid, self.lower / phi - self.base, self.upper / phi - self.base
        )
        pid_state, u = pid._step(pid_state, -v, 1.0)
        # The PID's limits already keep this inside; the clip only absorbs rounding.
        threshold = clamp((self.base + u) * phi, self.lower, self.upper)
        return build_record(ThresholdState, (threshold, pid_state)), threshold

    @property
    def threshold(self) -> float:
        return self._state.threshold

    @property
    def components(self) -> tuple[float, float, float]:
        pid = self._state.pid
        return (pid.p, pid.i, pid.d)

    @property
    def pid(self) -> PID:
        """A copy of the threshold's PID at the current state (changing it changes nothing)."""
        return view(self._pid, self._state.pid)

    def _initial_state(self) -> ThresholdState:
        return ThresholdState(clamp(self.base, self.lower, self.upper), self._pid._initial_state())

    def _config(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "threshold_limits": [self.lower, self.upper],
            "velocity_target": self.velocity_target,
            "pid": self._pid._config(),
        }

    def _check_state(self, record: ThresholdState, owner: str) -> None:
        lower, upper = self.lower, self.upper
        require(
            lower <= record.threshold <= upper,
            owner,
            "threshold",
            f"be a float in the threshold limits [{lower!r}, {upper!r}]",
            record.threshold,
        )
        self._pid._check_state(record.pid, f"{owner}.pid")
