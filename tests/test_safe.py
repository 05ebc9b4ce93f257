"""SafeController: composition, decisions, ablations, bad input, state."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from helpers import json_roundtrip
from hypothesis import given
from hypothesis import strategies as st

from safecontrol._validation import clamp
from safecontrol.decision import SafeDecision
from safecontrol.filters import DualEMA
from safecontrol.gate import EntropyGate
from safecontrol.penalty import dead_band_penalty, dead_band_slope
from safecontrol.phase import PhaseDetector
from safecontrol.safe import SafeConfig, SafeController
from safecontrol.threshold import AdaptiveThreshold
from safecontrol.velocity import RewardVelocity

measurement = st.fixed_dictionaries(
    {
        "kl": st.floats(-0.05, 5.0),
        "entropy": st.floats(0.0, 8.0),
        "reward": st.floats(-2.0, 2.0),
    }
)
streams = st.lists(measurement, min_size=1, max_size=120)
configs = st.builds(
    SafeConfig,
    prediction_horizon=st.sampled_from([0.0, 3.0]),
    use_gate=st.booleans(),
    use_pid=st.booleans(),
    use_phase=st.booleans(),
    velocity_mode=st.sampled_from(["published", "scale_invariant", "holt"]),
    phase_mode=st.sampled_from(["absolute", "scale_invariant"]),
    phase_window=st.integers(1, 30),
    derivative_filter=st.sampled_from([None, 3.0]),
    anti_windup=st.sampled_from(["clamp", "back_calculation"]),
)


@given(configs, streams)
def test_decision_invariants_hold_on_any_stream(config, stream):
    controller = SafeController(config)
    lo, hi = config.threshold_limits
    for m in stream:
        d = controller.update(**m)
        assert lo <= d.threshold <= hi
        assert d.gate >= (config.gate_minimum if config.use_gate else 1.0)
        assert d.coef >= 0.0 and d.penalty >= 0.0
        assert d.active == (d.kl_predicted > d.threshold)
        assert d.penalty == d.loss_at(d.kl_predicted)
        assert d.coef == d.slope_at(d.kl_predicted)
        assert (d.coef > 0) == (d.active and d.gate > 0 and config.penalty_coef > 0)


@given(configs, streams, st.data())
def test_state_dict_continuation_is_bit_identical(config, stream, data):
    cut = data.draw(st.integers(0, len(stream)))
    a = SafeController(config)
    for m in stream[:cut]:
        a.update(**m)
    b = SafeController(config)
    b.load_state_dict(json_roundtrip(a.state_dict()))
    assert b.decision == a.decision
    for m in stream[cut:]:
        assert a.update(**m) == b.update(**m)


@given(configs, streams)
def test_update_is_bit_identical_to_composing_the_public_primitives(config, stream):
    """The controller feeds its parts through unchecked fast paths once the measurements are
    validated; this pins them to the parts' public, validating API (repr tells -0.0 from 0.0)."""
    c = config
    tracker = DualEMA(c.kl_short_decay, c.kl_long_decay)
    gate = EntropyGate(c.entropy_floor, c.gate_minimum, c.gate_eps)
    velocity = RewardVelocity(c.velocity_mode, c.velocity_decay)
    detector = PhaseDetector(c.phase_window, c.phase_mode)
    threshold = AdaptiveThreshold(
        c.threshold_base,
        c.threshold_limits,
        c.kp,
        c.ki,
        c.kd,
        c.velocity_target,
        c.derivative_filter,
        c.anti_windup,
    )
    controller = SafeController(config)
    for step, m in enumerate(stream, start=1):
        tracker.update(m["kl"])
        kl_predicted = tracker.short + c.prediction_horizon * tracker.slope
        g = gate(m["entropy"]) if c.use_gate else 1.0
        v = velocity.update(m["reward"])
        phase = detector.update(m["reward"])
        phi = detector.multiplier if c.use_phase else 1.0
        if c.use_pid:
            tau, pid = threshold.update(v, phi), threshold.components
        else:
            tau, pid = clamp(c.threshold_base * phi, *c.threshold_limits), (0.0, 0.0, 0.0)
        expected = SafeDecision(
            threshold=tau,
            gate=g,
            coef=dead_band_slope(kl_predicted, tau, g, c.penalty_coef),
            penalty=dead_band_penalty(kl_predicted, tau, g, c.penalty_coef),
            penalty_coef=c.penalty_coef,
            kl=m["kl"],
            kl_short=tracker.short,
            kl_long=tracker.long,
            kl_predicted=kl_predicted,
            entropy=m["entropy"],
            reward=m["reward"],
            reward_velocity=v,
            phase=phase.value,
            phase_multiplier=phi,
            active=kl_predicted > tau,
            pid=pid,
            max_preview_kl=c.max_preview_kl,
            step=step,
        )
        assert repr(controller.update(**m)) == repr(expected)


def test_penalty_is_one_sided_and_gate_amplifies_it_at_low_entropy():
    calm, collapsing, low_kl = SafeController(), SafeController(), SafeController()
    for _ in range(5):
        d_calm = calm.update(kl=1.0, entropy=5.0, reward=0.0)
        d_collapse = collapsing.update(kl=1.0, entropy=0.1, reward=0.0)
        d_low = low_kl.update(kl=0.05, entropy=0.1, reward=0.0)
    assert d_low.coef == 0.0 and not d_low.active
    assert d_collapse.gate == pytest.approx(10.0) and d_calm.gate == 0.5
    assert d_collapse.coef == pytest.approx(20 * d_calm.coef)


def test_prediction_horizon_extrapolates_rising_kl():
    published, predictive = SafeController(), SafeController(SafeConfig(prediction_horizon=5.0))
    for t in range(60):
        a = published.update(kl=0.02 * t, entropy=2.0, reward=0.0)
        b = predictive.update(kl=0.02 * t, entropy=2.0, reward=0.0)
    assert a.kl_predicted == a.kl_short
    assert b.kl_predicted > b.kl_short
    assert b.coef > a.coef


def test_ablation_switches_change_the_decision():
    stream = [(0.8, 0.5, 0.01 * t) for t in range(80)]

    def last(config):
        controller = SafeController(config)
        for kl, h, r in stream:
            d = controller.update(kl=kl, entropy=h, reward=r)
        return d

    full = last(SafeConfig())
    no_gate = last(SafeConfig(use_gate=False))
    no_pid = last(SafeConfig(use_pid=False))
    no_phase = last(SafeConfig(use_phase=False))
    assert no_gate.gate == 1.0 != full.gate and no_gate.coef != full.coef
    assert no_pid.pid == (0.0, 0.0, 0.0) != full.pid
    assert no_pid.threshold == pytest.approx(0.3 * full.phase_multiplier)
    assert no_phase.phase_multiplier == 1.0 != full.phase_multiplier
    assert no_phase.threshold != full.threshold


def test_published_velocity_and_phase_drive_threshold():
    controller = SafeController()
    rising = [controller.update(kl=0.2, entropy=2.0, reward=0.02 * t) for t in range(80)]
    assert rising[10].phase == "warmup" and rising[-1].phase == "climbing"
    assert rising[-1].reward_velocity == pytest.approx(0.02, rel=0.1)
    assert rising[-1].threshold > 0.3 * 1.2  # PID raises the threshold while reward climbs fast


def test_controller_decisions_do_not_depend_on_how_often_it_is_read():
    """One update per rollout batch (SPEC §2.2): reading the decision never steps the state."""
    controller = SafeController()
    controller.update(kl=0.5, entropy=1.0, reward=0.1)
    before = controller.state_dict()
    for _ in range(3):
        _ = controller.decision
        controller.step_scale(2.0)
    assert controller.state_dict() == before


def test_step_scale_uses_preview_limit():
    controller = SafeController(SafeConfig(max_preview_kl=0.25))
    assert controller.step_scale(0.1) == 1.0
    assert controller.step_scale(1.0) == pytest.approx(0.25)
    assert controller.decision.max_preview_kl == 0.25


def test_accepts_numpy_scalars_like_floats():
    a, b = SafeController(), SafeController()
    for _ in range(20):
        x = a.update(kl=np.float32(0.5), entropy=np.float64(1.0), reward=np.float16(0.25))
        y = b.update(kl=float(np.float32(0.5)), entropy=1.0, reward=float(np.float16(0.25)))
    assert x == y


@pytest.mark.parametrize("field", ["kl", "entropy", "reward"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_measurement_raises_naming_it_and_leaves_state(field, bad):
    controller = SafeController()
    controller.update(kl=0.4, entropy=1.0, reward=0.1)
    before = controller.state_dict()
    m = {"kl": 0.4, "entropy": 1.0, "reward": 0.1, field: bad}
    with pytest.raises(ValueError, match=field):
        controller.update(**m)
    assert controller.state_dict() == before


def test_skip_policy_holds_decision_counts_skip_and_continues_unchanged():
    skipping = SafeController(SafeConfig(on_nonfinite="skip"))
    clean = SafeController(SafeConfig(on_nonfinite="skip"))
    for t in range(10):
        skipping.update(kl=0.1 * t, entropy=1.0, reward=0.05 * t)
        clean.update(kl=0.1 * t, entropy=1.0, reward=0.05 * t)
    held = skipping.decision
    d = skipping.update(kl=math.nan, entropy=1.0, reward=0.1)
    assert d.skipped == 1 and dataclasses.replace(d, skipped=0) == held
    after_skip = skipping.update(kl=0.5, entropy=1.0, reward=0.6)
    after_clean = clean.update(kl=0.5, entropy=1.0, reward=0.6)
    assert after_skip == dataclasses.replace(after_clean, skipped=1)


def test_skip_policy_still_rejects_invalid_finite_values():
    controller = SafeController(SafeConfig(on_nonfinite="skip"))
    with pytest.raises(ValueError, match="entropy"):
        controller.update(kl=0.1, entropy=-0.5, reward=0.0)


def test_negative_kl_allowed_for_k1_but_rejected_for_k3():
    assert SafeController().update(kl=-0.01, entropy=1.0, reward=0.0).coef == 0.0
    controller = SafeController(SafeConfig(kl_estimator="k3"))
    with pytest.raises(ValueError, match="kl"):
        controller.update(kl=-0.01, entropy=1.0, reward=0.0)
    assert controller.decision.step == 0


def test_measurements_are_keyword_only():
    with pytest.raises(TypeError):
        SafeController().update(0.1, 1.0, 0.0)  # type: ignore[misc]


@pytest.mark.parametrize(
    "field, value",
    [
        ("kl_estimator", "k4"),
        ("kl_short_decay", 1.0),
        ("kl_long_decay", 0.5),
        ("prediction_horizon", -1.0),
        ("penalty_coef", -0.1),
        ("entropy_floor", 0.0),
        ("gate_minimum", -1.0),
        ("gate_eps", 0.0),
        ("threshold_base", -0.3),
        ("threshold_limits", (0.6, 0.1)),
        ("kp", -0.3),
        ("ki", math.nan),
        ("derivative_filter", 0.0),
        ("anti_windup", "integrator_reset"),
        ("velocity_mode", "fast"),
        ("velocity_decay", 0.0),
        ("velocity_target", math.inf),
        ("phase_window", 0),
        ("phase_mode", "relative"),
        ("max_preview_kl", 0.0),
        ("on_nonfinite", "ignore"),
    ],
)
def test_config_rejects_bad_values_by_name(field, value):
    with pytest.raises(ValueError, match=field.split("_decay")[0]):
        SafeConfig(**{field: value})


def test_load_rejects_other_config_and_leaves_state():
    a = SafeController()
    a.update(kl=0.2, entropy=1.0, reward=0.0)
    b = SafeController(SafeConfig(penalty_coef=0.2))
    b.update(kl=0.3, entropy=1.0, reward=0.0)
    before = b.state_dict()
    with pytest.raises(ValueError, match="penalty_coef"):
        b.load_state_dict(a.state_dict())
    assert b.state_dict() == before


def test_load_of_corrupt_state_leaves_controller_unchanged():
    a = SafeController()
    for t in range(5):
        a.update(kl=0.2, entropy=1.0, reward=0.1 * t)
    broken = a.state_dict()
    del broken["state"]["threshold"]["pid"]["integral"]
    b = SafeController()
    b.update(kl=0.9, entropy=0.5, reward=1.0)
    before = b.state_dict()
    with pytest.raises(ValueError, match="integral"):
        b.load_state_dict(broken)
    assert b.state_dict() == before


def test_reset_returns_to_fresh_state():
    controller = SafeController()
    fresh = controller.state_dict()
    for t in range(60):
        controller.update(kl=0.5, entropy=1.0, reward=0.01 * t)
    controller.reset()
    assert controller.state_dict() == fresh
    assert controller.decision.step == 0 and controller.decision.coef == 0.0


# ---------------------------------------------------------------- all-or-nothing (issue 10, item 8)
@pytest.mark.parametrize(
    ("config", "inputs", "name"),
    [
        (SafeConfig(), {"reward": 1.7e308}, "reward"),
        (SafeConfig(), {"reward": -1e200}, "reward"),
        (SafeConfig(prediction_horizon=5.0), {"kl": 1.7e308}, "kl"),
        (SafeConfig(), {"entropy": 1e300}, "entropy"),
        # Within the measurement bound, but overflowing the penalty (c·g·excess²) or the
        # KL prediction: the parts have already been updated when the overflow is seen.
        (SafeConfig(penalty_coef=1e300), {"kl": 1e10}, "kl"),
        (SafeConfig(prediction_horizon=1e300, penalty_coef=0.0), {"kl": 1e100}, "kl"),
        (SafeConfig(kp=1e290, velocity_target=-1e10), {"reward": 1e100}, "reward"),
    ],
)
def test_overflowing_update_is_rejected_whole_and_state_stays_finite(config, inputs, name):
    controller = SafeController(config)
    for t in range(60):
        controller.update(kl=0.2, entropy=1.0, reward=0.01 * t)
    before = controller.state_dict()
    with pytest.raises(ValueError, match=name):
        controller.update(**{"kl": 0.2, "entropy": 1.0, "reward": 0.5, **inputs})
    assert controller.state_dict() == before
    json.dumps(controller.state_dict(), allow_nan=False)
    decision = controller.update(kl=0.2, entropy=1.0, reward=0.6)
    assert all(math.isfinite(v) for v in decision.as_dict().values() if isinstance(v, float))
    reference = SafeController(config)
    reference.load_state_dict(json_roundtrip(before))
    assert reference.update(kl=0.2, entropy=1.0, reward=0.6) == decision


# ---------------------------------------------------------------- phase blip (issue 10, item 0)
def test_no_one_step_threshold_dip_when_the_phase_window_first_fills():
    rng = np.random.default_rng(0)
    window = 50
    controller = SafeController(SafeConfig(phase_window=window))
    thresholds, phases = [], []
    for t in range(1, window + 11):
        reward = 0.5 + 0.004 * t + 0.002 * rng.standard_normal()
        decision = controller.update(kl=0.3, entropy=1.5, reward=reward)
        thresholds.append(decision.threshold)
        phases.append(decision.phase)
    # Warm-up until a previous window exists, then the climb: no PLATEAU step in between.
    assert phases[:window] == ["warmup"] * window
    assert set(phases[window:]) == {"climbing"}
    at_fill, after = thresholds[window - 1], thresholds[window]
    assert at_fill >= after  # step `window` is no dip below its successor (0.25 vs 0.37 before)
    assert abs(at_fill - thresholds[window - 2]) < 0.01  # nor a jump from its predecessor
