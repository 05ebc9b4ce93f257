"""Adaptive threshold properties (SPEC §1.3)."""

from __future__ import annotations

import math

import pytest
from helpers import json_roundtrip
from hypothesis import given
from hypothesis import strategies as st

from safecontrol.pid import PID
from safecontrol.threshold import AdaptiveThreshold

velocities = st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=80)
multipliers = st.sampled_from([0.8, 1.0, 1.2, 1.5])


@given(
    velocities, st.lists(multipliers, min_size=80, max_size=80), st.floats(0, 5), st.floats(0, 1)
)
def test_threshold_always_within_limits_and_integral_never_winds_past_them(vs, phis, kp, ki):
    threshold = AdaptiveThreshold(kp=kp, ki=ki)
    for v, phi in zip(vs, phis, strict=False):
        tau = threshold.update(v, phi)
        assert 0.1 <= tau <= 0.6
        low, high = 0.1 / phi - 0.3, 0.6 / phi - 0.3
        assert low - 1e-12 <= threshold.pid.integral <= high + 1e-12


def test_faster_reward_climb_raises_threshold_and_stall_lowers_it():
    climbing, stalled = AdaptiveThreshold(), AdaptiveThreshold()
    for _ in range(30):
        up = climbing.update(0.05)
        down = stalled.update(-0.05)
    assert up > 0.3 > down


def test_published_multiplier_scales_base():
    assert AdaptiveThreshold(kp=0, ki=0, kd=0).update(0.0, 1.5) == pytest.approx(0.45)
    assert AdaptiveThreshold(kp=0, ki=0, kd=0).update(0.0, 0.8) == pytest.approx(0.24)


def published_clip_after(steps_high, steps_low):
    """The published arrangement: an unbounded PID, the threshold clipped afterwards."""
    pid = PID(0.3, 0.01, 0.05, setpoint=-0.001)
    taus = []
    for k in range(steps_high + steps_low):
        v = 1.0 if k < steps_high else -0.01
        taus.append(min(max(0.3 + pid.update(-v), 0.1), 0.6))
    return taus


def test_clip_feedback_prevents_windup_between_integral_and_clip():
    high, low = 300, 200
    ours = AdaptiveThreshold()
    taus = [ours.update(1.0 if k < high else -0.01) for k in range(high + low)]
    published = published_clip_after(high, low)
    ours_stuck = sum(t >= 0.6 for t in taus[high:])
    published_stuck = sum(t >= 0.6 for t in published[high:])
    assert ours_stuck == 0
    assert published_stuck == low  # still saturated after 200 steps of stalled reward


@given(velocities, st.data())
def test_state_dict_continuation_is_bit_identical(vs, data):
    cut = data.draw(st.integers(0, len(vs)))
    a, b = AdaptiveThreshold(), AdaptiveThreshold()
    for v in vs[:cut]:
        a.update(v, 1.2)
    b.load_state_dict(json_roundtrip(a.state_dict()))
    assert [a.update(v, 0.8) for v in vs[cut:]] == [b.update(v, 0.8) for v in vs[cut:]]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"base": -0.1}, "base"),
        ({"threshold_limits": (0.6, 0.1)}, "threshold_limits"),
        ({"threshold_limits": (-0.1, 0.6)}, "threshold_limits"),
        ({"threshold_limits": (None, 0.6)}, "threshold_limits"),
        ({"kp": -1}, "kp"),
        ({"velocity_target": math.inf}, "velocity_target"),
    ],
)
def test_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        AdaptiveThreshold(**kwargs)


@pytest.mark.parametrize("v, phi, name", [(math.nan, 1.0, "velocity"), (0.1, 0.0, "multiplier")])
def test_rejected_update_leaves_state_unchanged(v, phi, name):
    threshold = AdaptiveThreshold()
    threshold.update(0.01)
    before = threshold.state_dict()
    with pytest.raises(ValueError, match=name):
        threshold.update(v, phi)
    assert threshold.state_dict() == before
