"""BudgetKL's steered budget (``budget_growth``): the budget grows while it binds and the proxy
still pays for KL, holds otherwise, and stays within [its start, max_budget_ratio × H₀]."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from helpers import json_roundtrip, loads_or_is_refused_naming, nodes, replaced, with_changes
from hypothesis import given, settings
from hypothesis import strategies as st

from safecontrol import BudgetKL, registry
from safecontrol.budget_steering import window_gain
from safecontrol.testing import check_controller
from safecontrol.testing import strategies as sst

BATCH = {"n_steps": 32, "tokens_per_sequence": 16.0}
START = 1.0
"""The given start budget, nats per token."""
H0 = 4.0
"""The entropy of every batch: H₀, so the largest budget is max_budget_ratio × 4 nats."""
WINDOW = 10


def steered(**settings: Any) -> BudgetKL:
    return BudgetKL(**{"budget": START, "budget_growth": 0.05, **settings})


def follow(
    controller: BudgetKL,
    steps: int,
    reward_of: Callable[[float, int], float],
    share: float = 1.02,
    ramp: int = WINDOW,
) -> list[float]:
    """A policy on its leash: KL rises over ``ramp`` batches to ``share`` × the set point of the
    budget last decided and then follows it (the budget binds when ``share`` ≥ 1); the proxy's
    reward of batch t is ``reward_of(kl, t)``. Returns the budget after every update."""
    budgets = []
    for t in range(steps):
        budget = controller.decision.budget or START
        kl = controller.setpoint * budget * share * min(1.0, (t + 1) / ramp)
        controller.update(kl=kl, entropy=H0, reward=reward_of(kl, t), **BATCH)
        budgets.append(controller.decision.budget)
    return budgets


def paying(kl: float, t: int) -> float:
    """A proxy that pays 2 per nat of KL, all run long."""
    return 2.0 * kl


def flattening_at(turn: int) -> Callable[[float, int], float]:
    """A proxy that pays 2 per nat of KL until batch ``turn``, then nothing more."""
    last = [0.0]

    def reward(kl: float, t: int) -> float:
        if t < turn:
            last[0] = 2.0 * kl
        return last[0]

    return reward


def saved(controller: BudgetKL) -> dict[str, Any]:
    return json_roundtrip(controller.state_dict())


# ------------------------------------------------------------------ conformance
def growing_stream() -> list[dict[str, Any]]:
    """A run whose KL climbs past the set point of a 0.3 budget while the proxy pays for it."""
    return [{"kl": 0.05 * t, "entropy": 3.0, "reward": 0.1 * t, **BATCH} for t in range(1, 65)]


def test_passes_the_conformance_suite_with_a_steered_budget():
    check_controller(lambda: BudgetKL(budget_growth=0.05))
    check_controller(lambda: BudgetKL(budget=0.3, budget_growth=0.05, gain_window=4))
    # A stream on which the budget grows: the round trip covers grown states.
    check_controller(
        lambda: BudgetKL(budget=0.3, budget_growth=0.05, gain_window=4), growing_stream()
    )
    controller = BudgetKL(budget=0.3, budget_growth=0.05, gain_window=4)
    for batch in growing_stream():
        controller.update(**batch)
    assert controller.decision.budget > 0.3


# ------------------------------------------------------------------ growth off: today's controller
@given(sst.drifting_streams(max_size=40))
@settings(max_examples=60)
def test_without_growth_decisions_and_state_dicts_are_todays(stream):
    today = BudgetKL()
    unset = BudgetKL(budget_growth=None, max_budget_ratio=0.2, gain_window=3, gain_floor=2.0)
    for batch in stream:
        assert unset.update(**batch, **BATCH).as_dict() == today.update(**batch, **BATCH).as_dict()
        assert unset.state_dict() == today.state_dict()
    # The layout of the fixed budget, which its earlier checkpoints have.
    layout = today.state_dict()
    assert set(layout["state"]) == {"controller", "error_ema"}
    assert "budget_growth" not in layout["config"]
    BudgetKL().load_state_dict(layout)


def test_without_growth_max_budget_ratio_does_not_restrict_budget_ratio():
    controller = BudgetKL(budget_ratio=2.0)  # max_budget_ratio 1.0 acts on nothing here
    assert controller.update(kl=0.1, entropy=1.0, **BATCH).budget == 2.0


def test_a_fixed_budgets_checkpoint_is_refused_by_a_steered_controller_and_back():
    fixed = BudgetKL()
    fixed.update(kl=0.1, entropy=H0, reward=0.0, **BATCH)
    with pytest.raises(ValueError, match=r"config differs in .*budget_growth"):
        BudgetKL(budget_growth=0.05).load_state_dict(saved(fixed))
    grown = BudgetKL(budget_growth=0.05)
    grown.update(kl=0.1, entropy=H0, reward=0.0, **BATCH)
    with pytest.raises(ValueError, match=r"config differs in .*budget_growth"):
        BudgetKL().load_state_dict(saved(grown))


# ------------------------------------------------------------------ the rule
def test_the_budget_grows_by_its_factor_while_the_proxy_pays_and_kl_sits_at_the_budget():
    controller = steered()
    budgets = follow(controller, 30, paying)
    assert budgets[: WINDOW - 1] == [START] * (WINDOW - 1)  # no gain before a full window
    assert controller.state.steering.reference_gain == pytest.approx(2.0)
    for before, after in zip(budgets[WINDOW - 2 :], budgets[WINDOW - 1 :], strict=False):
        assert after == before * 1.05  # every update: the leash binds, the proxy pays


def test_the_budget_never_exceeds_max_budget_ratio_times_h0():
    for ratio in (1.0, 2.0):
        controller = steered(max_budget_ratio=ratio)
        budgets = follow(controller, 120, paying)
        assert max(budgets) == ratio * H0 == budgets[-1]
        assert budgets == sorted(budgets)
        # The step limit keeps its formula in the current budget: step_ratio × H₀ here.
        assert controller.decision.max_preview_kl == pytest.approx(0.001 * H0)


def test_growth_stops_once_the_proxy_stops_paying():
    turn = 20
    budgets = follow(steered(), 80, flattening_at(turn))
    assert budgets[turn] > budgets[WINDOW] > START  # grew while the proxy paid
    assert budgets[turn + WINDOW :] == [budgets[-1]] * (80 - turn - WINDOW)  # then holds
    assert budgets[-1] < H0


def test_the_budget_does_not_grow_while_kl_stays_below_its_set_point():
    controller = steered()
    assert follow(controller, 60, paying, share=0.97) == [START] * 60
    assert controller.state.steering.reference_gain == pytest.approx(2.0)  # it would have paid


def test_the_budget_holds_and_never_shrinks_when_the_proxy_falls_as_kl_rises():
    turn = 20

    def reward(kl: float, t: int) -> float:
        return 2.0 * kl if t < turn else 10.0 - 3.0 * kl  # hacking: the proxy falls

    budgets = follow(steered(), 80, reward)
    assert budgets == sorted(budgets) and budgets[0] == START
    assert budgets[turn + WINDOW :] == [budgets[-1]] * (80 - turn - WINDOW)


def test_a_first_window_where_the_proxy_did_not_pay_means_no_growth_ever():
    def reward(kl: float, t: int) -> float:
        return -kl if t < WINDOW else 2.0 * kl

    controller = steered()
    assert follow(controller, 60, reward) == [START] * 60
    assert controller.state.steering.reference_gain < 0.0


def test_the_gain_compares_the_windows_halves_and_a_stalled_kl_counts_as_kappa():
    """G = Δ(mean reward) / max(Δ(mean KL), κ) between the older and newer half (an odd window's
    middle batch in neither): a stalled or falling KL counts as κ."""
    kls = (1.0,) * 4
    assert window_gain(kls, (0.0, 0.0, 0.1, 0.1), 0.05) == pytest.approx(2.0)
    assert window_gain((0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 2.0, 2.0), 0.05) == pytest.approx(2.0)
    assert window_gain((0.0, 0.0, 9.0, 1.0, 1.0), (0.0, 0.0, -5.0, 2.0, 2.0), 0.05) == 2.0
    assert window_gain((1.0, 1.0, 0.5, 0.5), (0.0, 0.0, 0.1, 0.1), 0.05) == pytest.approx(2.0)


def test_a_derived_start_budget_grows_from_the_share_of_h0():
    controller = BudgetKL(budget_growth=0.05)
    budgets = follow(controller, 120, paying)
    assert budgets[0] == 0.35 * H0 and budgets[-1] == H0 and budgets == sorted(budgets)


def test_a_given_budget_above_the_largest_stays_put():
    assert follow(steered(budget=5.0), 40, paying) == [5.0] * 40


def test_beta_uses_the_gain_of_the_current_budget():
    controller = steered()
    follow(controller, 25, paying)
    c = controller.state.controller
    assert c.budget > START
    gain = math.sqrt(0.35 * H0 / c.budget)  # √(derived / b), b the grown budget
    expected = gain * (controller.kp * c.proportional + controller.ki * c.integral)
    assert c.coef == pytest.approx(min(max(expected, 0.0), controller.max_coef), rel=1e-12)


def test_a_steered_update_needs_the_reward():
    controller = steered()
    follow(controller, 5, paying)
    before = controller.state_dict()
    with pytest.raises(ValueError, match="reward"):
        controller.update(kl=0.5, entropy=H0, **BATCH)
    assert controller.state_dict() == before
    skipping = steered(on_nonfinite="skip")
    follow(skipping, 5, paying)
    before = skipping.state.steering
    assert skipping.update(kl=0.5, entropy=H0, reward=math.nan, **BATCH).skipped == 1
    assert skipping.state.steering == before


# ------------------------------------------------------------------ properties (hypothesis)
@st.composite
def steered_settings(draw: Any) -> dict[str, Any]:
    return {
        "budget_growth": draw(st.floats(1e-3, 1.0)),
        "max_budget_ratio": draw(st.floats(0.35, 3.0)),
        "gain_window": draw(st.integers(2, 8)),
        "gain_floor": draw(st.floats(0.0, 2.0)),
        "max_coef": draw(st.floats(0.5, 10.0)),
        "budget": draw(st.none() | st.floats(0.05, 3.0)),
    }


@given(steered_settings(), sst.drifting_streams(max_size=60))
@settings(max_examples=150)
def test_the_budget_never_falls_and_stays_in_bounds_and_beta_in_its_clip(config, stream):
    controller = BudgetKL(**config)
    budgets = []
    for batch in stream:
        decision = controller.update(**batch, **BATCH)
        assert 0.0 <= decision.coef <= config["max_coef"]
        assert len(controller.state.steering.kls) <= config["gain_window"]
        budgets.append(decision.budget)
    h0 = stream[0]["entropy"]
    start = config["budget"] or max(0.35 * h0, 0.01)
    assert budgets == sorted(budgets)
    assert start == budgets[0] and budgets[-1] <= max(start, config["max_budget_ratio"] * h0)


@given(steered_settings(), sst.drifting_streams(min_size=4, max_size=40), st.data())
@settings(max_examples=60)
def test_a_round_trip_anywhere_continues_identically(config, stream, data):
    original = BudgetKL(**config)
    split = data.draw(st.integers(0, len(stream)))
    for batch in stream[:split]:
        original.update(**batch, **BATCH)
    restored = BudgetKL(**config)
    restored.load_state_dict(saved(original))
    for batch in stream[split:]:
        assert restored.update(**batch, **BATCH) == original.update(**batch, **BATCH)
    assert restored.state_dict() == original.state_dict()


# ------------------------------------------------------------------ state
def grown(steps: int = 25) -> BudgetKL:
    """A steered controller whose budget has grown, with β > 0 (KL above the set point)."""
    controller = steered()
    follow(controller, steps, paying, share=1.2)
    return controller


def test_a_round_trip_mid_growth_continues_identically():
    original = grown()
    assert original.decision.budget > START
    restored = steered()
    restored.load_state_dict(saved(original))
    assert follow(restored, 40, paying) == follow(original, 40, paying)
    assert restored.state_dict() == original.state_dict()


HOSTILE = [
    ({"steering.kls": lambda v: [*v[:2], math.nan, *v[3:]]}, r"steering state: kls\[2\] must be"),
    ({"steering.rewards": lambda v: [*v, 0.5]}, r"steering\.rewards must hold min\(step, gai"),
    ({"steering.kls": lambda v: [*v, 0.5]}, r"steering\.kls must hold min\(step, gain_window"),
    ({"steering.kls": lambda v: v[1:]}, r"steering\.kls must hold min\(step, gain_window"),
    ({"steering.kls": lambda v: [1e200, *v[1:]]}, r"steering\.kls must hold measurements"),
    ({"steering.reference_gain": -1.0}, r"steering\.reference_gain must be > 0 for a budget"),
    ({"steering.reference_gain": 0.0}, r"steering\.reference_gain must be > 0 for a budget"),
    ({"steering.reference_gain": None}, r"steering\.reference_gain must be set from the first"),
    ({"steering.reference_gain": "2"}, r"reference_gain must be a number"),
    ({"controller.budget": 0.5}, r"budget must lie in \[1\.0, 4\.0\]"),
    ({"controller.budget": 4.5}, r"budget must lie in \[1\.0, 4\.0\]"),
    ({"controller.budget": math.inf}, r"budget must be finite"),
    ({"controller.budget": lambda b: b * 1.01}, r"coef must be clip\(gain"),
    ({"steering": None}, r"steering must be a record when budget_growth is set"),
    ({"steering": [1.0]}, r"steering state must be a dict"),
]


@pytest.mark.parametrize(("changes", "match"), HOSTILE)
def test_a_hostile_steered_state_is_refused_naming_the_field_and_changes_nothing(changes, match):
    state = saved(grown())
    controller = steered()
    follow(controller, 3, paying)
    before = controller.state_dict()
    with pytest.raises(ValueError, match=match):
        controller.load_state_dict(with_changes(state, changes))
    assert controller.state_dict() == before


def test_the_first_windows_gain_is_checked_and_none_before_it():
    before_full = saved(grown(WINDOW - 1))
    with pytest.raises(ValueError, match=r"reference_gain must be set .* null before it"):
        steered().load_state_dict(with_changes(before_full, {"steering.reference_gain": 2.0}))
    at_full = saved(grown(WINDOW))
    steered().load_state_dict(at_full)
    with pytest.raises(ValueError, match=r"reference_gain must equal the gain of the first"):
        steered().load_state_dict(with_changes(at_full, {"steering.reference_gain": 2.5}))
    fresh = saved(steered())
    assert fresh["state"]["steering"] == {"kls": [], "rewards": [], "reference_gain": None}
    with pytest.raises(ValueError, match=r"steering\.kls must hold min\(step, gain_window\) = 0"):
        steered().load_state_dict(with_changes(fresh, {"steering.kls": [0.1]}))


def test_a_fixed_budget_refuses_a_steering_record():
    fixed = BudgetKL(budget=START)
    fixed.update(kl=0.1, **BATCH)
    state = saved(fixed)
    state["state"]["steering"] = {"kls": [], "rewards": [], "reference_gain": None}
    with pytest.raises(ValueError, match="steering must be null without budget_growth"):
        BudgetKL(budget=START).load_state_dict(state)
    state["state"]["steering"] = None  # null: the same as absent
    BudgetKL(budget=START).load_state_dict(state)


GROWN_STATE = saved(grown())


@given(st.sampled_from(list(nodes(GROWN_STATE))), sst.hostile_values())
@settings(max_examples=300)
def test_any_value_anywhere_in_a_steered_state_loads_consistently_or_is_refused(path, value):
    controller = steered()
    if not loads_or_is_refused_naming(controller, replaced(GROWN_STATE, path, value), path):
        return
    c, steering = controller.state.controller, controller.state.steering
    assert START <= c.budget <= H0
    assert len(steering.kls) == len(steering.rewards) == min(c.step, WINDOW)
    assert c.budget == START or steering.reference_gain > 0.0
    decision = controller.update(kl=0.8, entropy=H0, reward=2.0, **BATCH)
    assert math.isfinite(decision.coef) and START <= decision.budget <= H0
    json.dumps(controller.state_dict(), allow_nan=False)


# ------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("budget_growth", 0.0),
        ("budget_growth", -0.05),
        ("budget_growth", 1.5),
        ("budget_growth", math.nan),
        ("budget_growth", True),
        ("gain_window", 0),
        ("gain_window", 1),
        ("gain_window", 2.5),
        ("gain_floor", -0.1),
        ("gain_floor", math.inf),
        ("max_budget_ratio", 0.3),  # below budget_ratio 0.35
        ("max_budget_ratio", 0.0),
        ("max_budget_ratio", math.nan),
    ],
)
def test_bad_steering_settings_are_named(name, value):
    with pytest.raises(ValueError, match=name):
        BudgetKL(**{"budget_growth": 0.05, name: value})


def test_the_registry_offers_the_steering_settings():
    defaults = registry.registration("kl-budget").defaults()
    assert defaults["budget_growth"] is None
    assert (defaults["max_budget_ratio"], defaults["gain_window"], defaults["gain_floor"]) == (
        1.0,
        10,
        0.5,
    )
    controller = registry.make("kl-budget", budget_growth=0.05, gain_window=4)
    assert isinstance(controller, BudgetKL) and controller.state.steering is not None
    assert controller.state_dict()["config"]["gain_window"] == 4
