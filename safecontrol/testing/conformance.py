"""``check_controller``: the conformance suite every KL controller passes (ours and yours).

    from safecontrol.testing import check_controller
    check_controller(lambda: MyController(target=0.2))

It drives fresh controllers from ``factory`` through a deterministic stream of batch statistics
and raises ``AssertionError`` naming the first property that fails:

1. the contract: ``safecontrol.contract.Controller`` and ``Decision``, ``kl_unit`` declared;
2. decisions finite: ``coef``, ``loss_at``, ``slope_at``, ``step_scale`` and every number of
   ``as_dict`` before and after every update;
3. bad input rejected: a ``ValueError`` or ``TypeError`` for every kind of bad value of every
   argument of ``update``, and ``state_dict()`` unchanged by it;
4. state round trip: ``state_dict()`` after any prefix of the stream is strict JSON, and a fresh
   controller loaded from it continues bit-identically (equal ``as_dict`` at every later step);
5. reset: after ``reset()`` the decision and state equal a fresh controller's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..contract import KL_UNITS, Controller, Decision

STREAM_STEPS = 64
"""Updates per stream: past SAFE's 50-step phase window, so every part has moved."""
PREFIX_FRACTIONS = (0.0, 0.02, 0.15, 0.5, 0.8, 1.0)
"""Where the round trip is checked, as fractions of the stream (every prefix would cost
len(stream)² updates); with the default stream: after 0, 1, 9, 32, 51 and 64 updates."""

BAD_VALUES: dict[str, tuple[Any, ...]] = {
    "kl": (None, "0.1", b"0.1", True, [0.1], {"kl": 0.1}, np.array([0.1, 0.2]), 1j),
    "entropy": ("3.0", True, [3.0], -1.0, np.array([3.0, 3.0]), 1j),
    "reward": ("0.5", False, [0.5], np.array([0.5, 0.5]), 1j),
    "n_steps": (0, -3, 2.5, "16", True, [16]),
    "tokens_per_sequence": (0.0, -4.0, math.nan, math.inf, "12", True, [12.0]),
}
"""Values no controller may accept, whatever its ``on_nonfinite`` policy."""


def measurements(steps: int = STREAM_STEPS, seed: int = 0) -> Iterator[dict[str, Any]]:
    """A plausible RLHF stream: KL rising then settling, entropy falling, reward climbing."""
    rng = np.random.default_rng(seed)
    for t in range(steps):
        yield {
            "kl": float(0.02 + 0.8 * (1 - math.exp(-t / 15)) + 0.05 * rng.standard_normal() ** 2),
            "entropy": float(4.5 - 2.0 * t / steps + 0.1 * rng.random()),
            "reward": float(0.1 + 0.8 * t / steps + 0.05 * rng.standard_normal()),
            "n_steps": 16,
            "tokens_per_sequence": float(8 + rng.integers(0, 8)),
        }


def check_controller(
    factory: Callable[[], Controller], stream: Sequence[Mapping[str, Any]] | None = None
) -> None:
    """Run the conformance suite on controllers built by ``factory`` (see the module doc).

    ``stream``: the batch statistics to drive them with (dicts of ``update``'s keyword
    arguments, at least 6); default ``measurements()``. Property tests draw their own."""
    batches = [dict(batch) for batch in (measurements() if stream is None else stream)]
    if len(batches) < 6:
        raise ValueError(f"stream must hold at least 6 batches, got {len(batches)}")
    _check_contract(factory())
    _check_decisions_finite(factory(), batches)
    _check_bad_input(factory(), batches)
    _check_round_trip(factory, batches)
    _check_reset(factory, batches)


def _check_contract(controller: Any) -> None:
    name = type(controller).__name__
    assert isinstance(controller, Controller), (
        f"{name} lacks part of safecontrol.contract.Controller (decision, update, state_dict, "
        "load_state_dict, reset, kl_unit)"
    )
    assert getattr(controller, "kl_unit", None) in KL_UNITS, (
        f"{name}.kl_unit must be one of {KL_UNITS}, got {getattr(controller, 'kl_unit', None)!r}"
    )
    assert isinstance(controller.decision, Decision), (
        f"{name}.decision lacks part of safecontrol.contract.Decision"
    )


def _assert_finite(decision: Any, where: str) -> None:
    assert isinstance(decision, Decision), f"{where}: the decision lacks part of the contract"
    probes = {
        "coef": decision.coef,
        "loss_at(0.5)": decision.loss_at(0.5),
        "slope_at(0.5)": decision.slope_at(0.5),
        "step_scale(0.3)": decision.step_scale(0.3),
        "step_scale(50.0)": decision.step_scale(50.0),
    }
    for key, value in {**probes, **decision.as_dict()}.items():
        if isinstance(value, bool | str) or (key == "max_preview_kl" and value == math.inf):
            continue  # inf: the contract's "never limits a step"
        values = value if isinstance(value, tuple | list) else (value,)
        for v in values:
            assert isinstance(v, int | float) and math.isfinite(v), (
                f"{where}: decision {key} = {value!r} is not a finite number"
            )
    assert 0.0 < decision.step_scale(50.0) <= 1.0, f"{where}: step_scale outside (0, 1]"
    assert decision.max_preview_kl > 0, f"{where}: max_preview_kl must be > 0"


def _check_decisions_finite(controller: Any, stream: list[dict[str, Any]]) -> None:
    _assert_finite(controller.decision, "before any update")
    for t, batch in enumerate(stream, 1):
        decision = controller.update(**batch)
        _assert_finite(decision, f"update {t}")
        assert decision.as_dict() == controller.decision.as_dict(), (
            f"update {t}: the returned decision differs from controller.decision"
        )


def _strict_json(controller: Any, where: str) -> str:
    try:
        return json.dumps(controller.state_dict(), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{where}: state_dict() is not strict JSON ({exc})") from exc


def _check_bad_input(controller: Any, stream: list[dict[str, Any]]) -> None:
    name = type(controller).__name__
    for batch in stream[:5]:
        controller.update(**batch)
    before = _strict_json(controller, "bad input")
    good = stream[5]
    for argument, values in BAD_VALUES.items():
        for value in values:
            try:
                controller.update(**{**good, argument: value})
            except (ValueError, TypeError):
                pass
            else:
                raise AssertionError(f"{name}.update accepted {argument}={value!r}")
            assert _strict_json(controller, "bad input") == before, (
                f"{name}.update({argument}={value!r}) was refused but changed the state"
            )


def _check_round_trip(factory: Callable[[], Controller], stream: list[dict[str, Any]]) -> None:
    """Restored after k updates, a fresh controller continues exactly as the uninterrupted one."""
    original = factory()
    name = type(original).__name__
    prefixes = {round(f * len(stream)) for f in PREFIX_FRACTIONS}
    expected = [original.decision.as_dict()]
    saved: dict[int, Any] = {0: json.loads(_strict_json(original, "before any update"))}
    for t, batch in enumerate(stream, 1):
        expected.append(original.update(**batch).as_dict())
        if t in prefixes:
            saved[t] = json.loads(_strict_json(original, f"after {t} updates"))
    for k, state in saved.items():
        restored = factory()
        restored.load_state_dict(state)
        assert restored.decision.as_dict() == expected[k], (
            f"{name}: the decision restored after {k} updates differs from the saved one"
        )
        for t in range(k + 1, len(stream) + 1):
            assert restored.update(**stream[t - 1]).as_dict() == expected[t], (
                f"{name}: restored after {k} updates, update {t} differs from the "
                "uninterrupted controller's"
            )


def _check_reset(factory: Callable[[], Controller], stream: list[dict[str, Any]]) -> None:
    fresh, used = factory(), factory()
    name = type(fresh).__name__
    for batch in stream:
        used.update(**batch)
    used.reset()
    assert used.decision.as_dict() == fresh.decision.as_dict(), (
        f"{name}: after reset() the decision differs from a fresh controller's"
    )
    assert _strict_json(used, "after reset") == _strict_json(fresh, "fresh"), (
        f"{name}: after reset() the state differs from a fresh controller's"
    )
