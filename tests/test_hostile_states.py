"""Hostile values at every node of the states added after the first hostile suite
(``test_hostile_inputs``): ``KLCtrlAdapter`` (its calls and its state), the verl state file, the
TRL callback's state and ``BudgetKL``'s state. A state gets a hostile value at every node (a leaf,
a list, a dict), not only at its numbers; each load either succeeds, leaving a state that keeps
working, or is refused naming the field and changing nothing.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from helpers import nodes, replaced
from hypothesis import assume, given
from hypothesis import strategies as st
from test_hostile_inputs import EXAMPLES, rejected_naming

from safecontrol import BudgetKL, SafeController
from safecontrol.integrations.kl_ctrl import SIDE_CHANNEL, KLCtrlAdapter
from safecontrol.integrations.verl import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from safecontrol.testing.strategies import hostile_values


# ---------------------------------------------------------------- every node of a state
def named_in(exc: BaseException, path: tuple[Any, ...], *also: str) -> None:
    """A ValueError naming the innermost key on ``path`` or one of ``also``; a controller's own
    config is named as such (``Stateful``: "config differs", "config is not plain JSON")."""
    assert isinstance(exc, ValueError), repr(exc)
    keys = [str(k) for k in path if isinstance(k, str)]
    rejected_naming(exc, *keys[-1:], *(["config"] if "config" in keys else []), *also)


def loads_with(stateful: Any, path: tuple[Any, ...], value: Any, *also: str) -> bool:
    """Load ``stateful``'s own state with ``value`` at ``path``: True when it loaded; a refusal
    must name the field (or one of ``also``) and leave the state as it was."""
    before = stateful.state_dict()
    try:
        stateful.load_state_dict(replaced(before, path, value))
    except Exception as exc:
        named_in(exc, path, *also)
        assert stateful.state_dict() == before
        return False
    return True


# ---------------------------------------------------------------- KLCtrlAdapter
ADAPTERS: dict[str, Callable[[], KLCtrlAdapter]] = {
    "safe-skip": lambda: KLCtrlAdapter("safe", {"phase_window": 4, "on_nonfinite": "skip"}),
    "safe": lambda: KLCtrlAdapter("safe", {"phase_window": 4}),
    "adaptive-kl": lambda: KLCtrlAdapter("adaptive-kl", tokens_per_sequence=1.0),
    "kl-budget": lambda: KLCtrlAdapter("kl-budget"),
}
NORMAL_BATCH = {
    "current_kl": 0.02,
    "n_steps": 8,
    "entropy": 1.5,
    "reward": 0.3,
    "tokens_per_sequence": 12.0,
}


def advanced_adapter(name: str) -> KLCtrlAdapter:
    """An adapter after six batches, with a side channel observed for the next."""
    adapter = ADAPTERS[name]()
    for t in range(6):
        adapter.update(**{**NORMAL_BATCH, "current_kl": 0.02 * t, "reward": 0.1 * t})
    adapter.observe(entropy=1.4, reward=0.5, tokens_per_sequence=11.0)
    return adapter


def normal_adapter_update(adapter: KLCtrlAdapter, must_succeed: bool) -> None:
    before = adapter.state_dict()
    try:
        decision = adapter.update(**NORMAL_BATCH)  # every side value given: pending ones lose
    except ValueError:
        if must_succeed:
            raise
        assert adapter.state_dict() == before
        return
    assert all(math.isfinite(v) for v in decision.as_dict().values() if isinstance(v, float))


ADAPTER_CALLS = [
    (name, call, arg)
    for name in ADAPTERS
    for call, args in (("observe", SIDE_CHANNEL), ("update", tuple(NORMAL_BATCH)))
    for arg in args
]


@EXAMPLES
@given(st.sampled_from(ADAPTER_CALLS), hostile_values())
def test_kl_ctrl_adapter_calls_accept_or_refuse_naming_and_its_state_stays_strict_json(case, value):
    name, call, arg = case
    adapter = advanced_adapter(name)
    before = adapter.state_dict()
    try:
        if call == "observe":
            adapter.observe(**{arg: value})
        else:
            adapter.update(**{**NORMAL_BATCH, arg: value})
    except Exception as exc:
        rejected_naming(exc, arg, "kl" if arg == "current_kl" else arg)
        assert adapter.state_dict() == before
        normal_adapter_update(adapter, must_succeed=True)
        return
    # Strict JSON even after an accepted NaN, and the state loads into a new adapter.
    restored = ADAPTERS[name]()
    restored.load_state_dict(json.loads(json.dumps(adapter.state_dict(), allow_nan=False)))
    assert restored.state_dict() == adapter.state_dict()
    normal_adapter_update(adapter, must_succeed=False)


ADAPTER_NODES = [
    (name, path) for name in ADAPTERS for path in nodes(advanced_adapter(name).state_dict())
]


@EXAMPLES
@given(st.sampled_from(ADAPTER_NODES), hostile_values())
def test_kl_ctrl_adapter_state_loads_or_is_refused_naming_the_field(node, value):
    name, path = node
    adapter = advanced_adapter(name)
    owner = type(adapter.controller).__name__  # its refusal of its own state names it
    if not loads_with(adapter, path, value, "not a KLCtrlAdapter state", "state must", owner):
        normal_adapter_update(adapter, must_succeed=True)
        return
    json.dumps(adapter.state_dict(), allow_nan=False)
    normal_adapter_update(adapter, must_succeed=False)


# ---------------------------------------------------------------- the verl state file
SAVED: dict[str, dict[str, Any]] = {}
"""What ``save_checkpoint`` writes for each adapter (written once: it fsyncs)."""
for _name in ADAPTERS:
    with (
        tempfile.TemporaryDirectory() as _folder,
        open(save_checkpoint(advanced_adapter(_name), _folder), encoding="utf-8") as _file,
    ):
        SAVED[_name] = json.load(_file)


def _verl_file_case(name: str, write: Callable[[str, dict[str, Any]], None]) -> None:
    """Write a state file with ``write(path, state)``; load it into a fresh adapter: it loads
    (strict JSON state) or is refused with a ValueError naming the file, changing nothing."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, CHECKPOINT_FILE)
        write(path, SAVED[name])
        adapter = ADAPTERS[name]()
        before = adapter.state_dict()
        try:
            assert load_checkpoint(adapter, folder)
        except Exception as exc:
            assert isinstance(exc, ValueError), repr(exc)
            assert path in str(exc), str(exc)
            assert adapter.state_dict() == before
            return
        json.dumps(adapter.state_dict(), allow_nan=False)
        normal_adapter_update(adapter, must_succeed=False)


def _json_text(value: Any) -> str | None:
    try:
        return json.dumps(value)  # NaN and inf as JSON's non-standard tokens, as a careless writer
    except (TypeError, ValueError):
        return None


@EXAMPLES
@given(st.sampled_from(ADAPTER_NODES), hostile_values())
def test_a_verl_state_file_with_any_value_anywhere_loads_or_is_refused_naming_it(node, value):
    name, path = node
    assume(_json_text(value) is not None)

    def write(file: str, state: dict[str, Any]) -> None:
        with open(file, "w", encoding="utf-8") as f:
            f.write(json.dumps(replaced(state, path, value)))

    _verl_file_case(name, write)


@EXAMPLES
@given(st.sampled_from(sorted(ADAPTERS)), st.data())
def test_a_truncated_or_garbled_verl_state_file_is_refused_naming_it(name, data):
    def write(file: str, state: dict[str, Any]) -> None:
        text = json.dumps(state, indent=1).encode()
        cut = data.draw(st.integers(0, len(text) - 1))
        tail = data.draw(st.binary(max_size=8))
        with open(file, "wb") as f:
            f.write(text[:cut] + tail)

    _verl_file_case(name, write)


# ---------------------------------------------------------------- the TRL callback's state
@pytest.fixture(scope="module")
def grpo_trainer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("trl")
    from integrations.trl_tiny import make_trainer, tiny_model_dir

    return make_trainer(tiny_model_dir(tmp_path_factory), tmp_path_factory.mktemp("hostile"))


def _trl_state(trainer: Any) -> dict[str, Any]:
    """A callback's state with a value in every pending list, after three updates."""
    from integrations.trl_tiny import MOVING_SAFE

    from safecontrol.integrations.trl import MEAN_LENGTH, SafeBetaCallback

    source = SafeBetaCallback(trainer, SafeController(MOVING_SAFE))
    for t in range(3):
        source.controller.update(kl=0.01 * t, entropy=2.0, reward=0.1 * t, n_steps=4)
    pending = {"kl": [0.02], "entropy": [1.9], "reward": [0.3], MEAN_LENGTH: [3.5]}
    source.measurements.pending, source.measurements.rollouts = pending, 1
    source._global_step = 6
    trainer.beta = source.beta
    return source.state_dict()


def test_trl_callback_state_refuses_hostile_values_at_every_node_naming_them(grpo_trainer):
    from integrations.trl_tiny import MOVING_SAFE

    from safecontrol.integrations.trl import SafeBetaCallback

    state = _trl_state(grpo_trainer)
    callback = SafeBetaCallback(grpo_trainer, SafeController(MOVING_SAFE))
    callback.load_state_dict(json.loads(json.dumps(state, allow_nan=False)))  # the state is fine

    @EXAMPLES
    @given(st.sampled_from(list(nodes(state))), hostile_values())
    def check(path: tuple[Any, ...], value: Any) -> None:
        callback = SafeBetaCallback(grpo_trainer, SafeController(MOVING_SAFE))
        before, beta = callback.state_dict(), grpo_trainer.beta
        try:
            callback.load_state_dict(replaced(state, path, value))
        except Exception as exc:
            named_in(exc, path, "not a SafeBetaCallback state", "state must", "SafeController")
            assert callback.state_dict() == before and grpo_trainer.beta == beta
            return
        json.dumps(callback.state_dict(), allow_nan=False)
        assert math.isfinite(grpo_trainer.beta) and grpo_trainer.beta > 0

    check()


# ---------------------------------------------------------------- BudgetKL state
BUDGETS: dict[str, Callable[[], BudgetKL]] = {"derived": BudgetKL, "given": lambda: BudgetKL(0.3)}


def advanced_budget(name: str) -> BudgetKL:
    controller = BUDGETS[name]()
    for t in range(9):
        controller.update(kl=0.1 + 0.05 * (t % 4), entropy=2.0 - 0.05 * t, n_steps=8)
    return controller


BUDGET_NODES = [
    (name, path) for name in BUDGETS for path in nodes(advanced_budget(name).state_dict())
]


@EXAMPLES
@given(st.sampled_from(BUDGET_NODES), hostile_values())
def test_budget_kl_state_loads_consistently_or_is_refused_naming_the_field(node, value):
    """Whatever loads has the budget its initial entropy derives."""
    name, path = node
    controller = advanced_budget(name)
    if not loads_with(controller, path, value, "state must", "state_dict is for"):
        return
    c = controller.state.controller
    if controller.budget is None and c.step > 0:
        assert c.initial_entropy is not None
        assert c.budget == max(controller.budget_ratio * c.initial_entropy, controller.min_budget)
    decision = controller.update(kl=0.2, entropy=1.5, n_steps=8)
    assert math.isfinite(decision.coef) and decision.max_preview_kl > 0
