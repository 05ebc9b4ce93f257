"""SPEC §5's run metrics on synthetic series whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from safecontrol.testing import (
    RunMetrics,
    batch_noise_std,
    count_crashes,
    crash_margin,
    crash_onsets,
    entropy_collapse_steps,
    fraction_above,
    rolling_mean,
    summarize,
    summarize_trajectory,
    volatility,
)

finite_series = st.lists(st.floats(-10.0, 10.0), min_size=1, max_size=80)


@given(finite_series, st.integers(1, 20))
def test_rolling_mean_equals_the_mean_of_the_trailing_window(values, window):
    out = rolling_mean(values, window)
    for t in range(len(values)):
        expected = np.mean(values[max(0, t - window + 1) : t + 1])
        assert out[t] == pytest.approx(expected, abs=1e-9)


def test_volatility_is_the_std_of_step_changes():
    assert volatility([1.0, 2.0, 1.0, 2.0]) == pytest.approx(np.std([1.0, -1.0, 1.0]))
    assert volatility([3.0]) == 0.0
    assert volatility([0.5] * 10) == 0.0


def test_batch_noise_std_recovers_white_noise_and_ignores_a_single_jump():
    rng = np.random.default_rng(0)
    noise = 0.05 * rng.standard_normal(2000)
    assert batch_noise_std(noise) == pytest.approx(0.05, rel=0.1)
    jumped = noise + np.where(np.arange(2000) >= 1000, -1.0, 0.0)
    assert batch_noise_std(jumped) == pytest.approx(0.05, rel=0.1)


def test_crash_margin_is_the_larger_of_3_sigma_and_30_percent_of_the_range():
    rise = np.linspace(0.0, 1.0, 50)
    assert crash_margin(rise, reward_std=0.01) == pytest.approx(0.3)
    assert crash_margin(rise, reward_std=0.2) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="reward_std"):
        crash_margin(rise, reward_std=-1.0)


def test_a_rise_then_a_fall_is_one_crash_starting_where_the_margin_is_crossed():
    reward = np.concatenate([np.linspace(0.0, 1.0, 50), np.full(50, 0.1)])
    onsets = crash_onsets(reward, reward_std=0.0)
    assert len(onsets) == 1 and 50 <= onsets[0] <= 55
    assert count_crashes(reward, reward_std=0.0) == 1


def test_crashes_are_counted_once_each_and_end_on_recovery():
    up, down = np.full(30, 1.0), np.full(30, 0.0)
    reward = np.concatenate([up, down, up, down, up])
    assert count_crashes(reward, reward_std=0.0) == 2
    # A dip that recovers only to 60% of the margin below the peak does not end the crash.
    partial = np.concatenate([up, down, np.full(30, 0.6), down, up])
    assert count_crashes(partial, reward_std=0.0) == 1


def test_monotone_or_flat_rewards_never_crash():
    assert count_crashes(np.linspace(0.0, 1.0, 100)) == 0
    assert count_crashes(np.full(100, 0.3)) == 0
    rng = np.random.default_rng(1)
    assert count_crashes(0.5 + 0.02 * rng.standard_normal(300)) == 0


def test_entropy_collapse_counts_steps_below_10_percent_of_the_first():
    entropy = [3.0, 2.0, 0.31, 0.29, 0.0, 1.0]
    assert entropy_collapse_steps(entropy) == 2
    assert entropy_collapse_steps(entropy, fraction=0.5) == 4


def test_fraction_above_takes_a_scalar_or_a_per_step_limit():
    kl = [0.1, 0.5, 0.9, 0.2]
    assert fraction_above(kl, 0.3) == 0.5
    assert fraction_above(kl, [0.0, 0.6, 0.6, 0.1]) == 0.75


@pytest.mark.parametrize("bad", [[], [[1.0]], [1.0, math.nan], [math.inf]])
def test_series_must_be_finite_one_dimensional_and_non_empty(bad):
    with pytest.raises(ValueError, match="reward"):
        volatility(bad)


def test_summarize_reports_every_measure():
    reward = np.concatenate([np.linspace(0.0, 1.0, 50), np.full(50, 0.1)])
    kl = np.linspace(0.0, 2.0, 100)
    entropy = np.linspace(3.0, 0.0, 100)
    m = summarize(reward, kl, entropy, kl_limit=1.0)
    assert isinstance(m, RunMetrics)
    assert m.reward_mean == pytest.approx(reward.mean())
    assert m.reward_final == pytest.approx(0.1)
    assert m.crashes == 1 and m.first_crash is not None
    assert m.kl_max == 2.0 and m.kl_p95 == pytest.approx(np.percentile(kl, 95))
    assert m.kl_above == pytest.approx(0.5)
    assert m.entropy_initial == 3.0 and m.entropy_min == 0.0
    assert m.entropy_collapse_steps == 10
    assert set(m.as_dict()) >= {"crashes", "volatility", "kl_mean", "entropy_min"}
    assert summarize(reward, kl, entropy).kl_above is None
    with pytest.raises(ValueError, match="lengths differ"):
        summarize(reward, kl[:-1], entropy)


def test_summarize_trajectory_uses_safes_own_threshold():
    from safecontrol import SafeController
    from safecontrol.testing import PlantConfig, run

    trajectory = run(SafeController(), PlantConfig(steps=80))
    m = summarize_trajectory(trajectory)
    assert m.kl_above == pytest.approx(np.mean(trajectory.kl > trajectory.threshold))
    assert summarize_trajectory(run(None, PlantConfig(steps=20))).kl_above is None
