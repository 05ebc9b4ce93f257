"""The hypothesis strategies draw what they promise, and ``safecontrol.testing`` does not import
hypothesis."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safecontrol import PID, PIDLagrangianKL, SafeConfig, SafeController
from safecontrol.testing import PlantConfig, run
from safecontrol.testing import strategies as sst


def test_importing_safecontrol_testing_does_not_import_hypothesis():
    code = "import sys, safecontrol.testing; print('hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@given(sst.measurement_streams(max_size=30))
def test_measurement_streams_are_accepted_by_safe_with_published_defaults(stream):
    controller = SafeController()
    for m in stream:
        assert set(m) == {"kl", "entropy", "reward"}
        assert -0.1 <= m["kl"] <= 10.0 and 0.0 <= m["entropy"] <= sst.MAX_ENTROPY
        assert -1.0 <= m["reward"] <= 1.0
        assert controller.update(**m).slope_at(max(m["kl"], 0.0)) >= 0.0


@pytest.mark.parametrize("estimator", ["k2", "k3"])
@given(data=st.data())
def test_non_k1_kl_values_are_never_negative(estimator, data):
    assert data.draw(sst.kl_values(estimator)) >= 0.0


def test_unknown_estimator_is_rejected():
    with pytest.raises(ValueError, match="estimator"):
        sst.kl_values("k4")


@given(sst.drifting_streams(min_size=2, max_size=40, relative_step=0.05))
def test_drifting_streams_move_by_at_most_the_relative_step(stream):
    assert len(stream) >= 2
    for before, after in itertools.pairwise(stream):
        assert abs(after["kl"] - before["kl"]) <= 0.05 * 5.1 + 1e-9
        assert abs(after["entropy"] - before["entropy"]) <= 0.05 * 6.0 + 1e-9
        assert abs(after["reward"] - before["reward"]) <= 0.05 * 2.0 + 1e-9


@given(sst.nonfinite())
def test_nonfinite_values_are_rejected_by_controllers(value):
    assert not math.isfinite(value)
    with pytest.raises(ValueError, match="kl"):
        SafeController().update(kl=value, entropy=1.0, reward=0.0)


@given(sst.limit_pairs())
def test_limit_pairs_are_ordered_and_accepted_by_pid(pair):
    lower, upper = pair
    if lower is not None and upper is not None:
        assert lower <= upper
    PID(1.0, 0.1, 0.0, output_limits=pair)


@given(sst.pid_gains(), sst.dts(), sst.decays())
def test_gains_dts_and_decays_are_valid(gains, dt, decay):
    assert all(g >= 0.0 for g in gains) and dt > 0.0 and 0.0 < decay < 1.0
    PID(*gains).update(1.0, dt=dt)


@settings(max_examples=50)
@given(sst.safe_configs(kl_estimator="k1"), sst.drifting_streams(max_size=20))
def test_safe_configs_are_valid_and_run(config, stream):
    assert isinstance(config, SafeConfig)
    lower, upper = config.threshold_limits
    controller = SafeController(config)
    for m in stream:
        decision = controller.update(**m)
        assert lower <= decision.threshold <= upper


@given(sst.safe_configs(penalty_coef=0.25))
def test_safe_configs_keyword_arguments_pin_fields(config):
    assert config.penalty_coef == 0.25


@settings(max_examples=20)
@given(sst.plant_configs(max_steps=10, lr=2.0))
def test_plant_configs_are_small_valid_and_pinnable(config):
    assert isinstance(config, PlantConfig) and config.lr == 2.0 and config.steps <= 10
    assert len(run(PIDLagrangianKL(), config)) == config.steps
