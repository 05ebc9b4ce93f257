"""Properties of safecontrol.PID."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import json_roundtrip
from hypothesis import given
from hypothesis import strategies as st
from scipy.signal import lfilter

from safecontrol.pid import PID

gain = st.floats(0.0, 10.0)
signal = st.floats(-100.0, 100.0)
streams = st.lists(signal, min_size=1, max_size=60)
dts = st.floats(0.01, 10.0)


@st.composite
def limit_pairs(draw):
    lo = draw(st.one_of(st.none(), st.floats(-50.0, 50.0)))
    hi = draw(st.one_of(st.none(), st.floats(-50.0, 50.0)))
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    return lo, hi


@st.composite
def pids(draw, anti_windup=None):
    mode = anti_windup or draw(st.sampled_from(["clamp", "back_calculation", "none"]))
    return PID(
        draw(gain),
        draw(gain),
        draw(gain),
        setpoint=draw(signal),
        output_limits=draw(limit_pairs()),
        derivative_filter=draw(st.one_of(st.none(), st.floats(0.1, 20.0))),
        derivative_on_measurement=draw(st.booleans()),
        anti_windup=mode,
        tracking_gain=draw(st.floats(0.01, 2.0)) if mode == "back_calculation" else None,
        rate_limit=draw(st.one_of(st.none(), st.floats(0.01, 10.0))),
    )


def within(x, lo, hi, tol=1e-9):
    return (lo is None or x >= lo - tol) and (hi is None or x <= hi + tol)


@given(pids(), streams, dts)
def test_output_always_within_limits(pid, stream, dt):
    lo, hi = pid.output_limits
    for m in stream:
        assert within(pid.update(m, dt), lo, hi, tol=0.0)


@given(pids(anti_windup="clamp"), streams, dts)
def test_clamp_mode_integral_never_beyond_limits(pid, stream, dt):
    lo, hi = pid.output_limits
    for m in stream:
        pid.update(m, dt)
        assert within(pid.integral, lo, hi, tol=0.0)
        assert within(pid.components[1], lo, hi, tol=0.0)


def textbook(kp, ki, kd, setpoint, lo, hi, stream, dt):
    """The parallel form of the issue, written independently."""

    def clip(x):
        return min(max(x, lo if lo is not None else -math.inf), hi if hi is not None else math.inf)

    integral, previous, out = 0.0, None, []
    for m in stream:
        e = setpoint - m
        p = kp * e
        integral = clip(integral + ki * e * dt)
        d = 0.0 if previous is None else kd * -(m - previous) / dt
        previous = m
        out.append(clip(p + integral + d))
    return out


@given(gain, gain, gain, signal, limit_pairs(), streams, dts)
def test_equals_textbook_parallel_form_exactly(kp, ki, kd, setpoint, lims, stream, dt):
    pid = PID(kp, ki, kd, setpoint=setpoint, output_limits=lims)
    got = [pid.update(m, dt) for m in stream]
    assert got == textbook(kp, ki, kd, setpoint, *lims, stream, dt)


@given(gain, signal, signal, st.integers(1, 20))
def test_no_derivative_kick_on_setpoint_change(kd, setpoint, new_setpoint, steps):
    pid = PID(0.0, 0.0, kd, setpoint=setpoint)
    for _ in range(steps):
        pid.update(1.0)
    pid.setpoint = new_setpoint
    pid.update(1.0)
    assert pid.components[2] == 0.0


def test_derivative_on_error_does_kick_on_setpoint_change():
    pid = PID(0.0, 0.0, 1.0, derivative_on_measurement=False)
    pid.update(1.0)
    pid.setpoint = 5.0
    pid.update(1.0)
    assert pid.components[2] == pytest.approx(5.0)


def steps_saturated_after_reversal(anti_windup):
    pid = PID(1.0, 0.5, 0.0, setpoint=10.0, output_limits=(-1.0, 1.0), anti_windup=anti_windup)
    for _ in range(40):
        pid.update(0.0)  # a large error drives the output into the upper limit
    count = 0
    while pid.update(11.0) >= 1.0:  # error reversed: how long until the output leaves it?
        count += 1
        assert count < 10_000
    return count


def test_back_calculation_leaves_saturation_sooner_than_none():
    back = steps_saturated_after_reversal("back_calculation")
    none = steps_saturated_after_reversal("none")
    assert back < none
    assert back <= 1 and none > 100


@given(gain, gain, gain, signal, streams, signal)
def test_bumpless_return_to_auto_reproduces_held_output(kp, ki, kd, setpoint, stream, held):
    pid = PID(kp, ki, kd, setpoint=setpoint, anti_windup="none")
    for m in stream:
        pid.update(m)
    pid.set_auto_mode(False, last_output=held)
    for m in stream:
        assert pid.update(m) == held  # manual: the held output, whatever the process does
    pid.set_auto_mode(True)
    assert pid.update(stream[-1] + 1.0) == pytest.approx(held, rel=1e-9, abs=1e-9)


def test_manual_mode_tracks_measurement_so_return_has_no_derivative_kick():
    pid = PID(0.0, 0.0, 1.0)
    pid.update(0.0)
    pid.set_auto_mode(False)
    pid.update(100.0)
    pid.set_auto_mode(True)
    pid.update(100.0)
    assert pid.components[2] == 0.0


@given(gain, signal, st.integers(1, 30), st.sampled_from([0.25, 0.5, 2.0]))
def test_integral_scales_with_dt(ki, error, steps, dt):
    """Integrating a constant error over the same time gives the same integral for any dt."""
    coarse, fine = PID(0.0, ki, 0.0, setpoint=error), PID(0.0, ki, 0.0, setpoint=error)
    for _ in range(steps):
        coarse.update(0.0, dt=dt)
    for _ in range(steps * 4):
        fine.update(0.0, dt=dt / 4)
    assert fine.integral == pytest.approx(coarse.integral, rel=1e-9, abs=1e-9)


@given(gain, st.floats(-10.0, 10.0), st.sampled_from([0.1, 1.0, 3.0]))
def test_derivative_of_ramp_is_independent_of_dt(kd, slope, dt):
    pid = PID(0.0, 0.0, kd)
    for k in range(5):
        pid.update(slope * k * dt, dt=dt)
    assert pid.components[2] == pytest.approx(-kd * slope, rel=1e-9, abs=1e-9)


@given(st.lists(st.floats(-10.0, 10.0), min_size=2, max_size=80), st.floats(0.1, 20.0))
def test_derivative_filter_equals_first_order_iir(stream, tau):
    pid = PID(0.0, 0.0, 1.0, derivative_filter=tau)
    got = [pid.update(m) for m in stream]
    raw = np.concatenate([[0.0], -np.diff(stream)])
    a = tau / (tau + 1.0)
    np.testing.assert_allclose(got, lfilter([1.0 - a], [1.0, -a], raw), rtol=1e-9, atol=1e-9)


@given(pids(), streams, dts)
def test_rate_limit_bounds_output_change(pid, stream, dt):
    previous = None
    lo, hi = pid.output_limits
    for m in stream:
        u = pid.update(m, dt)
        if previous is not None and pid.rate_limit is not None:
            # The output limits win over the rate limit if they move the output further.
            moved = abs(u - previous)
            assert moved <= pid.rate_limit * dt * (1 + 1e-9) + 1e-12 or not within(previous, lo, hi)
        previous = u


@given(pids(), streams, st.data())
def test_state_dict_restores_bit_identical_continuation(pid, stream, data):
    cut = data.draw(st.integers(0, len(stream)))
    for m in stream[:cut]:
        pid.update(m)
    restored = PID(**{k: v for k, v in _ctor(pid).items()})
    restored.load_state_dict(json_roundtrip(pid.state_dict()))
    assert [restored.update(m) for m in stream[cut:]] == [pid.update(m) for m in stream[cut:]]
    assert restored.components == pid.components


def _ctor(pid):
    config = pid.state_dict()["config"]
    config["output_limits"] = tuple(config["output_limits"])
    return config


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"kp": -1.0, "ki": 0, "kd": 0}, "kp"),
        ({"kp": 0, "ki": -0.1, "kd": 0}, "ki"),
        ({"kp": 0, "ki": 0, "kd": math.nan}, "kd"),
        ({"kp": 1, "ki": 0, "kd": 0, "setpoint": math.inf}, "setpoint"),
        ({"kp": 1, "ki": 0, "kd": 0, "output_limits": (1.0, -1.0)}, "output_limits"),
        ({"kp": 1, "ki": 0, "kd": 0, "output_limits": (math.nan, 1.0)}, "output_limits"),
        ({"kp": 1, "ki": 0, "kd": 0, "derivative_filter": 0.0}, "derivative_filter"),
        ({"kp": 1, "ki": 0, "kd": 0, "anti_windup": "bogus"}, "anti_windup"),
        ({"kp": 1, "ki": 0, "kd": 0, "tracking_gain": 1.0}, "tracking_gain"),
        (
            {"kp": 1, "ki": 0, "kd": 0, "anti_windup": "back_calculation", "tracking_gain": -1},
            "tracking_gain",
        ),
        ({"kp": 1, "ki": 0, "kd": 0, "rate_limit": 0.0}, "rate_limit"),
    ],
)
def test_constructor_rejects_bad_arguments_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PID(**kwargs)


@pytest.mark.parametrize(
    "measurement, dt, name",
    [
        (math.nan, 1.0, "measurement"),
        (math.inf, 1.0, "measurement"),
        (1.0, 0.0, "dt"),
        (1.0, -1.0, "dt"),
        (1.0, math.nan, "dt"),
        ("x", 1.0, "measurement"),
    ],
)
def test_rejected_update_names_argument_and_leaves_state_unchanged(measurement, dt, name):
    pid = PID(1.0, 0.5, 0.1, output_limits=(-1, 1))
    pid.update(0.3)
    before = pid.state_dict()
    with pytest.raises(ValueError, match=name):
        pid.update(measurement, dt)
    assert pid.state_dict() == before


def test_output_limits_setter_validates_and_clamps_integral():
    pid = PID(0.0, 1.0, 0.0, setpoint=1.0)
    for _ in range(10):
        pid.update(0.0)
    pid.output_limits = (-2.0, 2.0)
    assert pid.integral == 2.0
    with pytest.raises(ValueError, match="output_limits"):
        pid.output_limits = (3.0, 2.0)


def test_reset_forgets_history():
    pid = PID(1.0, 1.0, 1.0)
    fresh = pid.state_dict()
    pid.update(3.0)
    pid.setpoint = 2.0
    pid.reset()
    assert pid.state_dict() == fresh


# ---------------------------------------------------------------- overflow (issue 10, item 8)
@pytest.mark.parametrize("anti_windup", ["clamp", "back_calculation", "none"])
def test_overflowing_update_is_rejected_and_state_stays_finite(anti_windup):
    pid = PID(2.0, 0.5, 1.0, output_limits=(0.0, 1.0), anti_windup=anti_windup)
    pid.update(0.3)
    before = json_roundtrip(pid.state_dict())
    for measurement in (1.7e308, -1.7e308):
        with pytest.raises(ValueError, match="measurement"):
            pid.update(measurement)
        assert pid.state_dict() == before
    assert math.isfinite(pid.update(0.2))


def test_infinite_output_limits_mean_unbounded_and_keep_the_state_dict_strict_json():
    pid = PID(1.0, 0.1, 0.0, output_limits=(-math.inf, math.inf))
    assert pid.output_limits == (None, None)
    pid.update(0.5)
    json_roundtrip(pid.state_dict())  # allow_nan=False


@pytest.mark.parametrize("value", ["false", 0, None, np.bool_(False)])
def test_bool_arguments_must_be_bools(value):
    with pytest.raises(ValueError, match="derivative_on_measurement"):
        PID(1.0, 0.0, 0.0, derivative_on_measurement=value)
    with pytest.raises(ValueError, match="enabled"):
        PID(1.0, 0.0, 0.0).set_auto_mode(value)
