"""Properties of the PID Lagrangian KL coefficient (Stooke et al. 2020, Alg. 2)."""

from __future__ import annotations

import itertools
import math

import pytest
from helpers import json_roundtrip
from hypothesis import given
from hypothesis import strategies as st

from safecontrol.decision import CoefDecision
from safecontrol.pid_lagrangian import PIDLagrangianKL

kls = st.floats(-2.0, 20.0)
streams = st.lists(kls, min_size=1, max_size=40)
gains = st.floats(0.0, 10.0)
decays = st.floats(0.01, 0.99)


def reference_lambdas(stream, target, kp, ki, kd, p_decay, d_decay, init_integral=0.0):
    """Alg. 2 written out with bias-corrected EMAs and D = 0 on the first step."""
    integral, p_moment, j_moment, previous = init_integral, 0.0, 0.0, None
    out = []
    for t, j in enumerate(stream, start=1):
        delta = j - target
        integral = max(0.0, integral + delta)
        p_moment = p_decay * p_moment + (1.0 - p_decay) * delta
        j_moment = d_decay * j_moment + (1.0 - d_decay) * j
        p = p_moment / (1.0 - p_decay**t)
        smoothed = j_moment / (1.0 - d_decay**t)
        d = 0.0 if previous is None else max(0.0, smoothed - previous)
        previous = smoothed
        out.append(max(0.0, kp * p + ki * integral + kd * d))
    return out


@given(streams, st.floats(0.01, 5.0), gains, gains, gains, decays, decays, st.floats(0.0, 5.0))
def test_pid_lagrangian_matches_algorithm_two_written_out(
    stream, target, kp, ki, kd, p_decay, d_decay, init_integral
):
    controller = PIDLagrangianKL(target, kp, ki, kd, p_decay, d_decay, init_integral)
    expected = reference_lambdas(stream, target, kp, ki, kd, p_decay, d_decay, init_integral)
    got = [controller.update(kl=j).coef for j in stream]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@given(streams, st.floats(0.01, 5.0), gains, gains, gains, decays, decays)
def test_pid_lagrangian_coefficient_and_integral_are_never_negative(
    stream, target, kp, ki, kd, p_decay, d_decay
):
    controller = PIDLagrangianKL(target, kp, ki, kd, p_decay, d_decay)
    for j in stream:
        assert controller.update(kl=j).coef >= 0.0
        assert controller.state_dict()["state"]["controller"]["integral"] >= 0.0


@given(st.lists(st.floats(0.0, 0.3), min_size=1, max_size=40))
def test_kl_within_budget_from_zero_integral_gives_zero_coefficient_without_derivative(stream):
    controller = PIDLagrangianKL(target=0.3, kd=0.0)
    assert all(controller.update(kl=j).coef == 0.0 for j in stream)


@given(st.floats(0.31, 5.0), st.integers(2, 40))
def test_constant_violation_grows_coefficient_every_step(kl, n):
    controller = PIDLagrangianKL(target=0.3)
    coefs = [controller.update(kl=kl).coef for _ in range(n)]
    assert all(b > a for a, b in itertools.pairwise(coefs))


@given(streams)
def test_integral_only_gains_give_the_classic_projected_lagrangian(stream):
    controller = PIDLagrangianKL(target=0.3, kp=0.0, ki=0.1, kd=0.0)
    lam = 0.0
    for j in stream:
        lam = max(0.0, lam + 0.1 * (j - 0.3))
        assert controller.update(kl=j).coef == pytest.approx(lam, abs=1e-12)


def test_derivative_term_reacts_only_to_rising_kl_and_is_zero_first():
    controller = PIDLagrangianKL(target=10.0, kp=0.0, ki=0.0, kd=1.0)
    assert controller.update(kl=1.0).coef == 0.0
    assert controller.update(kl=2.0).coef > 0.0
    assert controller.components[2] > 0.0
    controller.update(kl=2.0)
    assert controller.update(kl=0.5).coef == 0.0


def test_components_sum_to_coefficient_when_positive():
    controller = PIDLagrangianKL()
    decision = controller.update(kl=0.5)
    decision = controller.update(kl=0.8)
    assert sum(controller.components) == pytest.approx(decision.coef)


def test_initial_decision_is_ki_times_initial_integral():
    assert PIDLagrangianKL(ki=0.05, init_integral=2.0).decision == CoefDecision(0.1, 0, 0)
    assert PIDLagrangianKL().decision == CoefDecision(0.0, 0, 0)


# ---------------------------------------------------------------- state dict
def test_state_dict_contains_both_filter_states():
    controller = PIDLagrangianKL()
    controller.update(kl=0.5)
    state = controller.state_dict()["state"]
    assert state["error_ema"]["count"] == 1 and state["kl_ema"]["count"] == 1


def test_load_state_dict_rejects_wrong_type_and_changed_config():
    from safecontrol.classic import FixedKL

    saved = PIDLagrangianKL().state_dict()
    with pytest.raises(ValueError, match="FixedKL"):
        PIDLagrangianKL().load_state_dict(FixedKL(0.1).state_dict())
    with pytest.raises(ValueError, match="kd"):
        PIDLagrangianKL(kd=0.2).load_state_dict(saved)
    malformed = PIDLagrangianKL().state_dict()
    del malformed["state"]["kl_ema"]
    with pytest.raises(ValueError, match="kl_ema"):
        PIDLagrangianKL().load_state_dict(malformed)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({"target": 0.0}, "target"),
        ({"target": -0.3}, "target"),
        ({"target": math.nan}, "target"),
        ({"kp": -0.1}, "kp"),
        ({"ki": -0.1}, "ki"),
        ({"kd": -0.1}, "kd"),
        ({"kd": math.inf}, "kd"),
        ({"p_decay": 1.0}, "p_decay"),
        ({"p_decay": 0.0}, "p_decay"),
        ({"d_decay": -0.5}, "d_decay"),
        ({"init_integral": -1.0}, "init_integral"),
        ({"on_nonfinite": "drop"}, "on_nonfinite"),
    ],
)
def test_constructor_rejects_bad_argument_naming_it(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        PIDLagrangianKL(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({"kl": math.nan}, "kl"),
        ({"kl": math.inf}, "kl"),
        ({"kl": None}, "kl"),
        ({"kl": "x"}, "kl"),
        ({"kl": 0.1, "entropy": math.nan}, "entropy"),
        ({"kl": 0.1, "reward": -math.inf}, "reward"),
        ({"kl": 0.1, "n_steps": 0}, "n_steps"),
    ],
)
def test_rejected_update_names_argument_and_leaves_state_unchanged(kwargs, arg):
    controller = PIDLagrangianKL()
    controller.update(kl=0.6)
    before = controller.state_dict()
    with pytest.raises(ValueError, match=arg):
        controller.update(**kwargs)
    assert controller.state_dict() == before


@given(st.lists(st.one_of(kls, st.sampled_from([math.nan, math.inf, -math.inf]))))
def test_skip_policy_holds_decision_and_counts_nonfinite_measurements(stream):
    skipping = PIDLagrangianKL(on_nonfinite="skip")
    clean = PIDLagrangianKL()
    skipped = 0
    for j in stream:
        decision = skipping.update(kl=j)
        if math.isfinite(j):
            expected = clean.update(kl=j)
        else:
            skipped += 1
            expected = clean.decision
        assert decision == CoefDecision(expected.coef, expected.step, skipped)
    state, clean_state = skipping.state_dict()["state"], clean.state_dict()["state"]
    assert state["error_ema"] == clean_state["error_ema"]
    assert state["kl_ema"] == clean_state["kl_ema"]


# ---------------------------------------------------------------- overflow (issue 10, item 8)
def test_huge_kl_is_rejected_and_never_makes_the_integral_infinite():
    controller = PIDLagrangianKL()
    controller.update(kl=0.5)
    before = json_roundtrip(controller.state_dict())
    for kl in (1e308, 1.7e308, -1e200):
        with pytest.raises(ValueError, match="kl"):
            controller.update(kl=kl)
        assert controller.state_dict() == before
    assert math.isfinite(controller.update(kl=0.5).coef)


def test_overflow_of_the_gains_is_rejected_whole():
    controller = PIDLagrangianKL(kp=1e300, kd=1e300)
    controller.update(kl=0.5)
    before = json_roundtrip(controller.state_dict())
    with pytest.raises(ValueError, match="kl"):
        controller.update(kl=1e10)
    assert controller.state_dict() == before  # the filters were rolled back too
    assert math.isfinite(controller.update(kl=0.4).coef)
