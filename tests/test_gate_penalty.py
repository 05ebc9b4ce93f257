"""Entropy gate and dead-band penalty properties (SPEC §1.2)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safecontrol.gate import EntropyGate
from safecontrol.penalty import dead_band_penalty, dead_band_slope, preview_step_scale

entropies = st.floats(0.0, 50.0)
kls = st.floats(-5.0, 50.0)


@given(entropies, entropies, st.floats(0.01, 10), st.floats(0, 5), st.floats(1e-3, 1))
def test_gate_non_increasing_in_entropy_and_at_least_minimum(h1, h2, floor, minimum, eps):
    gate = EntropyGate(floor, minimum, eps)
    low, high = sorted((h1, h2))
    assert gate(low) >= gate(high) >= minimum


def test_gate_published_values():
    gate = EntropyGate()
    assert gate(1.9) == pytest.approx(1.0)
    assert gate(0.0) == pytest.approx(20.0)
    assert gate(10.0) == 0.5


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"floor": 0.0}, "floor"),
        ({"minimum": -1.0}, "minimum"),
        ({"eps": 0.0}, "eps"),
        ({"floor": math.nan}, "floor"),
    ],
)
def test_gate_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        EntropyGate(**kwargs)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_gate_rejects_negative_or_nonfinite_entropy(bad):
    with pytest.raises(ValueError, match="entropy"):
        EntropyGate()(bad)


@given(kls, st.floats(0.0, 5.0), st.floats(0.0, 20.0), st.floats(0.0, 5.0))
def test_penalty_zero_at_or_below_threshold(kl, threshold, gate, coef):
    below = min(kl, threshold)
    assert dead_band_penalty(below, threshold, gate, coef) == 0.0
    assert dead_band_slope(below, threshold, gate, coef) == 0.0


@given(kls, kls, st.floats(0, 1), st.floats(0.0, 5.0), st.floats(0.01, 20.0), st.floats(0.01, 5))
def test_penalty_convex_above_threshold(a, b, w, threshold, gate, coef):
    mid = w * a + (1 - w) * b
    lhs = dead_band_penalty(mid, threshold, gate, coef)
    rhs = w * dead_band_penalty(a, threshold, gate, coef) + (1 - w) * dead_band_penalty(
        b, threshold, gate, coef
    )
    assert lhs <= rhs + 1e-9 * (1 + abs(rhs))


@given(st.floats(0.0, 5.0), st.floats(0.01, 20.0), st.floats(0.01, 5), st.floats(1e-9, 1e-6))
def test_penalty_continuous_at_threshold(threshold, gate, coef, h):
    assert dead_band_penalty(threshold + h, threshold, gate, coef) <= coef * gate * (2 * h) ** 2


@given(kls, st.floats(0.0, 5.0), st.floats(0.01, 20.0), st.floats(0.01, 5))
def test_slope_is_derivative_of_penalty(kl, threshold, gate, coef):
    h = 1e-6
    numeric = (
        dead_band_penalty(kl + h, threshold, gate, coef)
        - dead_band_penalty(kl - h, threshold, gate, coef)
    ) / (2 * h)
    assert dead_band_slope(kl, threshold, gate, coef) == pytest.approx(numeric, rel=1e-4, abs=1e-4)


@given(st.floats(0.0, 100.0), st.floats(0.01, 5.0))
def test_preview_scale_caps_step_kl(preview, limit):
    scale = preview_step_scale(preview, limit)
    assert 0.0 < scale <= 1.0
    assert preview * scale <= limit * (1 + 1e-12)
    if preview <= limit:
        assert scale == 1.0


def test_preview_rejects_bad_values():
    with pytest.raises(ValueError, match="preview_kl"):
        preview_step_scale(math.nan, 0.5)
    with pytest.raises(ValueError, match="max_preview_kl"):
        preview_step_scale(1.0, 0.0)
