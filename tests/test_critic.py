"""Properties of the soft-min aggregation of value heads (SPEC §1.1)."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from scipy.special import logsumexp

from safecontrol.critic import SERIES_LIMIT, soft_min

heads = arrays(np.float64, st.integers(1, 8), elements=st.floats(-100.0, 100.0))
alphas = st.floats(1e-3, 1e3)


def reference(values, alpha, axis=-1):
    n = values.shape[axis]
    return -alpha * (logsumexp(-values / alpha, axis=axis) - math.log(n))


@given(heads, st.floats(0.05, 100.0))
def test_soft_min_equals_logsumexp_formula(values, alpha):
    assert soft_min(values, alpha) == pytest.approx(reference(values, alpha), rel=1e-9, abs=1e-9)


@given(heads, alphas)
def test_soft_min_lies_between_min_and_min_of_min_plus_alpha_log_n_and_mean(values, alpha):
    got = soft_min(values, alpha)
    lowest = values.min()
    upper = min(lowest + alpha * math.log(values.size), values.mean())
    tol = 1e-9 * (1.0 + np.abs(values).max())
    assert lowest <= got <= upper + tol


@given(heads, st.floats(1e-3, 1e3), st.floats(1e-3, 1e3))
def test_soft_min_is_non_decreasing_in_alpha(values, a, b):
    small, large = sorted((a, b))
    tol = 1e-9 * (1.0 + np.abs(values).max())
    assert soft_min(values, small) <= soft_min(values, large) + tol


@given(st.floats(-1e6, 1e6), st.integers(1, 8), alphas)
def test_soft_min_is_exact_when_heads_agree(v, n, alpha):
    assert soft_min(np.full(n, v), alpha) == v


@given(arrays(np.float64, st.integers(1, 8), elements=st.floats(-1e6, 1e6)), st.floats(1e-4, 1e4))
def test_soft_min_is_finite_for_extreme_values_and_small_alpha(values, alpha):
    got = soft_min(values, alpha)
    assert np.isfinite(got)
    assert values.min() <= got <= values.min() + alpha * math.log(values.size) * (1 + 1e-12)


def test_soft_min_tends_to_min_for_small_alpha_and_mean_for_large_alpha():
    values = np.array([1.0, 2.0, 4.0])
    assert soft_min(values, 1e-4) == pytest.approx(1.0 + 1e-4 * math.log(3), abs=1e-12)
    assert soft_min(values, 1e6) == pytest.approx(values.mean(), abs=1e-5)


@given(
    arrays(np.float64, array_shapes(min_dims=1, max_dims=4), elements=st.floats(-50, 50)),
    st.data(),
    st.floats(0.05, 10.0),
)
def test_soft_min_works_along_any_axis(values, data, alpha):
    axis = data.draw(st.integers(-values.ndim, values.ndim - 1))
    got = soft_min(values, alpha, dim=axis)
    expected = reference(values, alpha, axis=axis)
    assert np.shape(got) == np.shape(expected)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_soft_min_returns_scalar_for_one_dimensional_input_and_array_otherwise():
    assert isinstance(soft_min([1.0, 2.0], 0.3), np.float64)
    out = soft_min(np.zeros((4, 2)), 0.3)
    assert isinstance(out, np.ndarray) and out.shape == (4,)


def test_soft_min_accepts_lists_and_integers():
    assert soft_min([[3, 3], [1, 1]], 0.3).tolist() == [3.0, 1.0]


@pytest.mark.parametrize("alpha", [0.0, -0.3, math.nan, math.inf, "warm"])
def test_soft_min_rejects_bad_alpha_naming_it(alpha):
    with pytest.raises(ValueError, match="alpha"):
        soft_min([1.0, 2.0], alpha)


@pytest.mark.parametrize(
    ("values", "axis", "match"),
    [
        (np.array(1.0), -1, "dimension"),
        (np.zeros((3, 0)), -1, "head"),
        (np.zeros((3, 2)), 2, "dim"),
        (np.array([1.0, math.nan]), -1, "finite"),
        (np.array([1.0, -math.inf]), -1, "finite"),
    ],
)
def test_soft_min_rejects_bad_values(values, axis, match):
    with pytest.raises(ValueError, match=match):
        soft_min(values, 0.3, dim=axis)


def decimal_soft_min(values: np.ndarray, alpha: float) -> float:
    """V_soft of one row of heads in decimal arithmetic (no float64 rounding, no mpmath): the
    formula as written, with enough digits that exp(−x) still holds the smallest x ≠ 0."""
    with localcontext() as ctx:
        ctx.prec = 60
        heads = [Decimal(float(v)) for v in values]
        lowest = min(heads)
        a = Decimal(alpha)
        x = [(h - lowest) / a for h in heads]
        smallest = min((xi for xi in x if xi != 0), default=Decimal(1))
        ctx.prec = 60 + max(0, -smallest.adjusted())
        mean = sum((-xi).exp() for xi in x) / len(x)
        return float(lowest - a * mean.ln())


BIG = 1e300  # heads this large still have a spread that is a float
any_alpha = st.one_of(
    st.floats(min_value=0.0, max_value=1.7976931348623157e308, exclude_min=True),
    st.floats(-323.0, 308.0).map(lambda e: 10.0**e).filter(lambda a: 0.0 < a < math.inf),
    st.sampled_from([5e-324, 1e-320, 2.2250738585072014e-308, 1e-30, 1e15, 1e16, 1e300]),
)
any_heads = arrays(
    np.float64,
    st.integers(2, 8),
    elements=st.one_of(st.floats(-BIG, BIG), st.floats(-10.0, 10.0), st.sampled_from([0.0, 1.0])),
)


@settings(max_examples=300, deadline=None)
@given(any_heads, any_alpha)
def test_soft_min_is_the_formula_for_every_alpha_in_decimal_arithmetic(values, alpha):
    """Every α > 0, every finite heads, against the formula computed in
    decimal. α ≥ 1e16 used to give the minimum of [1, 2], not ≈ the mean."""
    got = float(soft_min(values, alpha))
    expected = decimal_soft_min(values, alpha)
    lowest, spread = values.min(), values.max() - values.min()
    eps, tiny = np.finfo(np.float64).eps, np.finfo(np.float64).tiny
    assert abs(got - expected) <= 64 * eps * (abs(lowest) + spread) + values.size * tiny


@pytest.mark.parametrize("alpha", [1e16, 1e17, 1e100, 1e300, 1.7976931348623157e308])
def test_soft_min_is_the_mean_for_alpha_far_above_the_spread(alpha):
    assert soft_min([1.0, 2.0], alpha) == 1.5
    assert soft_min([0.0, 1e-20], alpha) == 5e-21  # spread / α not even a float


@pytest.mark.parametrize("alpha", [5e-324, 1e-320, 1e-300])
def test_soft_min_is_the_min_for_tiny_alpha(alpha):
    assert soft_min([1.0, 2.0], alpha) == 1.0
    assert soft_min([[2.0, 1.0, 3.0]], alpha).tolist() == [1.0]


def test_soft_min_is_continuous_where_it_switches_to_its_expansion():
    values = np.array([0.0, 0.25, 1.0])
    at = 1.0 / SERIES_LIMIT  # spread / α == SERIES_LIMIT: the expansion from here on
    below, above = soft_min(values, at * (1 - 1e-12)), soft_min(values, at)
    assert below == pytest.approx(decimal_soft_min(values, at), rel=1e-15)
    assert above == pytest.approx(below, rel=1e-15)
