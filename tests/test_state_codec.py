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
from safecontrol import EMA, Phase, SafeConfig, SafeController, registry
from safecontrol._state import decode, encode
from safecontrol.filters import DualEMAState, EMAState
from safecontrol.pid import PIDState
from safecontrol.safe import SafeState
from safecontrol.testing.conformance import measurements
from safecontrol.threshold import ThresholdState

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


# ---------------------------------------------------------------- the codec
@pytest.mark.parametrize("version", [0, 2, "1", None, 1.0])
def test_a_format_version_other_than_1_is_refused_saying_how_to_migrate(version):
    fixture = load_fixture("safe")
    controller = build(fixture["make"])
    before = controller.state_dict()
    with pytest.raises(ValueError, match=r"reads format_version 1 only.*migrate"):
        controller.load_state_dict({**fixture["state_dict"], "format_version": version})
    assert controller.state_dict() == before


def test_a_composites_state_is_one_record_of_its_parts_records():
    controller = SafeController(SafeConfig(phase_window=3))
    for batch in measurements(8):
        controller.update(**batch)
    state = controller.state
    assert isinstance(state, SafeState)
    assert isinstance(state.kl_tracker, DualEMAState)
    assert isinstance(state.kl_tracker.short, EMAState)
    assert isinstance(state.threshold, ThresholdState)
    assert isinstance(state.threshold.pid, PIDState)
    assert encode(state) == controller.state_dict()["state"]
    assert decode(SafeState, encode(state), "SafeController") == state


def test_an_update_replaces_the_record_and_a_rejected_one_keeps_it():
    controller = SafeController()
    fresh = controller.state
    controller.update(kl=0.2, entropy=3.0, reward=0.1)
    assert controller.state is not fresh and fresh == SafeController().state
    before = controller.state
    with pytest.raises(ValueError):
        controller.update(kl=0.2, entropy=3.0, reward=float("nan"))
    assert controller.state is before


def test_a_renamed_field_keeps_its_key_in_the_state_dict():
    ema = EMA(0.9)
    ema.update(1.0)
    assert ema.state == EMAState(moment=pytest.approx(0.1), seen=1)
    assert ema.state_dict()["state"] == {"moment": ema.state.moment, "count": 1}


def test_a_rejected_composite_update_leaves_no_trace_in_the_phase_detectors_memo():
    """The phase detector's window-mean memo is derived (valid for the record it was built
    with), so an update that SAFE rejects after the detector's step changes no later result."""
    config = SafeConfig(phase_window=3, kp=1e308)
    rejected, clean = SafeController(config), SafeController(config)
    stream = list(measurements(30))
    for t, batch in enumerate(stream):
        if t == 12:
            with pytest.raises(ValueError, match="overflows the threshold PID"):
                rejected.update(**{**batch, "reward": 1e3})
        assert rejected.update(**batch).as_dict() == clean.update(**batch).as_dict()
    assert rejected.state_dict() == clean.state_dict()


def test_a_parts_view_is_a_copy_at_the_current_state():
    controller = SafeController(SafeConfig(phase_window=3))
    for batch in measurements(10):
        decision = controller.update(**batch)
    assert controller.phase_detector.phase.value == decision.phase
    assert controller.kl_tracker.short == decision.kl_short
    assert controller.threshold.threshold == decision.threshold
    view = controller.phase_detector
    view.update(5.0)
    assert controller.state.phase_detector != view.state
