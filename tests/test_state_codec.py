"""Checkpoints written by the release before the state codec (format version 1) still load.

Each ``fixtures/state_v1/<name>.json`` holds a controller's ``state_dict()`` after 60 updates (the
conformance stream, or the part's own inputs), saved by that release, with the next 10 calls and
what they returned. A fresh controller loaded from it must return exactly the same, and re-encode
to exactly the same JSON (keys, nesting, order and values).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import safecontrol
from safecontrol import Phase, registry

FIXTURES = Path(__file__).parent / "fixtures" / "state_v1"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))


def build(make: dict[str, Any]) -> Any:
    """The controller a fixture's ``make`` names: a registry name and settings, or a class of
    ``safecontrol`` and its keyword arguments."""
    if "registry" in make:
        return registry.make(make["registry"], **make["settings"])
    return getattr(safecontrol, make["class"])(**make["kwargs"])


def call(controller: Any, op: dict[str, Any]) -> Any:
    """Apply one recorded call; returns what the controller reports after it (plain JSON)."""
    result = getattr(controller, op["call"])(*op.get("args", ()), **op.get("kwargs", {}))
    return observe(controller, result)


def observe(controller: Any, result: Any) -> Any:
    if hasattr(result, "as_dict"):
        out = result.as_dict()
    elif isinstance(result, Phase):
        out = [result.value, controller.multiplier]
    elif result is None and hasattr(controller, "slope"):  # DualEMA
        out = [controller.short, controller.long, controller.trend, controller.slope]
    elif hasattr(controller, "components"):  # PID, AdaptiveThreshold
        out = [result, *controller.components]
    else:
        out = result
    return json.loads(json.dumps(out, allow_nan=False))


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def test_there_is_a_fixture_for_every_registered_controller():
    assert len(NAMES) >= 20
    made = {load_fixture(n)["make"].get("registry") for n in NAMES}
    assert set(registry.names()) <= made


@pytest.mark.parametrize("name", NAMES)
def test_v1_checkpoint_continues_with_the_recorded_outputs(name):
    fixture = load_fixture(name)
    controller = build(fixture["make"])
    controller.load_state_dict(fixture["state_dict"])
    for i, op in enumerate(fixture["next"]):
        assert call(controller, op) == op["output"], f"{name}: call {i} after the load"


@pytest.mark.parametrize("name", NAMES)
def test_v1_checkpoint_reencodes_to_the_identical_json(name):
    fixture = load_fixture(name)
    controller = build(fixture["make"])
    controller.load_state_dict(fixture["state_dict"])
    assert json.dumps(controller.state_dict()) == json.dumps(fixture["state_dict"])
