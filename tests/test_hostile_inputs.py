"""Hostile inputs (issue 10): every public core controller, every update, constructor and
``load_state_dict`` argument, values of every kind (``safecontrol.testing.strategies``'s
``hostile_values``: NaN, ±inf, ±1.8e308, ints too large for a float, negatives, strings, bytes,
None, bools, np.bool_, arrays of shape (1,) and (), lists, dicts, complex).

Each property: the call either accepts the value or raises ValueError/TypeError naming the
argument; a rejected call leaves ``state_dict()`` unchanged; state dicts are always strict JSON;
and no later normal update returns a non-finite decision (after an accepted extreme value it may
itself be rejected, again changing nothing; after a rejected one it must succeed).

Issue 25 extends it to the surfaces added since: ``KLCtrlAdapter`` (its calls and its state), the
verl state file, the TRL callback's state, ``BudgetKL``'s state and ``registry.register``. A state
gets a hostile value at every node (a leaf, a list, a dict), not only at its numbers.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_state_validation import CONTROLLERS, advanced, field_name, leaves, replaced

from safecontrol import (
    EMA,
    PID,
    AdaptiveKL,
    AdaptiveThreshold,
    BudgetKL,
    CoefDecision,
    Controller,
    DualEMA,
    EntropyGate,
    EntropyTargetController,
    FixedKL,
    PhaseDetector,
    PIDLagrangianKL,
    PPOAdaptiveKL,
    RewardVelocity,
    SafeConfig,
    SafeController,
    dead_band_penalty,
    dead_band_slope,
    kl_per_token,
    preview_step_scale,
    registry,
    soft_min,
)
from safecontrol.integrations.kl_ctrl import SIDE_CHANNEL, KLCtrlAdapter
from safecontrol.integrations.verl import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from safecontrol.testing.strategies import hostile_values

EXAMPLES = settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "400")), deadline=None, derandomize=True
)

# ---------------------------------------------------------------- what each call looks like
NORMAL_COEF = {"kl": 0.2, "entropy": 1.0, "reward": 0.5, "n_steps": 8, "tokens_per_sequence": 1.0}
UPDATES: dict[str, tuple[str, ...]] = {
    name: ("kl", "entropy", "reward", "n_steps")
    for name in CONTROLLERS
    if name.startswith(("FixedKL", "AdaptiveKL", "PPO", "PIDLag", "Entropy", "SafeController"))
}
UPDATES.update(
    {
        "PID": ("measurement", "dt", "setpoint", "output_limits", "enabled", "last_output"),
        "PID-back-calculation": ("measurement", "dt", "last_output"),
        "EMA": ("x",),
        "DualEMA": ("x",),
        "RewardVelocity": ("reward",),
        "RewardVelocity-scale-invariant": ("reward",),
        "RewardVelocity-holt": ("reward",),
        "PhaseDetector": ("reward",),
        "AdaptiveThreshold": ("velocity", "multiplier"),
    }
)
UPDATE_CASES = [(name, arg) for name, args in UPDATES.items() for arg in args]


def call_update(controller: Any, arg: str, value: Any) -> None:
    """``controller``'s update (or setter) with ``arg`` set to ``value``, the rest normal."""
    if isinstance(controller, SafeController) or hasattr(controller, "coef"):
        controller.update(**{**NORMAL_COEF, arg: value})
    elif isinstance(controller, PID):
        if arg in ("measurement", "dt"):
            controller.update(**{"measurement": 0.3, "dt": 1.0, arg: value})
        elif arg == "setpoint":
            controller.setpoint = value
        elif arg == "output_limits":
            controller.output_limits = value
        elif arg == "enabled":
            controller.set_auto_mode(value)
        else:
            controller.set_auto_mode(False, last_output=value)
    elif isinstance(controller, AdaptiveThreshold):
        controller.update(**{"velocity": 0.01, "multiplier": 1.2, arg: value})
    else:
        controller.update(value)


def strict_json(controller: Any) -> None:
    json.dumps(controller.state_dict(), allow_nan=False)


def normal_update_is_finite_or_rejected(name: str, controller: Any, must_succeed: bool) -> None:
    """A normal update afterwards never yields a non-finite value; it may be refused (changing
    nothing) only after an accepted extreme value."""
    before = controller.state_dict()
    try:
        values = CONTROLLERS[name][1](controller, 1)
    except ValueError:
        if must_succeed:
            raise
        assert controller.state_dict() == before
        return
    assert all(math.isfinite(v) for v in values), values
    strict_json(controller)


def rejected_naming(exc: BaseException, *names: str) -> None:
    assert isinstance(exc, ValueError | TypeError), repr(exc)
    message = str(exc)
    assert any(n in message for n in names), f"{message!r} names none of {names}"


# ---------------------------------------------------------------- update arguments
@EXAMPLES
@given(st.sampled_from(UPDATE_CASES), hostile_values())
def test_update_arguments_are_accepted_or_rejected_naming_them_changing_nothing(case, value):
    name, arg = case
    controller = advanced(name)
    before = controller.state_dict()
    try:
        call_update(controller, arg, value)
    except Exception as exc:  # the property is about which exceptions
        rejected_naming(exc, arg)
        assert controller.state_dict() == before
        normal_update_is_finite_or_rejected(name, controller, must_succeed=True)
        return
    strict_json(controller)
    normal_update_is_finite_or_rejected(name, controller, must_succeed=False)


# ---------------------------------------------------------------- constructor arguments
CONSTRUCTORS: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "FixedKL": (lambda **kw: FixedKL(**{"coef": 0.1, **kw}), ("coef", "on_nonfinite")),
    "AdaptiveKL": (AdaptiveKL, ("init_coef", "target", "horizon", "on_nonfinite", "coef_limits")),
    "PPOAdaptiveKL": (
        PPOAdaptiveKL,
        ("init_coef", "target", "tolerance", "factor", "on_nonfinite", "coef_limits"),
    ),
    "PIDLagrangianKL": (
        PIDLagrangianKL,
        ("target", "kp", "ki", "kd", "p_decay", "d_decay", "init_integral", "on_nonfinite"),
    ),
    "EntropyTargetController": (
        lambda **kw: EntropyTargetController(**{"target": 1.1, **kw}),
        ("target", "init_coef", "delta", "min_coef", "max_coef", "on_nonfinite"),
    ),
    "SafeController": (
        lambda **kw: SafeController(SafeConfig(**{"phase_window": 4, **kw})),
        tuple(f.name for f in dataclasses.fields(SafeConfig)),
    ),
    "PID": (
        lambda **kw: PID(**{"kp": 0.5, "ki": 0.1, "kd": 0.05, **kw}),
        (
            "kp",
            "ki",
            "kd",
            "setpoint",
            "output_limits",
            "derivative_filter",
            "derivative_on_measurement",
            "anti_windup",
            "rate_limit",
        ),
    ),
    "PID-back-calculation": (
        lambda **kw: PID(
            **{"kp": 2.0, "ki": 0.5, "kd": 0.1, "anti_windup": "back_calculation", **kw}
        ),
        ("tracking_gain", "output_limits"),
    ),
    "EMA": (lambda **kw: EMA(**{"decay": 0.9, **kw}), ("decay", "bias_correction")),
    "DualEMA": (DualEMA, ("short", "long")),
    "RewardVelocity": (RewardVelocity, ("mode", "decay", "eps")),
    "RewardVelocity-scale-invariant": (
        lambda **kw: RewardVelocity(**{"mode": "scale_invariant", **kw}),
        ("std_decay", "eps"),
    ),
    "RewardVelocity-holt": (
        lambda **kw: RewardVelocity(**{"mode": "holt", **kw}),
        ("trend_decay",),
    ),
    "PhaseDetector": (
        lambda **kw: PhaseDetector(**{"window": 3, **kw}),
        ("window", "mode", "climb_margin", "converged_std", "converged_level", "multipliers"),
    ),
    "AdaptiveThreshold": (
        AdaptiveThreshold,
        (
            "base",
            "threshold_limits",
            "kp",
            "ki",
            "kd",
            "velocity_target",
            "derivative_filter",
            "anti_windup",
        ),
    ),
}
CONSTRUCTOR_CASES = [(name, arg) for name, (_, args) in CONSTRUCTORS.items() for arg in args]


@EXAMPLES
@given(st.sampled_from(CONSTRUCTOR_CASES), hostile_values())
def test_constructor_arguments_are_accepted_or_rejected_naming_them(case, value):
    name, arg = case
    make = CONSTRUCTORS[name][0]
    try:
        controller = make(**{arg: value})
    except Exception as exc:
        rejected_naming(exc, arg)
        return
    strict_json(controller)
    for _ in range(3):  # whatever was accepted, no decision is ever non-finite
        normal_update_is_finite_or_rejected(name, controller, must_succeed=False)


def test_safe_controller_rejects_a_config_that_is_not_a_safe_config():
    for value in ({}, "default", SafeConfig, 0.1):
        with pytest.raises(ValueError, match="config"):
            SafeController(value)


@EXAMPLES
@given(hostile_values(), hostile_values())
def test_entropy_gate_arguments_and_input(value, entropy):
    for arg in ("floor", "minimum", "eps"):
        try:
            gate = EntropyGate(**{arg: value})
        except Exception as exc:
            rejected_naming(exc, arg)
            continue
        try:
            g = gate(entropy)
        except Exception as exc:
            rejected_naming(exc, "entropy")
            continue
        assert math.isfinite(g) or not math.isfinite(gate.floor / gate.eps)


# ---------------------------------------------------------------- load_state_dict
LEAVES = [
    (name, path)
    for name in sorted(CONTROLLERS)
    for path, _ in leaves(advanced(name).state_dict()["state"])
]


@EXAMPLES
@given(st.sampled_from(LEAVES), hostile_values())
def test_state_fields_are_validated_on_load_and_a_rejected_load_changes_nothing(leaf, value):
    name, path = leaf
    controller = advanced(name)
    before = controller.state_dict()
    corrupt = replaced(before, path, value)
    try:
        controller.load_state_dict(corrupt)
    except Exception as exc:
        rejected_naming(exc, field_name(path), "state must")
        assert controller.state_dict() == before
        normal_update_is_finite_or_rejected(name, controller, must_succeed=True)
        return
    strict_json(controller)
    normal_update_is_finite_or_rejected(name, controller, must_succeed=False)


CONFIG_LEAVES = [
    (name, path)
    for name in sorted(CONTROLLERS)
    for path, _ in leaves(advanced(name).state_dict()["config"])
]


@EXAMPLES
@given(st.sampled_from(CONFIG_LEAVES), hostile_values())
def test_config_and_header_of_a_state_dict_are_checked_on_load(leaf, value):
    name, path = leaf
    controller = advanced(name)
    before = controller.state_dict()
    corrupt = copy.deepcopy(before)
    node = corrupt["config"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        controller.load_state_dict(corrupt)
    except Exception as exc:
        rejected_naming(exc, "config")
        assert controller.state_dict() == before
        return
    assert controller.state_dict() == before  # only an equal config loads


@EXAMPLES
@given(
    st.sampled_from(sorted(CONTROLLERS)),
    st.sampled_from([None, "format_version", "type", "config", "state"]),
    hostile_values(),
)
def test_state_dict_itself_and_its_header_are_checked(name, key, value):
    controller = advanced(name)
    before = controller.state_dict()
    assume(key is None or type(value) is not type(before[key]) or value != before[key])
    corrupt = value if key is None else {**before, key: value}
    with pytest.raises(ValueError):
        controller.load_state_dict(corrupt)
    assert controller.state_dict() == before


# ---------------------------------------------------------------- stateless functions
FUNCTIONS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "dead_band_penalty": (
        dead_band_penalty,
        {"kl": 0.5, "threshold": 0.3, "gate": 1.0, "coef": 0.1},
    ),
    "dead_band_slope": (dead_band_slope, {"kl": 0.5, "threshold": 0.3, "gate": 1.0, "coef": 0.1}),
    "preview_step_scale": (preview_step_scale, {"preview_kl": 0.7, "max_preview_kl": 0.5}),
    "soft_min": (soft_min, {"values": [0.1, 0.4, 0.2], "alpha": 0.3, "dim": -1}),
    "kl_per_token": (kl_per_token, {"logp": [-1.0, -2.0], "logp_ref": [-1.5, -1.0], "kind": "k3"}),
    "CoefDecision.loss_at": (lambda kl: CoefDecision(0.1).loss_at(kl), {"kl": 0.5}),
    "CoefDecision.slope_at": (lambda kl: CoefDecision(0.1).slope_at(kl), {"kl": 0.5}),
    "SafeDecision.loss_at": (lambda kl: advanced("SafeController").decision.loss_at(kl), {"kl": 1}),
    "SafeDecision.step_scale": (
        lambda preview_kl: advanced("SafeController").decision.step_scale(preview_kl),
        {"preview_kl": 0.7},
    ),
}
FUNCTION_CASES = [(name, arg) for name, (_, args) in FUNCTIONS.items() for arg in args]


@EXAMPLES
@given(st.sampled_from(FUNCTION_CASES), hostile_values())
def test_function_arguments_are_accepted_or_rejected_naming_them(case, value):
    name, arg = case
    function, normal = FUNCTIONS[name]
    try:
        result = function(**{**normal, arg: value})
    except Exception as exc:
        rejected_naming(exc, arg)
        return
    result = np.asarray(result)
    assert result.dtype.kind == "f"
    if name != "kl_per_token":  # elementwise: a −inf log-probability gives an inf estimate
        assert np.all(np.isfinite(result)) or not np.all(np.isfinite(np.asarray(value, float)))


# ---------------------------------------------------------------- issue 25: states, every node
def nodes(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value in a nested dict/list: the leaves and the containers."""
    if path:
        yield path
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from nodes(value, (*path, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from nodes(value, (*path, i))


def with_value(state: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(state)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def named_in(exc: BaseException, path: tuple[Any, ...], *also: str) -> None:
    """A ValueError naming the innermost key on ``path`` or one of ``also``; a controller's own
    config is named as such (``Stateful``: "config differs", "config is not plain JSON")."""
    assert isinstance(exc, ValueError), repr(exc)
    keys = [str(k) for k in path if isinstance(k, str)]
    rejected_naming(exc, *keys[-1:], *(["config"] if "config" in keys else []), *also)


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
    # Strict JSON even after an accepted NaN (item 9), and the state loads into a new adapter.
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
    before = adapter.state_dict()
    try:
        adapter.load_state_dict(with_value(before, path, value))
    except Exception as exc:
        owner = type(adapter.controller).__name__  # its refusal of its own state names it
        named_in(exc, path, "not a KLCtrlAdapter state", "state must", owner)
        assert adapter.state_dict() == before
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
            f.write(json.dumps(with_value(state, path, value)))

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
            callback.load_state_dict(with_value(state, path, value))
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
    """Item 12 as a property: whatever loads has the budget its initial entropy derives."""
    name, path = node
    controller = advanced_budget(name)
    before = controller.state_dict()
    try:
        controller.load_state_dict(with_value(before, path, value))
    except Exception as exc:
        named_in(exc, path, "state must", "state_dict is for")
        assert controller.state_dict() == before
        return
    c = controller.state.controller
    if controller.budget is None and c.step > 0:
        assert c.initial_entropy is not None
        assert c.budget == max(controller.budget_ratio * c.initial_entropy, controller.min_budget)
    decision = controller.update(kl=0.2, entropy=1.5, n_steps=8)
    assert math.isfinite(decision.coef) and decision.max_preview_kl > 0


# ---------------------------------------------------------------- registry.register
PROBE = "hostile-probe"
REGISTER_NORMAL: dict[str, Any] = {
    "name": PROBE,
    "factory": FixedKL,
    "summary": "A probe of the hostile suite.",
    "defaults": {"coef": 0.1},
}
REGISTER_CASES = ("name", "factory", "made", "summary", "settings", "defaults", "coef")


@EXAMPLES
@given(st.sampled_from(REGISTER_CASES), hostile_values())
def test_register_accepts_only_a_factory_of_controllers_refusing_anything_else_at_once(case, value):
    """Item 17: ``register("mine", lambda: 1, "x")`` was accepted and failed only when used."""
    kwargs = dict(REGISTER_NORMAL)
    if case == "made":  # a factory whose product is the value
        kwargs["factory"], kwargs["defaults"] = (lambda: value), None
    elif case == "coef":  # a default setting the factory refuses
        kwargs["defaults"] = {"coef": value}
    elif case == "settings":
        kwargs["settings"], kwargs["defaults"] = value, None
    else:
        kwargs[case] = value
    try:
        registration = registry.register(**kwargs)
    except Exception as exc:
        named = {"made": PROBE, "coef": "coef"}.get(case, case)
        rejected_naming(exc, named, PROBE)
        assert PROBE not in registry.names() or case == "name"
        return
    try:
        assert isinstance(registration.make(), Controller)
    finally:
        registry.unregister(registration.name)


def _refused_factory(coef: float = -1.0) -> FixedKL:
    """A factory whose default settings its controller refuses.

    Args:
        coef: β, here negative.
    """
    return FixedKL(coef)


def test_register_refuses_a_factory_of_no_controller_naming_it():
    with pytest.raises(ValueError, match=r"mine: the factory must make a safecontrol.contract"):
        registry.register("mine", lambda: 1, "x")
    with pytest.raises(ValueError, match=r"mine: the factory fails with its default .*coef must"):
        registry.register("mine", _refused_factory, "x")
    assert "mine" not in registry.names()
