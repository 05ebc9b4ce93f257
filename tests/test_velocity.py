"""Reward-velocity estimator properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import json_roundtrip
from hypothesis import given
from hypothesis import strategies as st
from scipy.signal import lfilter

from safecontrol.velocity import RewardVelocity

rewards = st.lists(st.floats(-10.0, 10.0), min_size=1, max_size=80)
modes = st.sampled_from(["published", "scale_invariant", "holt"])


@given(rewards)
def test_published_is_difference_of_bias_corrected_ema_095(xs):
    estimator = RewardVelocity()
    got = [estimator.update(x) for x in xs]
    n = np.arange(1, len(xs) + 1)
    level = lfilter([0.05], [1.0, -0.95], xs) / (1.0 - 0.95**n)
    expected = np.concatenate([[0.0], np.diff(level)])
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)


@given(modes, st.floats(-5, 5, allow_subnormal=False), st.integers(1, 60))
def test_constant_reward_has_zero_velocity(mode, value, n):
    estimator = RewardVelocity(mode)
    for _ in range(n):
        v = estimator.update(value)
    assert v == pytest.approx(0.0, abs=1e-9)


@given(modes, st.floats(0.001, 0.1))
def test_rising_reward_has_positive_velocity(mode, slope):
    estimator = RewardVelocity(mode)
    for t in range(200):
        v = estimator.update(slope * t)
    assert v > 0


@given(st.floats(0.001, 0.1))
def test_published_and_holt_recover_ramp_slope(slope):
    for mode in ("published", "holt"):
        estimator = RewardVelocity(mode)
        for t in range(400):
            v = estimator.update(slope * t)
        assert v == pytest.approx(slope, rel=1e-3), mode


@given(
    st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=60),
    st.floats(0.01, 100.0),
    st.floats(-100.0, 100.0),
)
def test_scale_invariant_mode_ignores_affine_rescaling(xs, scale, shift):
    plain, rescaled = RewardVelocity("scale_invariant"), RewardVelocity("scale_invariant")
    for x in xs:
        a = plain.update(x)
        b = rescaled.update(scale * x + shift)
        # Invariance holds while the std is above its documented floor eps·|mean| (there a
        # spread that small is treated as rounding noise of a constant reward).
        if all(
            e._state.variance**0.5 > 10 * e.eps * abs(e._state.mean) and e._state.variance > 1e-12
            for e in (plain, rescaled)
        ):
            assert b == pytest.approx(a, rel=1e-5, abs=1e-6)


def test_published_mode_is_scale_dependent():
    small, large = RewardVelocity(), RewardVelocity()
    for t in range(100):
        v_small = small.update(0.01 * t)
        v_large = large.update(1.0 * t)
    assert v_large == pytest.approx(100 * v_small)


@given(modes, rewards, st.data())
def test_state_dict_continuation_is_bit_identical(mode, xs, data):
    cut = data.draw(st.integers(0, len(xs)))
    a, b = RewardVelocity(mode), RewardVelocity(mode)
    for x in xs[:cut]:
        a.update(x)
    b.load_state_dict(json_roundtrip(a.state_dict()))
    assert [a.update(x) for x in xs[cut:]] == [b.update(x) for x in xs[cut:]]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"mode": "fast"}, "mode"),
        ({"decay": 1.0}, "decay"),
        ({"std_decay": 0.9}, "std_decay"),
        ({"mode": "scale_invariant", "std_decay": 1.5}, "std_decay"),
        ({"trend_decay": 0.9}, "trend_decay"),
        ({"mode": "holt", "trend_decay": 0.0}, "trend_decay"),
        ({"eps": 0.0}, "eps"),
    ],
)
def test_rejects_bad_or_unused_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RewardVelocity(**kwargs)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_rejected_reward_leaves_state_unchanged(bad):
    estimator = RewardVelocity("holt")
    estimator.update(1.0)
    before = estimator.state_dict()
    with pytest.raises(ValueError, match="reward"):
        estimator.update(bad)
    assert estimator.state_dict() == before
