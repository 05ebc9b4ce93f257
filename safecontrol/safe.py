"""The SAFE controller: entropy-gated, PID-thresholded, predictive KL control (SPEC §1.2–§1.3).

Once per rollout batch (never inside the PPO epochs, SPEC §2.2) it takes detached batch statistics
and decides the penalty for the next update::

    kl_short, kl_long = EMA_0.9(KL), EMA_0.99(KL)          (bias-corrected)
    KL_pred = kl_short + horizon · slope(kl_short − kl_long)
    g_t = max(g_min, H_floor / (H_t + ε))                   (EntropyGate)
    v_t = RewardVelocity(reward);  φ_t = PhaseDetector(reward)
    τ_t = clip((τ_base + PID(v_t)) · φ_t, lo, hi)            (AdaptiveThreshold)
    P(KL) = c · g_t · max(0, KL − τ_t)²

The returned ``SafeDecision`` holds τ_t, g_t and c, which a training loop applies to the *live* KL
tensor (``safecontrol.torch.kl_penalty``) so the penalty carries gradient, plus ``coef`` =
dP/dKL at KL_pred for loops that can only apply β·KL.
"""

from __future__ import annotations

import math
from dataclasses import replace
from math import isfinite
from typing import Any, ClassVar, NamedTuple

from ._state import Stateful, build_record, require, view
from ._validation import (
    MAX_MEASUREMENT,
    all_finite,
    as_float,
    clamp,
    finite,
    non_negative,
    positive,
    positive_int,
)
from .decision import SafeDecision, _construct
from .filters import DualEMA, DualEMAState
from .gate import EntropyGate
from .penalty import _penalty_unchecked, _slope_unchecked
from .phase import Phase, PhaseDetector, PhaseState
from .safe_config import SafeConfig as SafeConfig  # its home before 0.2; still importable here
from .threshold import AdaptiveThreshold, ThresholdState
from .velocity import RewardVelocity, VelocityState


class SafeProgress(NamedTuple):
    step: int = 0
    """Accepted updates."""
    skipped: int = 0
    """Updates skipped for a non-finite measurement."""
    last_decision: SafeDecision | None = None
    """The decision of the last accepted update (saved as its ``as_dict``)."""


class SafeState(NamedTuple):
    """SAFE's state: its parts' records and its own progress (optax's chain state)."""

    kl_tracker: DualEMAState
    velocity: VelocityState
    phase_detector: PhaseState
    threshold: ThresholdState
    """Unchanged while ``use_pid`` is off."""
    controller: SafeProgress


class SafeController(Stateful[SafeState]):
    """SAFE's KL controller; call ``update`` once per rollout batch.

    Inputs are detached batch statistics: ``kl`` the mean per-token KL to the reference (of the
    estimator named in ``config.kl_estimator``), ``entropy`` the mean per-token policy entropy in
    nats, ``reward`` the batch-mean raw reward. Python floats, numpy scalars and 0-d tensors are
    accepted; converting them to host floats here is the update's only device synchronisation.
    """

    kl_unit: ClassVar[str] = "per_token"
    """The threshold and the preview limit are KL per token (``safecontrol.contract``)."""
    _record = SafeState

    def __init__(self, config: SafeConfig | None = None) -> None:
        self.config = SafeConfig() if config is None else config
        if not isinstance(self.config, SafeConfig):
            raise ValueError(f"config must be a SafeConfig, got {type(self.config).__name__}")
        c = self.config
        # The parts, as transitions: their records live in this controller's (``SafeState``).
        self._kl_tracker = DualEMA(c.kl_short_decay, c.kl_long_decay)
        self.gate = EntropyGate(c.entropy_floor, c.gate_minimum, c.gate_eps)
        self._velocity = RewardVelocity(c.velocity_mode, c.velocity_decay)
        self._phase_detector = PhaseDetector(c.phase_window, c.phase_mode)
        self._threshold = AdaptiveThreshold(
            c.threshold_base,
            c.threshold_limits,
            c.kp,
            c.ki,
            c.kd,
            c.velocity_target,
            c.derivative_filter,
            c.anti_windup,
        )
        self._state = self._initial_state()

    # ------------------------------------------------------------------ update
    def _measurements(
        self, kl: Any, entropy: Any, reward: Any
    ) -> tuple[float, float, float] | None:
        """Validated host floats, or None when a non-finite value is to be skipped."""
        values = as_float("kl", kl), as_float("entropy", entropy), as_float("reward", reward)
        kl_value, entropy_value, reward_value = values
        isfinite = math.isfinite
        if not (isfinite(kl_value) and isfinite(entropy_value) and isfinite(reward_value)):
            if self.config.on_nonfinite == "skip":
                return None
            for name, value in zip(("kl", "entropy", "reward"), values, strict=True):
                finite(name, value)
        non_negative("entropy", entropy_value)
        if self.config.kl_estimator != "k1" and kl_value < 0.0:
            raise ValueError(
                f"kl must be >= 0 for estimator {self.config.kl_estimator!r}, got {kl_value!r}"
            )
        bound = MAX_MEASUREMENT
        if not (
            -bound <= kl_value <= bound
            and entropy_value <= bound
            and -bound <= reward_value <= bound
        ):
            for name, value in zip(("kl", "entropy", "reward"), values, strict=True):
                if abs(value) > bound:
                    raise ValueError(f"{name} must have magnitude <= {bound:g}, got {value!r}")
        return values

    def update(
        self,
        *,
        kl: Any,
        entropy: Any = None,
        reward: Any = None,
        n_steps: Any = None,
        tokens_per_sequence: Any = None,
    ) -> SafeDecision:
        """Feed one rollout batch's statistics; returns the decision for the next update.

        ``kl`` (per token), ``entropy`` and ``reward`` are required. ``n_steps`` and
        ``tokens_per_sequence`` are accepted, validated and unused, so one loop can drive any
        controller with the same call (``safecontrol.contract``).
        """
        if n_steps is not None:
            positive_int("n_steps", n_steps)
        if tokens_per_sequence is not None:
            positive("tokens_per_sequence", tokens_per_sequence)
        if entropy is None or reward is None:
            missing = "entropy" if entropy is None else "reward"
            raise ValueError(f"{missing} is required by SafeController, got None")
        measured = self._measurements(kl, entropy, reward)
        c, s = self.config, self._state
        progress = s.controller
        if measured is None:
            skipped = progress.skipped + 1
            self._state = s._replace(controller=progress._replace(skipped=skipped))
            return replace(self.decision, skipped=skipped)
        kl_value, entropy_value, reward_value = measured

        # The measurements are validated above; the parts skip re-checking them. Each part's
        # transition returns its new record; nothing is assigned before the end, so a rejected
        # update changes nothing.
        phase_detector = self._phase_detector
        try:
            tracker, kl_short, kl_long, kl_slope = self._kl_tracker._step(s.kl_tracker, kl_value)
            kl_predicted = kl_short + c.prediction_horizon * kl_slope
            gate = self.gate._gate_unchecked(entropy_value) if c.use_gate else 1.0
            velocity_state, velocity = self._velocity._step(s.velocity, reward_value)
            phase_state, phase = phase_detector._step(s.phase_detector, reward_value)
            multiplier = phase_detector.multipliers[phase] if c.use_phase else 1.0
            if c.use_pid:
                # The multipliers are the published constants, so the PID's limits are finite.
                try:
                    threshold_state, threshold = self._threshold._step(
                        s.threshold, velocity, multiplier
                    )
                except ValueError:  # the PID's terms overflowed (huge gains or velocity target)
                    raise ValueError(
                        f"reward {reward_value!r} overflows the threshold PID"
                    ) from None
                pid_state = threshold_state.pid
                pid = (pid_state.p, pid_state.i, pid_state.d)
            else:
                threshold_state = s.threshold
                threshold = clamp(c.threshold_base * multiplier, *c.threshold_limits)
                pid = (0.0, 0.0, 0.0)
            penalty_args = (kl_predicted, threshold, gate, c.penalty_coef)
            coef = _slope_unchecked(*penalty_args)
            penalty = _penalty_unchecked(*penalty_args)
            total = kl_predicted + gate + velocity + threshold + coef + penalty
            if not isfinite(total) and not all_finite(
                kl_predicted, gate, velocity, threshold, coef, penalty
            ):
                # Extreme measurements, gains or horizons overflowed: name the input responsible.
                culprit = "kl" if not all_finite(kl_predicted, coef, penalty) else "reward"
                culprit = "entropy" if not all_finite(gate) else culprit
                raise ValueError(f"{culprit} overflows an internal quantity of SAFE's update")
        except ValueError as exc:
            raise ValueError(
                f"SafeController.update(kl={kl_value!r}, entropy={entropy_value!r}, "
                f"reward={reward_value!r}) rejected, nothing changed: {exc}"
            ) from None

        decision = _construct(
            SafeDecision,
            {
                "threshold": threshold,
                "gate": gate,
                "coef": coef,
                "penalty": penalty,
                "penalty_coef": c.penalty_coef,
                "kl": kl_value,
                "kl_short": kl_short,
                "kl_long": kl_long,
                "kl_predicted": kl_predicted,
                "entropy": entropy_value,
                "reward": reward_value,
                "reward_velocity": velocity,
                "phase": phase._value_,  # Enum.value is a (slow) property around _value_
                "phase_multiplier": multiplier,
                "active": kl_predicted > threshold,
                "pid": pid,
                "max_preview_kl": c.max_preview_kl,
                "step": progress.step + 1,
                "skipped": progress.skipped,
            },
        )
        done = build_record(SafeProgress, (progress.step + 1, progress.skipped, decision))
        parts = (tracker, velocity_state, phase_state, threshold_state, done)
        self._state = build_record(SafeState, parts)
        return decision

    @property
    def decision(self) -> SafeDecision:
        """The current decision; before any update, the neutral one (no penalty, gate 1)."""
        s = self._state.controller
        if s.last_decision is not None:
            return s.last_decision
        c = self.config
        multiplier = self._phase_detector.multipliers[Phase.WARMUP] if c.use_phase else 1.0
        return SafeDecision(
            threshold=clamp(c.threshold_base * multiplier, *c.threshold_limits),
            gate=1.0,
            coef=0.0,
            penalty=0.0,
            penalty_coef=c.penalty_coef,
            kl=0.0,
            kl_short=0.0,
            kl_long=0.0,
            kl_predicted=0.0,
            entropy=0.0,
            reward=0.0,
            reward_velocity=0.0,
            phase=Phase.WARMUP.value,
            phase_multiplier=multiplier,
            active=False,
            pid=(0.0, 0.0, 0.0),
            max_preview_kl=c.max_preview_kl,
            step=0,
            skipped=s.skipped,
        )

    def step_scale(self, preview_kl: float) -> float:
        """Preview step scaling: min(1, max_preview_kl / preview_kl) (SPEC §1.2)."""
        return self.decision.step_scale(preview_kl)

    # ------------------------------------------------------------------ the parts, for reading
    @property
    def kl_tracker(self) -> DualEMA:
        """A copy of the KL tracker at the current state (changing it changes nothing here)."""
        return view(self._kl_tracker, self._state.kl_tracker)

    @property
    def velocity(self) -> RewardVelocity:
        """A copy of the reward-velocity estimator at the current state."""
        return view(self._velocity, self._state.velocity)

    @property
    def phase_detector(self) -> PhaseDetector:
        """A copy of the phase detector at the current state."""
        return view(self._phase_detector, self._state.phase_detector)

    @property
    def threshold(self) -> AdaptiveThreshold:
        """A copy of the adaptive threshold at the current state."""
        return view(self._threshold, self._state.threshold)

    # ------------------------------------------------------------------ state
    def _initial_state(self) -> SafeState:
        return SafeState(
            self._kl_tracker._initial_state(),
            self._velocity._initial_state(),
            self._phase_detector._initial_state(),
            self._threshold._initial_state(),
            SafeProgress(),
        )

    def _config(self) -> dict[str, Any]:
        return self.config.as_dict()

    def _check_state(self, state: SafeState, owner: str) -> None:
        self._kl_tracker._check_state(state.kl_tracker, f"{owner}.kl_tracker")
        self._velocity._check_state(state.velocity, f"{owner}.velocity")
        self._phase_detector._check_state(state.phase_detector, f"{owner}.phase_detector")
        self._threshold._check_state(state.threshold, f"{owner}.threshold")
        s = state.controller
        require(
            (s.last_decision is None) == (s.step == 0),
            owner,
            "last_decision",
            "be null exactly when step is 0",
            s.last_decision,
        )
        if s.last_decision is not None:
            self._check_decision(s.last_decision, s, f"{owner}.last_decision")

    def _check_decision(self, d: SafeDecision, s: SafeProgress, owner: str) -> None:
        """The stored last decision's ranges and consistency (its types are checked)."""
        c = self.config
        lower, upper = c.threshold_limits
        phases = [p.value for p in Phase]
        rules = (
            ("step", d.step == s.step, f"equal the controller's step {s.step}"),
            ("skipped", d.skipped <= s.skipped, f"not exceed the controller's {s.skipped}"),
            ("threshold", lower <= d.threshold <= upper, f"lie in [{lower!r}, {upper!r}]"),
            ("gate", d.gate >= 0.0, "be >= 0"),
            ("coef", d.coef >= 0.0, "be >= 0"),
            ("penalty", d.penalty >= 0.0, "be >= 0"),
            ("entropy", d.entropy >= 0.0, "be >= 0"),
            ("penalty_coef", d.penalty_coef == c.penalty_coef, f"be {c.penalty_coef!r}"),
            ("max_preview_kl", d.max_preview_kl == c.max_preview_kl, f"be {c.max_preview_kl!r}"),
            ("phase", d.phase in phases, f"be one of {phases}"),
            ("phase_multiplier", d.phase_multiplier > 0.0, "be > 0"),
            ("active", d.active == (d.kl_predicted > d.threshold), "be kl_predicted > threshold"),
        )
        for field, ok, rule in rules:
            require(ok, owner, field, rule, getattr(d, field))
