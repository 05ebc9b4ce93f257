"""BudgetKL's proxy hold (``hold_window``): once the newer half of the last w batches' mean proxy
reward is no higher than the older half, every later step is limited to a KL of 1e-8 × the
budget: to nothing."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from helpers import json_roundtrip, loads_or_is_refused_naming, nodes, replaced, with_changes
from hypothesis import given, settings
from hypothesis import strategies as st

from safecontrol import BudgetKL, registry
from safecontrol.budget_kl import HELD_KL_RATIO
from safecontrol.proxy_hold import half_change
from safecontrol.testing import check_controller
from safecontrol.testing import strategies as sst

BATCH = {"n_steps": 32, "tokens_per_sequence": 16.0}
H0 = 4.0
WINDOW = 8
FREE = 0.001 * H0
"""The step limit before a hold: step_ratio × H₀."""
HELD = HELD_KL_RATIO * 0.35 * H0
"""The step limit of a hold: HELD_KL_RATIO × the derived budget."""


def holding(**settings: Any) -> BudgetKL:
    return BudgetKL(**{"hold_window": WINDOW, **settings})


def feed(controller: BudgetKL, rewards: list[float]) -> list[float]:
    """One update per reward at a KL of 0.5 and entropy H₀; the step limit after each."""
    return [
        controller.update(kl=0.5, entropy=H0, reward=r, **BATCH).max_preview_kl for r in rewards
    ]


def rising(n: int) -> list[float]:
    return [0.01 * t for t in range(n)]


def rising_then_flat(turn: int, n: int) -> list[float]:
    return [0.01 * min(t, turn) for t in range(n)]


def saved(controller: BudgetKL) -> dict[str, Any]:
    return json_roundtrip(controller.state_dict())


def reward_stream() -> list[dict[str, Any]]:
    """KL climbing, the proxy rising for 30 batches and then flat: the hold begins mid-run."""
    return [
        {"kl": 0.05 * t, "entropy": 3.0, "reward": 0.1 * min(t, 30), **BATCH} for t in range(1, 50)
    ]


# ------------------------------------------------------------------ conformance
def test_passes_the_conformance_suite_with_a_hold():
    check_controller(lambda: BudgetKL(hold_window=4))
    check_controller(lambda: BudgetKL(hold_window=6, budget_growth=0.05), reward_stream())
    controller = BudgetKL(hold_window=6)
    for batch in reward_stream():
        controller.update(**batch)
    decision = controller.decision
    assert controller.state.hold.held_at > 30
    assert decision.max_preview_kl == HELD_KL_RATIO * decision.budget


# ------------------------------------------------------------------ the rule
def test_the_window_compares_its_halves_leaving_an_odd_windows_middle_out():
    assert half_change([0.0, 0.0, 1.0, 1.0]) == 1.0
    assert half_change([0.0, 2.0, 9.0, 0.0, 2.0]) == 0.0
    assert half_change([1.0, 3.0]) == 2.0


def test_a_rising_proxy_is_never_held_and_the_step_limit_is_todays():
    held, plain = holding(), BudgetKL()
    limits = feed(held, rising(60))
    assert limits == feed(plain, rising(60))
    assert held.state.hold.held_at == 0 and limits == [FREE] * 60


def test_a_proxy_that_stops_rising_is_held_from_that_update_on_for_good():
    controller = holding()
    # Flat from batch 20: the window of batches 17-24 (updates 18-25) has halves 0.17-0.20 and
    # 0.20: rising still. The first window wholly flat ends at update 28 (batches 20-27).
    limits = feed(controller, rising_then_flat(20, 40))
    assert controller.state.hold.held_at == 28
    assert limits == [FREE] * 27 + [HELD] * 13
    # A later rise does not release it.
    assert feed(controller, rising(30)) == [HELD] * 30
    assert controller.state.hold.held_at == 28


def test_no_hold_before_a_full_window_even_on_a_falling_proxy():
    controller = holding()
    limits = feed(controller, [1.0 - 0.1 * t for t in range(WINDOW)])
    assert limits == [FREE] * (WINDOW - 1) + [HELD]
    assert controller.state.hold.held_at == WINDOW


def test_the_hold_leaves_beta_and_the_budget_alone():
    held, plain = holding(), BudgetKL()
    feed(held, rising_then_flat(10, 40))
    feed(plain, rising_then_flat(10, 40))
    assert held.state.hold.held_at > 0
    assert held.decision.coef == plain.decision.coef
    assert held.decision.budget == plain.decision.budget


def test_without_the_hold_decisions_and_state_dicts_are_todays():
    today, unset = BudgetKL(), BudgetKL(hold_window=None)
    assert feed(unset, rising_then_flat(5, 30)) == feed(today, rising_then_flat(5, 30))
    assert unset.state_dict() == today.state_dict()
    assert set(today.state_dict()["state"]) == {"controller", "error_ema"}
    assert "hold_window" not in today.state_dict()["config"]


def test_an_update_needs_the_reward_and_a_skipped_one_changes_nothing():
    controller = holding()
    feed(controller, rising(3))
    before = controller.state_dict()
    with pytest.raises(ValueError, match=r"hold_window .* needs the batch's mean reward"):
        controller.update(kl=0.5, entropy=H0, **BATCH)
    assert controller.state_dict() == before
    skipping = holding(on_nonfinite="skip")
    feed(skipping, rising(3))
    window = skipping.state.hold
    assert skipping.update(kl=0.5, entropy=H0, reward=math.nan, **BATCH).skipped == 1
    assert skipping.state.hold == window


# ------------------------------------------------------------------ properties (hypothesis)
@given(
    st.integers(2, 12),
    st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=60),
)
@settings(max_examples=150)
def test_held_exactly_from_the_first_full_window_that_does_not_rise(window, rewards):
    controller = BudgetKL(hold_window=window)
    limits = feed(controller, rewards)
    first = next(
        (
            t + 1
            for t in range(window - 1, len(rewards))
            if not half_change(rewards[t - window + 1 : t + 1]) > 0.0
        ),
        0,
    )
    assert controller.state.hold.held_at == first
    free = first - 1 if first else len(rewards)
    assert limits == [FREE] * free + [HELD] * (len(rewards) - free)


@given(st.integers(2, 10), sst.drifting_streams(min_size=4, max_size=40), st.data())
@settings(max_examples=60)
def test_a_round_trip_anywhere_continues_identically(window, stream, data):
    rewards = data.draw(st.lists(st.floats(-1.0, 1.0), min_size=len(stream), max_size=len(stream)))
    batches = [{**b, "reward": r, **BATCH} for b, r in zip(stream, rewards, strict=True)]
    original = BudgetKL(hold_window=window)
    split = data.draw(st.integers(0, len(batches)))
    for batch in batches[:split]:
        original.update(**batch)
    restored = BudgetKL(hold_window=window)
    restored.load_state_dict(saved(original))
    for batch in batches[split:]:
        assert restored.update(**batch) == original.update(**batch)
    assert restored.state_dict() == original.state_dict()


# ------------------------------------------------------------------ state
def held(updates: int = 30) -> BudgetKL:
    controller = holding()
    feed(controller, rising_then_flat(10, updates))
    return controller


HOSTILE: list[tuple[dict[str, Any], str]] = [
    ({"hold.rewards": lambda v: [*v, 0.5]}, r"hold\.rewards must hold min\(step, hold_window\)"),
    ({"hold.rewards": lambda v: v[1:]}, r"hold\.rewards must hold min\(step, hold_window\)"),
    ({"hold.rewards": lambda v: [1e200, *v[1:]]}, r"hold\.rewards must hold measurements"),
    ({"hold.rewards": lambda v: [math.nan, *v[1:]]}, r"hold state: rewards\[0\] must be"),
    ({"hold.held_at": 3}, r"hold\.held_at must be 0 or lie in \[hold_window, step\] = \[8, 30\]"),
    ({"hold.held_at": 31}, r"hold\.held_at must be 0 or lie in \[hold_window, step\]"),
    ({"hold.held_at": 0}, r"hold\.held_at must be set: the last window"),
    ({"hold.held_at": -1}, r"held_at must lie in \[0, "),
    ({"hold.held_at": True}, r"held_at must"),
    ({"hold": None}, r"hold must be a record when hold_window is set"),
    ({"hold": [1.0]}, r"hold state must be a dict"),
]


@pytest.mark.parametrize(("changes", "match"), HOSTILE)
def test_a_hostile_hold_state_is_refused_naming_the_field_and_changes_nothing(changes, match):
    state = saved(held())
    controller = holding()
    feed(controller, rising(3))
    before = controller.state_dict()
    with pytest.raises(ValueError, match=match):
        controller.load_state_dict(with_changes(state, changes))
    assert controller.state_dict() == before


def test_a_hold_must_agree_with_the_window_it_was_taken_on():
    controller = holding()
    feed(controller, rising(WINDOW + 2))
    rising_state = saved(controller)
    step = rising_state["state"]["controller"]["step"]
    with pytest.raises(ValueError, match=r"held_at must be the update whose window stopped"):
        holding().load_state_dict(with_changes(rising_state, {"hold.held_at": step}))
    at_hold = held(18)  # flat from batch 10: held at update 18, the window of batches 10-17
    assert at_hold.state.hold.held_at == 18
    holding().load_state_dict(saved(at_hold))


def test_a_controller_without_a_hold_refuses_a_hold_record_and_back():
    plain = BudgetKL()
    feed(plain, rising(3))
    state = saved(plain)
    state["state"]["hold"] = {"rewards": [], "held_at": 0}
    with pytest.raises(ValueError, match="hold must be null without hold_window"):
        BudgetKL().load_state_dict(state)
    state["state"]["hold"] = None  # null: the same as absent
    BudgetKL().load_state_dict(state)
    with pytest.raises(ValueError, match=r"config differs in .*hold_window"):
        holding().load_state_dict(saved(plain))
    with pytest.raises(ValueError, match=r"config differs in .*hold_window"):
        BudgetKL().load_state_dict(saved(held()))


HELD_STATE = saved(held())


@given(st.sampled_from(list(nodes(HELD_STATE))), sst.hostile_values())
@settings(max_examples=200)
def test_any_value_anywhere_in_a_held_state_loads_consistently_or_is_refused(path, value):
    controller = holding()
    if not loads_or_is_refused_naming(controller, replaced(HELD_STATE, path, value), path):
        return
    hold, step = controller.state.hold, controller.state.controller.step
    assert len(hold.rewards) == min(step, WINDOW)
    assert hold.held_at == 0 or WINDOW <= hold.held_at <= step
    decision = controller.update(kl=0.5, entropy=H0, reward=0.1, **BATCH)
    assert math.isfinite(decision.coef) and decision.max_preview_kl in (FREE, HELD)
    json.dumps(controller.state_dict(), allow_nan=False)


# ------------------------------------------------------------------ settings
@pytest.mark.parametrize("value", [0, 1, 2.5, -3, True, "8"])
def test_a_bad_hold_window_is_named(value):
    with pytest.raises(ValueError, match="hold_window"):
        BudgetKL(hold_window=value)


def test_the_registry_offers_the_hold():
    assert registry.registration("kl-budget").defaults()["hold_window"] is None
    controller = registry.make("kl-budget", hold_window=4)
    assert isinstance(controller, BudgetKL) and controller.state.hold is not None
    assert controller.state_dict()["config"]["hold_window"] == 4
