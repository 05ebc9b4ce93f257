"""KLCtrlAdapter against OpenRLHF's own KL controllers (openrlhf 0.11.2, the real package).

OpenRLHF's trainer needs flash-attn and deepspeed to import (no CPU build here), and its
``openrlhf.trainer.ppo_utils`` package imports its experience code on the way; the controller
module itself imports only numpy. The test loads that file from the installed package, so the
rule compared is OpenRLHF's code, not a copy.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from safecontrol.integrations.kl_ctrl import KLCtrlAdapter


def openrlhf_kl_controller() -> ModuleType:
    spec = importlib.util.find_spec("openrlhf")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("openrlhf is not installed (pip install --no-deps openrlhf==0.11.2)")
    path = Path(spec.submodule_search_locations[0]) / "trainer" / "ppo_utils" / "kl_controller.py"
    module_spec = importlib.util.spec_from_file_location("openrlhf_kl_controller", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def kl_stream(n: int = 80) -> list[float]:
    rng = np.random.default_rng(0)
    return [float(x) for x in np.abs(rng.normal(0.1, 0.08, n))]


def test_adaptive_kl_is_openrlhfs_adaptive_controller_bit_for_bit():
    theirs = openrlhf_kl_controller().AdaptiveKLController(0.05, 0.1, 10000)
    ours = KLCtrlAdapter(
        "adaptive-kl",
        {"init_coef": 0.05, "target": 0.1, "horizon": 10000},
        tokens_per_sequence=1.0,  # OpenRLHF compares its target with the per-token KL
    )
    values = []
    for current in kl_stream():
        theirs.update(current, 1024)
        ours.update(current, 1024)
        assert ours.value == float(theirs.value)
        values.append(ours.value)
    assert len(set(values)) == len(values)  # β moved on every batch


def test_fixed_kl_is_openrlhfs_fixed_controller_and_survives_a_json_round_trip():
    theirs = openrlhf_kl_controller().FixedKLController(0.02)
    ours = KLCtrlAdapter("fixed-kl", {"coef": 0.02})
    for current in kl_stream(5):
        theirs.update(current, 256)
        ours.update(current, 256)
    restored = KLCtrlAdapter("fixed-kl", {"coef": 0.02})
    restored.load_state_dict(json.loads(json.dumps(ours.state_dict())))
    assert restored.value == ours.value == theirs.value
