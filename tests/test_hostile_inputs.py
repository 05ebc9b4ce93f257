"""Hostile inputs: every public core controller, every update, constructor and
``load_state_dict`` argument, values of every kind (``safecontrol.testing.strategies``'s
``hostile_values``: NaN, ±inf, ±1.8e308, ints too large for a float, negatives, strings, bytes,
None, bools, np.bool_, arrays of shape (1,) and (), lists, dicts, complex).

Each property: the call either accepts the value or raises ValueError/TypeError naming the
argument; a rejected call leaves ``state_dict()`` unchanged; state dicts are always strict JSON;
and no later normal update returns a non-finite decision (after an accepted extreme value it may
itself be rejected, again changing nothing; after a rejected one it must succeed).

``registry.register`` is probed here too; the states added since (``KLCtrlAdapter``, the verl
state file, the TRL callback's state, ``BudgetKL``'s) are probed at every node in
``test_hostile_states``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from collections.abc import Callable
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
    """``register("mine", lambda: 1, "x")`` was accepted and failed only when used."""
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
