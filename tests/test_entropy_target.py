"""Properties of the entropy-target controller of the entropy-bonus coefficient."""

from __future__ import annotations

import math

import pytest
from helpers import json_roundtrip
from hypothesis import given
from hypothesis import strategies as st

from safecontrol.decision import CoefDecision
from safecontrol.entropy_target import EntropyTargetController

entropies = st.floats(0.0, 5.0)
streams = st.lists(entropies, min_size=1, max_size=60)


@st.composite
def configs(draw):
    lo = draw(st.floats(0.0, 0.5))
    hi = draw(st.floats(lo, 1.0))
    init = draw(st.floats(lo, hi))
    return {
        "target": draw(st.floats(0.01, 5.0)),
        "init_coef": init,
        "delta": draw(st.floats(1e-4, 0.2)),
        "min_coef": lo,
        "max_coef": hi,
    }


@given(configs(), streams)
def test_coefficient_stays_within_limits(config, stream):
    controller = EntropyTargetController(**config)
    for h in stream:
        coef = controller.update(entropy=h).coef
        assert config["min_coef"] <= coef <= config["max_coef"]


@given(configs(), streams)
def test_coefficient_rises_below_target_falls_above_and_holds_at_target(config, stream):
    controller = EntropyTargetController(**config)
    lo, hi, delta = config["min_coef"], config["max_coef"], config["delta"]
    previous = controller.decision.coef
    for h in stream:
        coef = controller.update(entropy=h).coef
        if h < config["target"]:
            assert coef == min(previous + delta, hi)
            assert coef >= previous
        elif h > config["target"]:
            assert coef == max(previous - delta, lo)
            assert coef <= previous
        else:
            assert coef == previous
        previous = coef


@given(st.floats(0.01, 5.0))
def test_entropy_exactly_at_target_leaves_coefficient_unchanged(target):
    controller = EntropyTargetController(target, init_coef=0.05)
    assert controller.update(entropy=target) == CoefDecision(coef=0.05, step=1, skipped=0)


def test_collapsing_entropy_drives_bonus_to_its_cap():
    controller = EntropyTargetController(target=0.2, delta=0.005, max_coef=0.02)
    coefs = [controller.update(entropy=0.05).coef for _ in range(10)]
    assert coefs[:4] == pytest.approx([0.005, 0.01, 0.015, 0.02])
    assert coefs[-1] == 0.02


def test_initial_decision_is_initial_coefficient_at_step_zero():
    controller = EntropyTargetController(target=0.2, init_coef=0.01)
    assert controller.decision == CoefDecision(coef=0.01, step=0, skipped=0)


def test_kl_and_reward_are_optional_but_validated():
    controller = EntropyTargetController(target=0.2)
    controller.update(entropy=0.1)
    controller.update(entropy=0.1, kl=0.3, reward=-1.0)
    with pytest.raises(ValueError, match="reward"):
        controller.update(entropy=0.1, reward=math.nan)
    with pytest.raises(TypeError):
        controller.update(kl=0.3)


def test_reset_restores_initial_state():
    controller = EntropyTargetController(target=0.2, init_coef=0.01)
    fresh = controller.state_dict()
    controller.update(entropy=0.0)
    controller.reset()
    assert controller.state_dict() == fresh


# ---------------------------------------------------------------- state dict
@given(configs(), streams, st.data())
def test_resuming_from_json_state_dict_continues_bit_identically(config, stream, data):
    cut = data.draw(st.integers(0, len(stream)))
    uninterrupted = EntropyTargetController(**config)
    expected = [uninterrupted.update(entropy=h) for h in stream]
    first = EntropyTargetController(**config)
    got = [first.update(entropy=h) for h in stream[:cut]]
    resumed = EntropyTargetController(**config)
    resumed.load_state_dict(json_roundtrip(first.state_dict()))
    got += [resumed.update(entropy=h) for h in stream[cut:]]
    assert got == expected


def test_load_state_dict_rejects_wrong_type_and_changed_config():
    from safecontrol.classic import PPOAdaptiveKL

    saved = EntropyTargetController(target=0.2).state_dict()
    with pytest.raises(ValueError, match="PPOAdaptiveKL"):
        EntropyTargetController(target=0.2).load_state_dict(PPOAdaptiveKL().state_dict())
    with pytest.raises(ValueError, match="target"):
        EntropyTargetController(target=0.3).load_state_dict(saved)
    with pytest.raises(ValueError, match="max_coef"):
        EntropyTargetController(target=0.2, max_coef=0.5).load_state_dict(saved)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({"target": 0.0}, "target"),
        ({"target": -1.0}, "target"),
        ({"target": math.inf}, "target"),
        ({"target": 0.2, "delta": 0.0}, "delta"),
        ({"target": 0.2, "delta": math.nan}, "delta"),
        ({"target": 0.2, "min_coef": -0.1}, "min_coef"),
        ({"target": 0.2, "max_coef": math.inf}, "max_coef"),
        ({"target": 0.2, "min_coef": 0.5, "max_coef": 0.1}, "min_coef"),
        ({"target": 0.2, "init_coef": -0.01}, "init_coef"),
        ({"target": 0.2, "init_coef": 0.5, "max_coef": 0.1}, "init_coef"),
        ({"target": 0.2, "on_nonfinite": "zero"}, "on_nonfinite"),
    ],
)
def test_constructor_rejects_bad_argument_naming_it(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        EntropyTargetController(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({"entropy": math.nan}, "entropy"),
        ({"entropy": -math.inf}, "entropy"),
        ({"entropy": None}, "entropy"),
        ({"entropy": "low"}, "entropy"),
        ({"entropy": 0.1, "kl": math.inf}, "kl"),
        ({"entropy": 0.1, "n_steps": -3}, "n_steps"),
    ],
)
def test_rejected_update_names_argument_and_leaves_state_unchanged(kwargs, arg):
    controller = EntropyTargetController(target=0.2)
    controller.update(entropy=0.1)
    before = controller.state_dict()
    with pytest.raises(ValueError, match=arg):
        controller.update(**kwargs)
    assert controller.state_dict() == before


@given(st.lists(st.one_of(entropies, st.sampled_from([math.nan, math.inf]))))
def test_skip_policy_holds_decision_and_counts_nonfinite_measurements(stream):
    skipping = EntropyTargetController(target=1.0, on_nonfinite="skip")
    clean = EntropyTargetController(target=1.0)
    skipped = 0
    for h in stream:
        decision = skipping.update(entropy=h)
        if math.isfinite(h):
            expected = clean.update(entropy=h)
        else:
            skipped += 1
            expected = clean.decision
        assert decision == CoefDecision(expected.coef, expected.step, skipped)
