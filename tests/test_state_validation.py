"""Every state field of every controller is validated on load (issue 10, item 5): a corrupt value
is rejected with a ValueError naming the field, and a rejected load changes nothing.

``CONTROLLERS`` (every stateful public controller, each with a normal update) is shared with the
hostile-input suite.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import json_roundtrip

from safecontrol import (
    EMA,
    PID,
    AdaptiveKL,
    AdaptiveThreshold,
    DualEMA,
    EntropyTargetController,
    FixedKL,
    PhaseDetector,
    PIDLagrangianKL,
    PPOAdaptiveKL,
    RewardVelocity,
    SafeConfig,
    SafeController,
)


def _values(result: Any) -> tuple[float, ...]:
    """The numbers a normal update returned (a decision's numeric fields, or a float)."""
    if hasattr(result, "as_dict"):
        return tuple(
            float(v)
            for v in result.as_dict().values()
            if isinstance(v, int | float) and not isinstance(v, bool)
        )
    return (float(result),)


def _coef_update(c: Any, t: int = 0) -> tuple[float, ...]:
    return _values(
        c.update(
            kl=0.1 + 0.01 * (t % 5), entropy=1.0 + 0.1 * (t % 3), n_steps=8, tokens_per_sequence=1.0
        )
    )


def _safe_update(c: SafeController, t: int = 0) -> tuple[float, ...]:
    return _values(c.update(kl=0.3 + 0.05 * (t % 4), entropy=1.5, reward=0.5 + 0.01 * t))


def _dual_update(c: DualEMA, t: int = 0) -> tuple[float, ...]:
    c.update(0.3 + 0.1 * (t % 3))
    return (c.short, c.long, c.slope)


def _phase_update(c: PhaseDetector, t: int = 0) -> tuple[float, ...]:
    c.update(0.3 + 0.02 * t)
    return (c.multiplier,)


def _scalar_update(method: str, *extra: float) -> Callable[[Any, int], tuple[float, ...]]:
    def update(c: Any, t: int = 0) -> tuple[float, ...]:
        return _values(getattr(c, method)(0.3 + 0.01 * t * (-1) ** t, *extra))

    return update


CONTROLLERS: dict[str, tuple[Callable[[], Any], Callable[[Any, int], tuple[float, ...]]]] = {
    "FixedKL": (lambda: FixedKL(0.1), _coef_update),
    "AdaptiveKL": (lambda: AdaptiveKL(), _coef_update),
    "PPOAdaptiveKL": (lambda: PPOAdaptiveKL(), _coef_update),
    "PIDLagrangianKL": (lambda: PIDLagrangianKL(), _coef_update),
    "EntropyTargetController": (lambda: EntropyTargetController(target=1.1), _coef_update),
    "SafeController": (lambda: SafeController(SafeConfig(phase_window=4)), _safe_update),
    "SafeController-predictive": (
        lambda: SafeController(
            SafeConfig(phase_window=3, prediction_horizon=5.0, velocity_mode="holt")
        ),
        _safe_update,
    ),
    "PID": (lambda: PID(0.5, 0.1, 0.05, output_limits=(-1.0, 1.0)), _scalar_update("update")),
    "PID-back-calculation": (
        lambda: PID(2.0, 0.5, 0.1, output_limits=(0.0, 0.5), anti_windup="back_calculation"),
        _scalar_update("update"),
    ),
    "EMA": (lambda: EMA(0.9), _scalar_update("update")),
    "DualEMA": (lambda: DualEMA(), _dual_update),
    "RewardVelocity": (lambda: RewardVelocity(), _scalar_update("update")),
    "RewardVelocity-scale-invariant": (
        lambda: RewardVelocity("scale_invariant"),
        _scalar_update("update"),
    ),
    "RewardVelocity-holt": (lambda: RewardVelocity("holt"), _scalar_update("update")),
    "PhaseDetector": (lambda: PhaseDetector(window=3), _phase_update),
    "AdaptiveThreshold": (lambda: AdaptiveThreshold(), _scalar_update("update", 1.2)),
}


def advanced(name: str, steps: int = 9) -> Any:
    """A controller of ``CONTROLLERS[name]`` after ``steps`` normal updates."""
    make, update = CONTROLLERS[name]
    controller = make()
    for t in range(steps):
        update(controller, t)
    return controller


def leaves(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, value) of every scalar in a nested dict/list."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from leaves(value, (*path, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from leaves(value, (*path, i))
    else:
        yield path, obj


def replaced(state_dict: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(state_dict)
    node = out["state"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def field_name(path: tuple[Any, ...]) -> str:
    """The name a rejection must mention: the innermost dict key on the path."""
    return next(str(k) for k in reversed(path) if isinstance(k, str))


def must_reject(value: Any) -> list[Any]:
    """Replacements that no field holding ``value`` may accept."""
    if type(value) is bool:
        return [1, "true", None, math.nan]
    if type(value) is int:
        return [-1, 1.5, "1", True, None, math.nan, [value]]
    if type(value) is float:
        return [math.nan, math.inf, -math.inf, "0.5", True, [value], {}]
    if type(value) is str:
        return [1.0, None, "bogus", True]
    assert value is None
    return [math.nan, math.inf, "x", True, {}]


def expect_rejected(controller: Any, corrupt: dict[str, Any], name: str | None) -> None:
    before = controller.state_dict()
    with pytest.raises(ValueError, match=name):
        controller.load_state_dict(corrupt)
    assert controller.state_dict() == before


# ---------------------------------------------------------------- the reproducers
def test_fixed_kl_rejects_nan_coef_on_load():
    controller = FixedKL(0.1)
    saved = controller.state_dict()
    saved["state"]["coef"] = math.nan
    expect_rejected(controller, saved, "coef")
    assert controller.update(kl=0.1).coef == 0.1


def test_ema_rejects_negative_count_on_load():
    ema = EMA(0.9)
    saved = ema.state_dict()
    saved["state"]["count"] = -1
    expect_rejected(ema, saved, "count")
    assert ema.update(1.0) == 1.0


# ---------------------------------------------------------------- every field of every controller
@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_every_state_field_rejects_wrong_kinds_naming_the_field(name):
    controller = advanced(name)
    saved = controller.state_dict()
    paths = list(leaves(saved["state"]))
    assert paths
    for path, value in paths:
        for bad in must_reject(value):
            expect_rejected(controller, replaced(saved, path, bad), field_name(path))
    # After all those rejected loads, the controller still works and its state is strict JSON.
    values = CONTROLLERS[name][1](controller, 0)
    assert all(math.isfinite(v) for v in values)
    json.dumps(controller.state_dict(), allow_nan=False)


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_malformed_state_structure_is_rejected_and_changes_nothing(name):
    controller = advanced(name)
    saved = controller.state_dict()
    broken = [None, "state", [], 1.0, {}, {**saved["state"], "extra": 1.0}]
    first_key = next(iter(saved["state"]))
    broken.append({k: v for k, v in saved["state"].items() if k != first_key})
    for state in broken:
        expect_rejected(controller, {**saved, "state": state}, "state")


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_valid_state_round_trips_after_validation(name):
    controller = advanced(name)
    resumed = CONTROLLERS[name][0]()
    resumed.load_state_dict(json_roundtrip(controller.state_dict()))
    assert resumed.state_dict() == controller.state_dict()
    update = CONTROLLERS[name][1]
    assert update(resumed, 3) == update(controller, 3)


@pytest.mark.parametrize(
    ("name", "path", "value", "field"),
    [
        ("FixedKL", ("coef",), 0.2, "coef"),  # β of a FixedKL never changes
        ("EntropyTargetController", ("coef",), 0.5, "coef"),  # above max_coef
        ("PIDLagrangianKL", ("controller", "integral"), -1.0, "integral"),
        ("PIDLagrangianKL", ("controller", "coef"), 3.0, "coef"),  # not Kp·P + Ki·I + Kd·D
        ("PIDLagrangianKL", ("kl_ema", "count"), 2, "count"),  # filters out of step
        ("PID", ("integral",), 5.0, "integral"),  # outside the output limits
        ("PID", ("lower",), 2.0, "lower"),  # above upper
        ("EMA", ("count",), 0, "moment"),  # a moment without inputs
        ("DualEMA", ("long", "count"), 3, "count"),
        ("RewardVelocity-scale-invariant", ("variance",), -1.0, "variance"),
        ("PhaseDetector", ("history",), [0.1], "history"),  # count says more
        ("PhaseDetector", ("m2",), -0.5, "m2"),
        ("PhaseDetector", ("minimum",), 99.0, "minimum"),
        ("PhaseDetector", ("phase",), "sideways", "phase"),
        ("AdaptiveThreshold", ("threshold",), 0.9, "threshold"),  # above the limit 0.6
        ("AdaptiveThreshold", ("pid", "integral"), 9.0, "integral"),
        ("SafeController", ("controller", "step"), 0, "last_decision"),
        ("SafeController", ("controller", "last_decision", "step"), 1, "step"),
        ("SafeController", ("controller", "last_decision", "threshold"), 0.05, "threshold"),
        ("SafeController", ("controller", "last_decision", "coef"), -1.0, "coef"),
        ("SafeController", ("controller", "last_decision", "phase"), "sideways", "phase"),
        ("SafeController", ("controller", "last_decision", "penalty_coef"), 0.5, "penalty_coef"),
        ("SafeController", ("controller", "last_decision", "active"), "yes", "active"),
        ("SafeController", ("controller", "last_decision", "pid_p"), math.inf, "pid_p"),
        ("SafeController", ("kl_tracker", "short", "count"), -3, "count"),
        ("SafeController", ("phase_detector", "history", 0), "0.5", "history"),
    ],
)
def test_range_and_consistency_rules_on_load(name, path, value, field):
    controller = advanced(name)
    expect_rejected(controller, replaced(controller.state_dict(), path, value), field)
