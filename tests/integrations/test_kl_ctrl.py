"""KLCtrlAdapter: every registered controller in the frameworks' ``.value`` /
``.update(current_kl, n_steps)`` shape, with a side channel and a strict-JSON state."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from safecontrol import registry
from safecontrol.integrations.kl_ctrl import KLCtrlAdapter
from safecontrol.testing.conformance import BAD_VALUES, measurements

STREAM = list(measurements(steps=40))
SIDE = ("entropy", "reward", "tokens_per_sequence")


def _feed(adapter: KLCtrlAdapter, batch: dict[str, Any], via_observe: bool) -> Any:
    side = {key: batch[key] for key in SIDE}
    if via_observe:
        adapter.observe(**side)
        return adapter.update(batch["kl"], batch["n_steps"])
    return adapter.update(batch["kl"], batch["n_steps"], **side)


def _state(adapter: KLCtrlAdapter) -> str:
    return json.dumps(adapter.state_dict(), allow_nan=False, sort_keys=True)


@pytest.mark.parametrize("name", registry.names())
def test_value_is_the_decision_coef_and_observe_equals_keywords(name: str) -> None:
    by_observe, by_keywords, direct = KLCtrlAdapter(name), KLCtrlAdapter(name), registry.make(name)
    assert by_observe.value == direct.decision.coef
    for batch in STREAM:
        decision = _feed(by_observe, batch, via_observe=True)
        _feed(by_keywords, batch, via_observe=False)
        expected = direct.update(**batch)
        assert decision.as_dict() == expected.as_dict() == by_keywords.decision.as_dict()
        assert by_observe.value == expected.coef == by_keywords.value
        assert type(by_observe.value) is float


@pytest.mark.parametrize("name", registry.names())
def test_bad_input_is_refused_and_changes_nothing(name: str) -> None:
    adapter = KLCtrlAdapter(name)
    for batch in STREAM[:5]:
        _feed(adapter, batch, via_observe=True)
    adapter.observe(entropy=2.0)  # a pending value must survive every refused call
    before = _state(adapter)
    good = STREAM[5]
    for argument, values in BAD_VALUES.items():
        for value in values:
            batch = {**good, argument: value}
            calls = [lambda b=batch: _feed(adapter, b, via_observe=False)]
            if argument in SIDE and value is not None:
                calls.append(lambda a=argument, v=value: adapter.observe(**{a: v}))
            for call in calls:
                with pytest.raises((ValueError, TypeError)):
                    call()
                assert _state(adapter) == before, f"{argument}={value!r} changed the state"


@pytest.mark.parametrize("name", registry.names())
def test_state_round_trip_continues_bit_identically(name: str) -> None:
    original = KLCtrlAdapter(name)
    expected, saved = [], {}
    for t, batch in enumerate(STREAM):
        if t in (0, 1, 9, 25):
            original.observe(entropy=batch["entropy"])  # pending side channel is saved too
            saved[t] = json.loads(_state(original))
        expected.append(_feed(original, batch, via_observe=True).as_dict())
    for k, state in saved.items():
        restored = KLCtrlAdapter(name)
        restored.load_state_dict(state)
        assert _state(restored) == json.dumps(state, sort_keys=True)
        for t in range(k, len(STREAM)):
            assert _feed(restored, STREAM[t], via_observe=True).as_dict() == expected[t]


def test_per_sequence_controller_refuses_a_kl_without_length() -> None:
    adapter = KLCtrlAdapter("adaptive-kl")
    before = _state(adapter)
    with pytest.raises(ValueError, match="tokens_per_sequence"):
        adapter.update(0.05, 16)
    adapter.observe(reward=1.0)
    with pytest.raises(ValueError, match="tokens_per_sequence"):
        adapter.update(0.05, 16)
    assert adapter.state_dict()["pending"] == {"reward": 1.0}
    adapter.reset()
    assert _state(adapter) == before


def test_per_sequence_controller_converts_with_the_length() -> None:
    """kl per token × tokens per sequence: the fixed length and a per-batch one agree with the
    controller driven directly; a fixed length wins over a batch's (which is validated only)."""
    fixed = KLCtrlAdapter("adaptive-kl", tokens_per_sequence=12.0)
    direct = registry.make("adaptive-kl")
    for _ in range(3):
        fixed.update(0.7, 64)
        direct.update(kl=0.7, n_steps=64, tokens_per_sequence=12.0)
    assert fixed.value == direct.decision.coef != 0.2
    fixed.update(0.7, 64, tokens_per_sequence=3.0)
    direct.update(kl=0.7, n_steps=64, tokens_per_sequence=12.0)
    assert fixed.value == direct.decision.coef
    per_batch = KLCtrlAdapter("adaptive-kl")
    per_batch.update(0.7, 64, tokens_per_sequence=3.0)
    direct = registry.make("adaptive-kl")
    direct.update(kl=0.7, n_steps=64, tokens_per_sequence=3.0)
    assert per_batch.value == direct.decision.coef
    with pytest.raises(ValueError, match="tokens_per_sequence"):
        fixed.update(0.7, 64, tokens_per_sequence=-1.0)


def test_side_channel_is_consumed_by_an_accepted_update() -> None:
    adapter = KLCtrlAdapter("safe")
    adapter.observe(entropy=3.0, reward=0.1)
    adapter.update(0.1, 8)
    assert adapter.state_dict()["pending"] == {}
    with pytest.raises(ValueError, match="entropy is required"):
        adapter.update(0.1, 8)  # SAFE needs entropy and reward every batch


def test_update_keywords_win_over_observed_values() -> None:
    adapter, direct = KLCtrlAdapter("safe"), registry.make("safe")
    adapter.observe(entropy=3.0, reward=0.1)
    adapter.update(0.1, 8, reward=0.7)
    direct.update(kl=0.1, entropy=3.0, reward=0.7, n_steps=8)
    assert adapter.state_dict()["controller"] == direct.state_dict()


def test_controller_instance_and_registry_settings() -> None:
    controller = registry.make("pid-lagrangian-kl", target=0.3)
    adapter = KLCtrlAdapter(controller)
    assert adapter.controller is controller
    named = KLCtrlAdapter("pid-lagrangian-kl", {"target": 0.3})
    assert named.state_dict() == adapter.state_dict()
    with pytest.raises(ValueError, match="settings are for a controller given by registry name"):
        KLCtrlAdapter(controller, {"target": 0.3})
    with pytest.raises(ValueError, match="unknown controller"):
        KLCtrlAdapter("no-such-kl")
    with pytest.raises(ValueError, match=r"keep safecontrol\.contract\.Controller"):
        KLCtrlAdapter(object())  # type: ignore[arg-type]
    for bad in (0.0, -1.0, math.nan, "12", True):
        with pytest.raises(ValueError, match="tokens_per_sequence"):
            KLCtrlAdapter("adaptive-kl", tokens_per_sequence=bad)


def _corrupted(state: dict[str, Any]) -> list[Any]:
    other = KLCtrlAdapter("fixed-kl").state_dict()["controller"]
    return [
        None,
        [],
        {**state, "type": "Other"},
        {**state, "format_version": 2},
        {**state, "format_version": True},
        {**state, "extra": 1},
        {k: v for k, v in state.items() if k != "pending"},
        {**state, "tokens_per_sequence": 5.0},
        {**state, "pending": {"kl": 0.1}},
        {**state, "pending": {"entropy": "3"}},
        {**state, "pending": {"tokens_per_sequence": -1.0}},
        {**state, "pending": {"reward": math.nan}},
        {**state, "pending": []},
        {**state, "controller": other},
        {**state, "controller": {**state["controller"], "state": {}}},
    ]


@pytest.mark.parametrize("name", ["safe", "adaptive-kl"])
def test_load_state_dict_is_all_or_nothing(name: str) -> None:
    source = KLCtrlAdapter(name, tokens_per_sequence=10.0)
    for batch in STREAM[:7]:
        _feed(source, batch, via_observe=True)
    source.observe(reward=0.4)
    target = KLCtrlAdapter(name, tokens_per_sequence=10.0)
    _feed(target, STREAM[0], via_observe=True)
    target.observe(entropy=1.5)
    before = _state(target)
    for bad in _corrupted(source.state_dict()):
        with pytest.raises(ValueError):
            target.load_state_dict(bad)
        assert _state(target) == before, f"refused {str(bad)[:60]} but changed the adapter"
    target.load_state_dict(source.state_dict())
    assert _state(target) == _state(source)


def test_adaptive_kl_follows_verls_rule_with_a_per_token_target() -> None:
    """verl's AdaptiveKLController (core_algos.py, verl 0.9.1), transcribed: the registry's
    adaptive-kl with target=target_kl and tokens_per_sequence=1 matches it bit for bit while β stays
    inside coef_limits. The real package is compared in test_verl.py."""
    value, target, horizon = 0.05, 0.02, 10000
    adapter = KLCtrlAdapter(
        "adaptive-kl",
        {"init_coef": value, "target": target, "horizon": horizon},
        tokens_per_sequence=1.0,
    )
    for batch in STREAM:
        current_kl = batch["kl"] / 20.0
        error = min(max(current_kl / target - 1, -0.2), 0.2)
        value *= 1 + error * 256 / horizon
        adapter.update(current_kl, 256)
        assert adapter.value == value


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_non_finite_observed_value_is_saved_as_strict_json_and_restored(value: float) -> None:
    """``observe`` keeps a NaN or inf entropy or reward for the controller,
    whose ``on_nonfinite`` decides (here: skip the batch), but ``state_dict()`` then held a float
    NaN, which strict JSON (and so verl's ``save_checkpoint``) refused."""
    source = KLCtrlAdapter("safe", {"on_nonfinite": "skip"})
    source.observe(entropy=value, reward=-value)
    text = _state(source)  # strict JSON
    assert json.loads(text)["pending"] == {"entropy": repr(value), "reward": repr(-value)}
    restored = KLCtrlAdapter("safe", {"on_nonfinite": "skip"})
    restored.load_state_dict(json.loads(text))
    assert _state(restored) == text
    assert restored.update(0.01, 8).skipped == source.update(0.01, 8).skipped == 1


@pytest.mark.parametrize(
    "pending",
    [
        {"entropy": "0.5"},
        {"entropy": "NaN"},
        {"entropy": "-inf"},  # an entropy is never negative
        {"reward": "infinity"},
        {"tokens_per_sequence": "inf"},  # a length is finite
        {"tokens_per_sequence": "nan"},
    ],
)
def test_only_the_non_finite_spellings_state_dict_writes_load(pending: dict[str, str]) -> None:
    adapter = KLCtrlAdapter("safe")
    state = {**adapter.state_dict(), "pending": pending}
    (key,) = pending
    with pytest.raises(ValueError, match=key):
        adapter.load_state_dict(state)
    assert adapter.state_dict()["pending"] == {}
