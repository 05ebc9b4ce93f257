"""A discrete PID controller with the features RLHF control loops need (SPEC §2.3, §3).

With ``derivative_filter=None`` and ``anti_windup="clamp"`` the output is exactly the textbook
parallel form (simple-pid's conventions)::

    e = setpoint − measurement
    P = kp·e
    I ← clamp(I + ki·e·dt, limits)
    D = −kd·(measurement − previous measurement)/dt      (0 on the first call)
    u = clamp(P + I + D, limits)

Beyond that: a first-order low-pass on the derivative (time constant in steps, backward-Euler
discretisation a = T/(T + dt), i.e. ``lfilter([1 − a], [1, −a])``), back-calculation anti-windup
(Åström & Hägglund: I += tracking_gain·dt·(u_sat − u_unsat)), a rate limit on the output, and a
manual mode with bumpless return: the first update after ``set_auto_mode(True)`` returns the held
output exactly (when the limits allow) by letting the integral absorb P and D.

An update whose terms overflow (huge gains times a huge error) raises ``ValueError`` naming the
measurement and changes nothing, so the state, and the state dict, stay finite.
"""

from __future__ import annotations

from math import isfinite
from typing import Any, NamedTuple

from ._state import Stateful, build_record, require
from ._validation import all_finite, boolean, clamp, finite, limits, non_negative, one_of, positive

ANTI_WINDUP_MODES = ("clamp", "back_calculation", "none")


class PIDState(NamedTuple):
    setpoint: float
    lower: float | None
    upper: float | None
    integral: float = 0.0
    last_measurement: float | None = None
    last_error: float | None = None
    last_output: float | None = None
    derivative: float = 0.0
    """The (filtered) derivative of the signal, before kd."""
    p: float = 0.0
    i: float = 0.0
    d: float = 0.0
    auto: bool = True
    bumpless_output: float | None = None
    """Output to reproduce on the first update after returning to auto mode."""


class PID(Stateful[PIDState]):
    """PID controller.

    Args:
        kp, ki, kd: proportional, integral (per unit time) and derivative gains, all ≥ 0. For a
            reverse-acting loop negate the measurement and the setpoint.
        setpoint: the target value of the measurement.
        output_limits: (lower, upper), ``None`` for unbounded; also bounds the integral in
            "clamp" mode.
        derivative_filter: time constant (in steps, > 0) of a first-order low-pass on the
            derivative, or ``None`` for no filter.
        derivative_on_measurement: differentiate −measurement (no kick when the setpoint
            changes) instead of the error.
        anti_windup: "clamp" (integral clamped to the output limits), "back_calculation"
            (integral bled by the saturation excess), or "none".
        tracking_gain: back-calculation gain per unit time (default 1.0: with dt = 1 the
            integral is moved by the whole excess); only with "back_calculation".
        rate_limit: largest output change per unit time (> 0), or ``None``.
    """

    _record = PIDState

    def __init__(
        self,
        kp: float,
        ki: float,
        kd: float,
        setpoint: float = 0.0,
        output_limits: tuple[float | None, float | None] = (None, None),
        derivative_filter: float | None = None,
        derivative_on_measurement: bool = True,
        anti_windup: str = "clamp",
        tracking_gain: float | None = None,
        rate_limit: float | None = None,
    ) -> None:
        self.kp = non_negative("kp", kp)
        self.ki = non_negative("ki", ki)
        self.kd = non_negative("kd", kd)
        self._initial_setpoint = finite("setpoint", setpoint)
        self._initial_limits = limits("output_limits", output_limits)
        self.derivative_filter = (
            None if derivative_filter is None else positive("derivative_filter", derivative_filter)
        )
        self.derivative_on_measurement = boolean(
            "derivative_on_measurement", derivative_on_measurement
        )
        self.anti_windup = one_of("anti_windup", anti_windup, ANTI_WINDUP_MODES)
        if tracking_gain is not None and self.anti_windup != "back_calculation":
            raise ValueError(
                f"tracking_gain={tracking_gain!r} is only used with anti_windup='back_calculation'"
                f", not {self.anti_windup!r}"
            )
        self.tracking_gain: float | None = None
        if self.anti_windup == "back_calculation":
            self.tracking_gain = (
                1.0 if tracking_gain is None else positive("tracking_gain", tracking_gain)
            )
        self.rate_limit = None if rate_limit is None else positive("rate_limit", rate_limit)
        self.reset()

    # ------------------------------------------------------------------ control
    def update(self, measurement: float, dt: float = 1.0) -> float:
        """Feed one measurement taken ``dt`` time units after the previous one; returns u."""
        m = finite("measurement", measurement)
        self._state, output = self._step(self._state, m, positive("dt", dt))
        return output

    def _step(self, s: PIDState, m: float, dt: float) -> tuple[PIDState, float]:
        """The record after measurement ``m`` (finite) taken ``dt`` (> 0) after the previous
        one, and the output u; a ``ValueError`` if the terms overflow."""
        error = s.setpoint - m
        if not s.auto:
            if not all_finite(error):
                raise ValueError(f"measurement {m!r} overflows the PID's error")
            # Track the process while in manual so the return to auto has no derivative kick.
            s = s._replace(last_measurement=m, last_error=error)
            return s, _held_output(s)

        p = self.kp * error
        if s.last_measurement is None:
            change = 0.0
        elif self.derivative_on_measurement:
            change = -(m - s.last_measurement)
        else:
            assert s.last_error is not None  # set with last_measurement (checked on load)
            change = error - s.last_error
        if self.derivative_filter is None:
            derivative = change / dt
            d = self.kd * change / dt  # the textbook's evaluation order, to the last bit
        else:
            a = self.derivative_filter / (self.derivative_filter + dt)
            derivative = a * s.derivative + (1.0 - a) * (change / dt)
            d = self.kd * derivative

        if s.bumpless_output is not None:
            integral = clamp(s.bumpless_output, s.lower, s.upper) - p - d
        else:
            integral = s.integral + self.ki * error * dt
        if self.anti_windup == "clamp":
            integral = clamp(integral, s.lower, s.upper)

        unsaturated = p + integral + d
        output = clamp(unsaturated, s.lower, s.upper)
        if self.rate_limit is not None and s.last_output is not None:
            step = self.rate_limit * dt
            output = clamp(output, s.last_output - step, s.last_output + step)
            output = clamp(output, s.lower, s.upper)

        stored_integral = integral
        if self.anti_windup == "back_calculation":
            gain = self.tracking_gain
            assert gain is not None  # set for this mode
            stored_integral = integral + gain * dt * (output - unsaturated)
        # One isfinite on the sum in the common case; all_finite only if that overflowed.
        total = error + stored_integral + unsaturated + output + derivative
        if not isfinite(total) and not all_finite(
            error, stored_integral, unsaturated, output, derivative
        ):
            raise ValueError(
                f"measurement {m!r} with dt {dt!r} overflows the PID's terms (P, I or D)"
            )
        # Every field, in order: keywords would double the cost of building this 13-field record.
        fields = (
            s.setpoint,
            s.lower,
            s.upper,
            stored_integral,  # integral
            m,  # last_measurement
            error,  # last_error
            output,  # last_output
            derivative,
            p,
            integral,  # i
            d,
            s.auto,
            None,  # bumpless_output
        )
        return build_record(PIDState, fields), output

    __call__ = update

    def set_auto_mode(self, enabled: bool, last_output: float | None = None) -> None:
        """Switch between automatic and manual control.

        Manual: ``update`` returns ``last_output`` (or the last automatic output) and only tracks
        the measurement. Back to automatic: the first update returns ``last_output`` (or the held
        output) exactly, the integral absorbing the proportional and derivative terms.
        """
        enabled = boolean("enabled", enabled)
        held = None if last_output is None else finite("last_output", last_output)
        s = self._state
        if held is None:
            held = s.last_output
        if enabled:
            self._state = s._replace(auto=True, bumpless_output=held)
        else:
            self._state = s._replace(auto=False, last_output=held)

    @property
    def auto_mode(self) -> bool:
        return self._state.auto

    # ------------------------------------------------------------------ introspection
    @property
    def components(self) -> tuple[float, float, float]:
        """(P, I, D) terms of the last automatic update."""
        s = self._state
        return (s.p, s.i, s.d)

    @property
    def setpoint(self) -> float:
        return self._state.setpoint

    @setpoint.setter
    def setpoint(self, value: float) -> None:
        self._state = self._state._replace(setpoint=finite("setpoint", value))

    @property
    def output_limits(self) -> tuple[float | None, float | None]:
        return (self._state.lower, self._state.upper)

    @output_limits.setter
    def output_limits(self, value: tuple[float | None, float | None]) -> None:
        self._state = self._with_limits(self._state, *limits("output_limits", value))

    def _with_limits(self, s: PIDState, lower: float | None, upper: float | None) -> PIDState:
        """The record ``s`` with output limits already known to be valid (no NaN, lower ≤ upper):
        the ``output_limits`` setter's transition."""
        integral = s.integral
        if self.anti_windup == "clamp":
            integral = clamp(integral, lower, upper)
        last_output = None if s.last_output is None else clamp(s.last_output, lower, upper)
        # Every field, as in the update: _replace would triple the cost of this per-update call.
        fields = (
            s.setpoint,
            lower,
            upper,
            integral,
            s.last_measurement,
            s.last_error,
            last_output,
            s.derivative,
            s.p,
            s.i,
            s.d,
            s.auto,
            s.bumpless_output,
        )
        return build_record(PIDState, fields)

    @property
    def integral(self) -> float:
        return self._state.integral

    def _initial_state(self) -> PIDState:
        """No history; the constructor's setpoint and limits (``reset`` returns here)."""
        lower, upper = self._initial_limits
        return PIDState(setpoint=self._initial_setpoint, lower=lower, upper=upper)

    # ------------------------------------------------------------------ state
    def _config(self) -> dict[str, Any]:
        return {
            "kp": self.kp,
            "ki": self.ki,
            "kd": self.kd,
            "setpoint": self._initial_setpoint,
            "output_limits": list(self._initial_limits),
            "derivative_filter": self.derivative_filter,
            "derivative_on_measurement": self.derivative_on_measurement,
            "anti_windup": self.anti_windup,
            "tracking_gain": self.tracking_gain,
            "rate_limit": self.rate_limit,
        }

    def _check_state(self, s: PIDState, owner: str) -> None:
        if s.lower is not None and s.upper is not None:
            require(s.lower <= s.upper, owner, "lower", f"not exceed upper {s.upper!r}", s.lower)
        if self.anti_windup == "clamp":
            # 0.0 is the reset value, which no update has clamped yet.
            require(
                s.integral == 0.0 or clamp(s.integral, s.lower, s.upper) == s.integral,
                owner,
                "integral",
                f"be 0 or lie within the output limits [lower, upper] = [{s.lower!r}, {s.upper!r}]",
                s.integral,
            )
        if s.last_measurement is not None:
            require(s.last_error is not None, owner, "last_error", "be set", s.last_error)


def _held_output(s: PIDState) -> float:
    """The output held in manual mode: the last output (0 if none), within the limits."""
    held = s.last_output if s.last_output is not None else 0.0
    return clamp(held, s.lower, s.upper)
