"""Properties of the EMA filters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import json_roundtrip
from hypothesis import given
from hypothesis import strategies as st
from scipy.signal import lfilter

from safecontrol.filters import EMA, DualEMA

values = st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=100)
decays = st.floats(0.01, 0.999)


@given(values, decays)
def test_ema_without_bias_correction_equals_first_order_iir(xs, decay):
    ema = EMA(decay, bias_correction=False)
    got = [ema.update(x) for x in xs]
    expected = lfilter([1.0 - decay], [1.0, -decay], xs)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


@given(values, decays)
def test_bias_corrected_ema_is_normalised_iir(xs, decay):
    ema = EMA(decay)
    got = [ema.update(x) for x in xs]
    n = np.arange(1, len(xs) + 1)
    expected = lfilter([1.0 - decay], [1.0, -decay], xs) / (1.0 - decay**n)
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-7)


@given(st.floats(-1e3, 1e3), decays, st.integers(1, 50))
def test_bias_corrected_ema_of_constant_is_that_constant(x, decay, n):
    ema = EMA(decay)
    for _ in range(n):
        value = ema.update(x)
    assert value == pytest.approx(x, rel=1e-9, abs=1e-9)


def test_first_report_is_first_input_so_zero_start_never_fakes_a_low_value():
    tracker = DualEMA()
    tracker.update(5.0)
    assert tracker.short == pytest.approx(5.0) and tracker.long == pytest.approx(5.0)
    assert tracker.trend == pytest.approx(0.0, abs=1e-12)


def test_dual_ema_slope_recovers_ramp_rate():
    tracker = DualEMA()
    for t in range(3000):
        tracker.update(0.02 * t)
    assert tracker.slope == pytest.approx(0.02, rel=1e-3)
    assert tracker.trend > 0


@given(values, decays, st.data())
def test_state_dict_continuation_is_bit_identical(xs, decay, data):
    cut = data.draw(st.integers(0, len(xs)))
    a, b = DualEMA(decay * 0.5, decay), DualEMA(decay * 0.5, decay)
    for x in xs[:cut]:
        a.update(x)
    b.load_state_dict(json_roundtrip(a.state_dict()))
    for x in xs[cut:]:
        a.update(x)
        b.update(x)
        assert (a.short, a.long) == (b.short, b.long)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5, 1.5, math.nan])
def test_decay_outside_unit_interval_rejected(bad):
    with pytest.raises(ValueError, match="decay"):
        EMA(bad)


def test_dual_ema_requires_short_faster_than_long():
    with pytest.raises(ValueError, match="short"):
        DualEMA(0.99, 0.9)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_input_rejected_and_state_unchanged(bad):
    ema = EMA(0.9)
    ema.update(1.0)
    before = ema.state_dict()
    with pytest.raises(ValueError, match="x"):
        ema.update(bad)
    assert ema.state_dict() == before


def test_load_rejects_other_config_and_type():
    ema = EMA(0.9)
    with pytest.raises(ValueError, match="decay"):
        EMA(0.8).load_state_dict(ema.state_dict())
    with pytest.raises(ValueError, match="DualEMA"):
        DualEMA().load_state_dict(ema.state_dict())
    broken = ema.state_dict()
    broken["state"] = {"moment": 1.0}
    with pytest.raises(ValueError, match="count"):
        EMA(0.9).load_state_dict(broken)
