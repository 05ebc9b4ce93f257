"""Properties of the per-token KL estimators k1, k2, k3 (SPEC §3)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from safecontrol.estimators import KL_ESTIMATORS, kl_per_token

logps = arrays(np.float64, st.integers(1, 50), elements=st.floats(-30.0, 0.0))


@given(logps, logps)
def test_k1_is_logp_minus_logp_ref(logp, logp_ref):
    n = min(logp.size, logp_ref.size)
    logp, logp_ref = logp[:n], logp_ref[:n]
    np.testing.assert_array_equal(kl_per_token(logp, logp_ref, "k1"), logp - logp_ref)


@given(logps, logps)
def test_k2_and_k3_are_never_negative(logp, logp_ref):
    n = min(logp.size, logp_ref.size)
    assert np.all(kl_per_token(logp[:n], logp_ref[:n], "k2") >= 0.0)
    assert np.all(kl_per_token(logp[:n], logp_ref[:n], "k3") >= 0.0)


@given(st.floats(-30.0, 30.0))
def test_k3_is_never_negative_even_for_tiny_log_ratios(r):
    for x in (r, r * 1e-10, r * 1e-300):
        assert kl_per_token(0.0, x, "k3") >= 0.0


@given(st.floats(-20.0, 20.0))
def test_estimators_match_their_formulas(r):
    assert kl_per_token(0.0, r, "k1") == -r
    assert kl_per_token(0.0, r, "k2") == pytest.approx(r * r / 2)
    assert kl_per_token(0.0, r, "k3") == pytest.approx(np.exp(r) - 1 - r, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("kind", KL_ESTIMATORS)
def test_all_estimators_are_zero_when_policies_agree(kind):
    logp = np.log([0.2, 0.3, 0.5])
    np.testing.assert_array_equal(kl_per_token(logp, logp, kind), 0.0)


def test_inputs_broadcast():
    out = kl_per_token(np.zeros((4, 1)), np.zeros((1, 3)) - 1.0, "k3")
    assert out.shape == (4, 3)
    assert isinstance(kl_per_token(-1.0, -2.0), np.float64)


@pytest.mark.parametrize("seed", range(8))
def test_sample_means_of_k1_and_k3_approach_exact_kl_of_categoricals(seed):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(6))
    q = rng.dirichlet(np.ones(6))
    exact = float(np.sum(p * (np.log(p) - np.log(q))))
    tokens = rng.choice(6, size=200_000, p=p)
    for kind in ("k1", "k3"):
        samples = kl_per_token(np.log(p)[tokens], np.log(q)[tokens], kind)
        stderr = samples.std() / np.sqrt(samples.size)
        assert abs(samples.mean() - exact) < 5 * stderr + 1e-12, kind


def test_k2_is_biased_but_close_for_nearby_policies():
    rng = np.random.default_rng(0)
    p = np.array([0.3, 0.3, 0.4])
    q = np.array([0.31, 0.29, 0.4])
    exact = float(np.sum(p * (np.log(p) - np.log(q))))
    tokens = rng.choice(3, size=200_000, p=p)
    k2 = kl_per_token(np.log(p)[tokens], np.log(q)[tokens], "k2")
    assert k2.mean() == pytest.approx(exact, rel=0.05)


@pytest.mark.parametrize("kind", ["k4", "K1", "", None])
def test_unknown_kind_is_rejected_naming_it(kind):
    with pytest.raises(ValueError, match="kind"):
        kl_per_token(0.0, 0.0, kind)
