"""SAFE's settings (``SafeConfig``): the published constants as defaults, each one checked.

Kept apart from the controller (``safecontrol.safe``) so that each file holds one concept: what a
user may set, and how the controller runs on it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ._validation import (
    NONFINITE_POLICIES,
    boolean,
    decay,
    finite,
    limits,
    non_negative,
    one_of,
    positive,
)
from .estimators import KL_ESTIMATORS
from .phase import PHASE_MODES, window_size
from .pid import ANTI_WINDUP_MODES
from .velocity import VELOCITY_MODES


@dataclass(frozen=True)
class SafeConfig:
    """SAFE's settings; defaults are the published constants (SPEC §1)."""

    kl_estimator: str = "k1"
    """Estimator of the per-token KL fed to ``update``: k1 may be negative (noise, SPEC §2.4);
    with k2 or k3 a negative KL is rejected as a bug upstream."""
    kl_short_decay: float = 0.9
    """Decay of the short (fast) bias-corrected EMA of the KL."""
    kl_long_decay: float = 0.99
    """Decay of the long (slow) EMA of the KL; larger than ``kl_short_decay``."""
    prediction_horizon: float = 0.0
    """Steps to extrapolate the KL trend; 0 reproduces the published (non-predictive) tracking."""
    penalty_coef: float = 0.1
    """c in P = c·g·max(0, KL − τ)²."""
    use_gate: bool = True
    """False: g_t = 1 (ablation "no entropy gate")."""
    entropy_floor: float = 2.0
    """H_floor in nats: the gate g = max(g_min, H_floor / (H + ε)) exceeds 1 below it."""
    gate_minimum: float = 0.5
    """g_min, the gate's lower bound (reached while entropy is far above the floor)."""
    gate_eps: float = 0.1
    """ε in the gate, keeping it finite as entropy approaches 0."""
    use_pid: bool = True
    """False: τ_t = clip(τ_base · φ_t) (ablation "fixed threshold")."""
    threshold_base: float = 0.3
    """τ_base, the threshold (KL per token) the PID moves."""
    threshold_limits: tuple[float, float] = (0.1, 0.6)
    """(lo, hi): τ_t is clipped into them; the PID's integral is held inside (anti-windup)."""
    kp: float = 0.3
    """Proportional gain of the threshold PID on the reward velocity's error."""
    ki: float = 0.01
    """Integral gain of the threshold PID."""
    kd: float = 0.05
    """Derivative gain of the threshold PID (on the measurement)."""
    derivative_filter: float | None = None
    """Time constant (steps) of a low-pass filter on the PID's derivative; None: unfiltered."""
    anti_windup: str = "clamp"
    """The PID's anti-windup: "clamp", "back_calculation" or "none"."""
    velocity_mode: str = "published"
    """How the reward velocity is estimated: "published" (EMA of differences) or
    "scale_invariant"."""
    velocity_decay: float = 0.95
    """EMA decay of the reward velocity."""
    velocity_target: float = 0.001
    """The PID's set point for the reward velocity (reward per step)."""
    use_phase: bool = True
    """False: φ_t = 1 (ablation "no phase detector")."""
    phase_window: int = 50
    """Steps in each of the two reward windows the phase detector compares."""
    phase_mode: str = "absolute"
    """Phase rules on "absolute" reward levels (published) or "scale_invariant" statistics."""
    max_preview_kl: float = 0.5
    """Preview step scaling: a step whose KL to the pre-step policy exceeds this is shrunk to
    it (nats per token)."""
    on_nonfinite: str = "raise"
    """"raise": a NaN/inf measurement raises ValueError; "skip": it is ignored, the last
    decision is held and ``skipped`` counts it."""

    def __post_init__(self) -> None:
        """Check every field and store it as a plain Python value of its annotated type (a float
        as ``float``, a numpy integer as ``int``); a bool must be ``True`` or ``False`` — the
        string ``"false"`` would read as true."""
        checked: dict[str, Any] = {}

        def keep(name: str, value: Any) -> Any:
            checked[name] = value
            return value

        keep("kl_estimator", one_of("kl_estimator", self.kl_estimator, KL_ESTIMATORS))
        short = keep("kl_short_decay", decay("kl_short_decay", self.kl_short_decay))
        long = keep("kl_long_decay", decay("kl_long_decay", self.kl_long_decay))
        if short >= long:
            raise ValueError(
                f"kl_short_decay {short!r} must be smaller than kl_long_decay {long!r}"
            )
        for name in ("prediction_horizon", "penalty_coef", "gate_minimum", "threshold_base"):
            keep(name, non_negative(name, getattr(self, name)))
        for name in ("entropy_floor", "gate_eps", "max_preview_kl"):
            keep(name, positive(name, getattr(self, name)))
        for name in ("use_gate", "use_pid", "use_phase"):
            keep(name, boolean(name, getattr(self, name)))
        lower, upper = limits("threshold_limits", self.threshold_limits)
        if lower is None or upper is None:
            raise ValueError(f"threshold_limits must both be finite, got {self.threshold_limits!r}")
        keep("threshold_limits", (non_negative("threshold_limits[0]", lower), upper))
        for name in ("kp", "ki", "kd"):
            keep(name, non_negative(name, getattr(self, name)))
        if self.derivative_filter is not None:
            keep("derivative_filter", positive("derivative_filter", self.derivative_filter))
        keep("anti_windup", one_of("anti_windup", self.anti_windup, ANTI_WINDUP_MODES))
        keep("velocity_mode", one_of("velocity_mode", self.velocity_mode, VELOCITY_MODES))
        keep("velocity_decay", decay("velocity_decay", self.velocity_decay))
        keep("velocity_target", finite("velocity_target", self.velocity_target))
        keep("phase_window", window_size("phase_window", self.phase_window))
        keep("phase_mode", one_of("phase_mode", self.phase_mode, PHASE_MODES))
        keep("on_nonfinite", one_of("on_nonfinite", self.on_nonfinite, NONFINITE_POLICIES))
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
