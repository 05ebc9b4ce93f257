"""SafeConfig: every setting's type is checked by name, and stored as plain Python (issue 10)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from safecontrol.safe import SafeConfig, SafeController


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("penalty_coef", "0.1"),
        ("penalty_coef", b"0.1"),
        ("kp", None),
        ("use_gate", "false"),
        ("use_gate", 0),
        ("use_pid", np.bool_(True)),
        ("use_phase", "no"),
        ("phase_window", 5.0),
        ("phase_window", True),
        ("phase_window", "5"),
        ("kl_estimator", b"k1"),
        ("threshold_limits", "ab"),
        ("threshold_limits", (0.1, math.inf)),
        ("derivative_filter", "2"),
        ("velocity_target", np.array([0.001])),
    ],
)
def test_safe_config_rejects_wrong_types_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SafeConfig(**{field: value})


def test_safe_config_stores_plain_python_values():
    config = SafeConfig(
        phase_window=np.int64(5),
        penalty_coef=np.float32(0.25),
        kp=1,
        threshold_limits=[np.float64(0.1), 1],
        derivative_filter=np.int32(3),
    )
    assert type(config.phase_window) is int and config.phase_window == 5
    assert type(config.penalty_coef) is float and config.penalty_coef == 0.25
    assert type(config.kp) is float
    assert config.threshold_limits == (0.1, 1.0) and type(config.threshold_limits[1]) is float
    assert type(config.derivative_filter) is float
    controller = SafeController(config)
    controller.update(kl=0.2, entropy=1.0, reward=0.1)
    json.dumps(controller.state_dict(), allow_nan=False)  # the first checkpoint works
