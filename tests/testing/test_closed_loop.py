"""Closed-loop tests: controllers on the surrogate plant's pathological settings.

SAFE runs with its published defaults (``SafeController()``); the plant is not tuned for it. In
every setting where a small fixed β lets KL run away or entropy collapse, SAFE must keep KL
bounded and entropy above a floor. Observed ranges over seeds 0–9 are in the comments.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from safecontrol import (
    AdaptiveKL,
    EntropyTargetController,
    FixedKL,
    PIDLagrangianKL,
    PPOAdaptiveKL,
    SafeConfig,
    SafeController,
    registry,
)
from safecontrol.testing import PATHOLOGIES, run, summarize_trajectory
from safecontrol.testing import strategies as sst

SEEDS = (0, 1, 2)


def on(setting: str, controller, seed: int, **changes):
    return run(controller, PATHOLOGIES[setting].config.replace(seed=seed, **changes))


@pytest.mark.parametrize("seed", SEEDS)
def test_kl_runaway_setting_safe_bounds_kl_where_fixed_beta_does_not(seed):
    fixed = summarize_trajectory(PATHOLOGIES["kl_runaway"].run(seed))
    safe = summarize_trajectory(on("kl_runaway", SafeController(), seed))
    assert fixed.kl_max > 3.3 and fixed.entropy_min < 0.05
    assert safe.kl_max < 2.2  # observed 1.83-1.97
    assert safe.kl_final < 2.0  # observed 1.62-1.78: it settles, it does not creep up
    assert safe.entropy_min > 1.2  # observed 1.47-1.56 (initial ~3.0)
    assert safe.crashes == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_collapse_setting_safe_keeps_entropy_above_a_floor(seed):
    fixed = summarize_trajectory(PATHOLOGIES["entropy_collapse"].run(seed))
    safe = summarize_trajectory(on("entropy_collapse", SafeController(), seed))
    assert fixed.entropy_collapse_steps > 200
    assert safe.entropy_min > 1.4  # observed 1.57-1.73
    assert safe.entropy_collapse_steps == 0
    assert safe.kl_max < 1.6  # observed 1.29-1.35, against ~3.0 for β = 0.01
    assert safe.reward_final > 0.6  # observed 0.66-0.72: it still learns the honest task


@pytest.mark.parametrize("seed", SEEDS)
def test_reward_hacking_setting_safe_limits_kl_and_the_exploit(seed):
    free = PATHOLOGIES["reward_hacking"].run(seed)
    trajectory = on("reward_hacking", SafeController(), seed)
    safe = summarize_trajectory(trajectory)
    assert safe.kl_max < 1.7  # observed 1.51-1.52, against 3.5-3.8 without penalty
    assert safe.entropy_min > 1.8  # observed 1.93-1.99, against 0.06-0.11
    assert trajectory.spike_fraction[-10:].mean() < 0.65  # observed 0.49-0.57
    assert free.spike_fraction[-10:].mean() > trajectory.spike_fraction[-10:].mean() + 0.2


@pytest.mark.parametrize("seed", SEEDS)
def test_late_crash_setting_safe_does_not_crash(seed):
    fixed = summarize_trajectory(PATHOLOGIES["late_crash"].run(seed))
    safe = summarize_trajectory(on("late_crash", SafeController(), seed))
    assert fixed.crashes >= 1
    assert safe.crashes == 0
    assert safe.reward_final > 0.45  # observed 0.53-0.63, against 0.05-0.08 for β = 0.05
    assert safe.reward_mean > 2.0 * fixed.reward_mean


def test_safe_penalty_is_what_bounds_kl():
    # With c = 0 (no penalty) the rest of SAFE (gate, threshold, preview scaling) remains, and
    # KL runs away exactly as without a controller.
    trajectory = on("kl_runaway", SafeController(SafeConfig(penalty_coef=0.0)), 0)
    assert summarize_trajectory(trajectory).kl_max > 3.0


def test_safe_decisions_stay_in_their_published_ranges_in_closed_loop():
    trajectory = on("kl_runaway", SafeController(), 0)
    assert np.all((trajectory.threshold >= 0.1) & (trajectory.threshold <= 0.6))
    assert np.all(trajectory.gate >= 0.5)
    assert np.all(trajectory.coef >= 0.0) and trajectory.coef.max() > 0.1
    assert np.all((trajectory.step_scale > 0.0) & (trajectory.step_scale <= 1.0))
    # The gate is the published g = max(0.5, 2 / (H + 0.1)) of the measured entropy.
    expected = np.maximum(0.5, 2.0 / (trajectory.entropy + 0.1))
    np.testing.assert_allclose(trajectory.gate, expected, rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_adaptive_kl_raises_beta_and_holds_kl_at_a_moderate_level(seed):
    trajectory = on("reward_hacking", AdaptiveKL(init_coef=0.2, target=0.3), seed)
    m = summarize_trajectory(trajectory)
    assert trajectory.coef[-1] > trajectory.coef[0]  # KL above target: β grows
    assert m.kl_max < 2.0 and m.entropy_min > 1.5  # observed 1.35-1.57 and 1.9-2.1


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_pid_lagrangian_holds_kl_near_its_target(seed):
    trajectory = on("reward_hacking", PIDLagrangianKL(target=0.3), seed)
    late = trajectory.kl[-100:].mean()
    assert 0.2 < late < 0.45  # observed ~0.3
    assert summarize_trajectory(trajectory).kl_max < 1.0


def test_ppo_adaptive_beta_doubles_and_halves_around_its_target():
    trajectory = on("reward_hacking", PPOAdaptiveKL(init_coef=0.2, target=0.3), 0)
    ratios = trajectory.coef[1:] / trajectory.coef[:-1]
    assert set(np.round(ratios, 9)) <= {0.5, 1.0, 2.0}
    assert (ratios == 2.0).any() and (ratios == 0.5).any()
    assert trajectory.kl.mean() < 0.6


def test_entropy_target_controller_prevents_the_collapse():
    bonus = EntropyTargetController(target=1.5, delta=0.01, max_coef=0.5)
    trajectory = on("entropy_collapse", FixedKL(0.01), 0)
    helped = run(FixedKL(0.01), PATHOLOGIES["entropy_collapse"].config, entropy_controller=bonus)
    assert trajectory.entropy.min() < 0.1
    assert helped.entropy.min() > 1.0  # observed 1.15-1.33
    assert abs(helped.entropy[-50:].mean() - 1.5) < 0.2


@settings(max_examples=25)
@given(sst.plant_configs(max_steps=25))
def test_any_registered_controller_on_any_small_plant_gives_finite_logs(config):
    for controller in (None, *(registry.make(name) for name in registry.names())):
        trajectory = run(controller, config)
        for name, values in trajectory.as_dict().items():
            if name not in ("threshold", "gate"):
                assert np.all(np.isfinite(values)), name
        assert np.all(trajectory.kl >= -1e-9)
