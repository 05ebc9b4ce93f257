"""The surrogate plant: settings, determinism, the controller contract, and the pathologies of
SPEC §6 that each preset must reproduce (numbers checked on several seeds)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from safecontrol import AdaptiveKL, FixedKL, SafeController
from safecontrol.testing import (
    PATHOLOGIES,
    SPIKE_TOKEN,
    PlantConfig,
    Trajectory,
    make_task,
    rolling_mean,
    run,
    summarize_trajectory,
)
from safecontrol.testing.config import log_softmax
from safecontrol.testing.plant import _entropy_gradient, _kl_gradient, _policy

SEEDS = (0, 1, 2)


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_contexts", 0),
        ("vocab_size", 1),
        ("ref_logit_std", 0.0),
        ("spike_reward", math.nan),
        ("honest_reward", -0.1),
        ("crash_kl", -1.0),
        ("crash_kl", math.nan),
        ("crash_width", 0.0),
        ("lr", -1.0),
        ("lr", math.inf),
        ("batch_size", 2.5),
        ("steps", 0),
        ("epochs", 0),
        ("clip", 0.0),
        ("max_grad_norm", 0.0),
        ("entropy_coef", -0.01),
        ("kl_measurement", "k3"),
        ("use_step_scale", 1),
        ("seed", -1),
        ("seed", 1.5),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        PlantConfig(**{field: value})


def test_config_replace_validates_and_rejects_unknown_fields():
    assert PlantConfig().replace(lr=2.0).lr == 2.0
    with pytest.raises(ValueError, match="lr"):
        PlantConfig().replace(lr=0.0)
    with pytest.raises(ValueError, match="learning_rate"):
        PlantConfig().replace(learning_rate=1.0)


def test_run_rejects_a_config_of_the_wrong_type():
    with pytest.raises(ValueError, match="PlantConfig"):
        run(None, {"lr": 1.0})  # type: ignore[arg-type]


def test_task_has_a_rare_overrated_spike_and_a_high_entropy_reference():
    config = PlantConfig()
    task = make_task(config)
    assert task.ref_logits.shape == task.proxy_reward.shape == (32, 32)
    assert np.all(task.proxy_reward[:, SPIKE_TOKEN] == config.spike_reward)
    assert np.all(task.true_reward[:, SPIKE_TOKEN] == config.spike_true_reward)
    honest = np.delete(task.proxy_reward, SPIKE_TOKEN, axis=1)
    assert honest.min() >= 0.0 and honest.max() <= config.honest_reward
    probs = np.exp(log_softmax(task.ref_logits))
    entropy = -(probs * np.log(probs)).sum(axis=1).mean()
    assert 2.8 < entropy < 3.2  # log 32 = 3.47
    assert probs[:, SPIKE_TOKEN].mean() < 0.05


# ---------------------------------------------------------------------------- mechanics
def test_same_seed_same_trajectory_and_seeds_differ():
    config = PlantConfig(steps=60)
    a, b = run(SafeController(), config), run(SafeController(), config)
    for name, values in a.as_dict().items():
        np.testing.assert_array_equal(values, getattr(b, name), err_msg=name)
    c = run(SafeController(), config.replace(seed=1))
    assert not np.array_equal(a.reward, c.reward)


def test_trajectory_has_one_entry_per_step_and_starts_at_the_reference():
    trajectory = run(None, PlantConfig(steps=25))
    assert isinstance(trajectory, Trajectory) and len(trajectory) == 25
    for name, values in trajectory.as_dict().items():
        assert values.shape == (25,), name
    assert trajectory.kl[0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.isnan(trajectory.threshold)) and np.all(trajectory.coef == 0.0)
    assert np.all(trajectory.kl >= -1e-12)


def test_sampled_tokens_follow_the_policy():
    # A negligible learning rate keeps the policy at the reference: the spike's share of 300
    # batches of 64 must match its mean reference probability within sampling error.
    config = PlantConfig(lr=1e-12, steps=300)
    trajectory = run(None, config)
    p = np.exp(log_softmax(make_task(config).ref_logits))[:, SPIKE_TOKEN].mean()
    n = config.steps * config.batch_size
    assert abs(trajectory.spike_fraction.mean() - p) < 4.0 * math.sqrt(p * (1 - p) / n)


def test_k1_measurement_is_an_unbiased_noisy_estimate_of_the_exact_kl():
    trajectory = run(None, PlantConfig(steps=300))
    error = trajectory.kl_measured - trajectory.kl
    assert error.std() > 0.01  # it is a sampled estimate
    assert abs(error.mean()) < 4.0 * error.std() / math.sqrt(len(error))
    exact = run(None, PlantConfig(steps=30, kl_measurement="exact"))
    np.testing.assert_array_equal(exact.kl_measured, exact.kl)


def test_kl_and_entropy_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    theta, ref = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    logp_ref = log_softmax(ref)

    def total(t: np.ndarray) -> tuple[float, float]:
        logp, probs, _, kl_c = _policy(t, logp_ref)
        return float(kl_c.sum()), float(-(probs * logp).sum())

    logp, probs, log_ratio, kl_c = _policy(theta, logp_ref)
    analytic = (_kl_gradient(probs, log_ratio, kl_c), _entropy_gradient(probs, logp))
    eps = 1e-6
    for i in range(3):
        for j in range(5):
            up, down = theta.copy(), theta.copy()
            up[i, j] += eps
            down[i, j] -= eps
            numeric = [(u - d) / (2 * eps) for u, d in zip(total(up), total(down), strict=True)]
            assert analytic[0][i, j] == pytest.approx(numeric[0], abs=1e-7)
            assert analytic[1][i, j] == pytest.approx(numeric[1], abs=1e-7)


class SpyDecision:
    """A linear decision that records where it is read; ``scale`` set: it limits steps."""

    def __init__(self, coef: float, scale: float | None) -> None:
        self.coef, self.scale, self.slope_calls, self.preview_calls = coef, scale, [], []
        self.step, self.skipped = 0, 0
        self.max_preview_kl = math.inf if scale is None else 0.1

    def loss_at(self, kl: float) -> float:
        return self.coef * kl

    def slope_at(self, kl: float) -> float:
        self.slope_calls.append(kl)
        return self.coef

    def step_scale(self, preview_kl: float) -> float:
        self.preview_calls.append(preview_kl)
        return 1.0 if self.scale is None else self.scale

    def as_dict(self) -> dict:
        return {"coef": self.coef}


class SpyController:
    """Records every update (the full contract signature) and returns a SpyDecision."""

    kl_unit = "per_token"

    def __init__(self, coef: float = 0.1, scale: float | None = None) -> None:
        self.coef, self.scale, self.updates, self.decisions = coef, scale, [], []

    def update(self, *, kl, entropy=None, reward=None, n_steps=None, tokens_per_sequence=None):
        self.updates.append(
            {
                "kl": kl,
                "entropy": entropy,
                "reward": reward,
                "n_steps": n_steps,
                "tokens_per_sequence": tokens_per_sequence,
            }
        )
        self.decisions.append(SpyDecision(self.coef, self.scale))
        return self.decisions[-1]


@pytest.mark.parametrize("epochs", [1, 3])
def test_controller_is_updated_once_per_batch_and_slope_read_at_each_epochs_live_kl(epochs):
    spy = SpyController()
    trajectory = run(spy, PlantConfig(steps=20, epochs=epochs))
    assert len(spy.updates) == 20
    for t, (update, decision) in enumerate(zip(spy.updates, spy.decisions, strict=True)):
        assert update["kl"] == trajectory.kl_measured[t]
        assert update["entropy"] == trajectory.entropy[t]
        assert update["reward"] == trajectory.reward[t]
        assert len(decision.slope_calls) == epochs
        assert decision.slope_calls[0] == pytest.approx(trajectory.kl[t], abs=1e-12)
    # Later epochs read the KL of the policy as it has moved, not the measurement.
    if epochs > 1:
        assert any(d.slope_calls[1] != d.slope_calls[0] for d in spy.decisions[1:])
    assert np.all(trajectory.coef == 0.1)


def test_every_controller_gets_the_batch_size_as_n_steps_and_one_token_per_sequence():
    kl_spy, entropy_spy = SpyController(), SpyController(coef=0.0)
    run(kl_spy, PlantConfig(steps=3, batch_size=16), entropy_controller=entropy_spy)
    for spy in (kl_spy, entropy_spy):
        assert [u["n_steps"] for u in spy.updates] == [16, 16, 16]
        assert [u["tokens_per_sequence"] for u in spy.updates] == [1.0, 1.0, 1.0]
    assert [u["kl"] for u in kl_spy.updates] == [u["kl"] for u in entropy_spy.updates]


def test_a_per_sequence_controller_sees_the_per_token_kl_of_one_token_completions():
    # AdaptiveKL's target is per sequence; with one token per completion the plant's KL is both.
    config = PATHOLOGIES["reward_hacking"].config.replace(steps=40)
    trajectory = run(AdaptiveKL(init_coef=0.2, target=0.3), config)
    reference = AdaptiveKL(init_coef=0.2, target=0.3)
    for t in range(len(trajectory)):
        reference.update(
            kl=trajectory.kl_measured[t], n_steps=config.batch_size, tokens_per_sequence=1
        )
        assert trajectory.coef[t] == reference.decision.coef
    assert trajectory.coef[-1] != trajectory.coef[0]


def test_step_scale_is_applied_only_when_max_preview_kl_is_finite():
    scaled = SpyController(coef=0.0, scale=0.0)  # a zero scale freezes the policy
    trajectory = run(scaled, PlantConfig(steps=10, lr=5.0))
    assert np.all(trajectory.step_scale == 0.0)
    assert np.all(trajectory.kl == pytest.approx(0.0, abs=1e-12))
    assert all(len(d.preview_calls) == 1 and d.preview_calls[0] > 0 for d in scaled.decisions)
    off = run(SpyController(coef=0.0, scale=0.0), PlantConfig(steps=10, use_step_scale=False))
    assert np.all(off.step_scale == 1.0) and off.kl[-1] > 0.0
    # An infinite max_preview_kl: step_scale is never asked (no preview is computed).
    unlimited = SpyController(coef=0.0, scale=None)
    free = run(unlimited, PlantConfig(steps=10, lr=5.0))
    assert all(d.preview_calls == [] for d in unlimited.decisions)
    assert np.all(free.step_scale == 1.0) and free.kl[-1] > 0.0
    fixed = run(FixedKL(0.0), PlantConfig(steps=10, lr=5.0))
    np.testing.assert_array_equal(fixed.kl, free.kl)


def test_the_penalty_reaches_the_policy():
    free = run(None, PlantConfig(steps=100))
    penalised = run(FixedKL(1.0), PlantConfig(steps=100))
    assert penalised.kl[-1] < 0.5 * free.kl[-1]


def test_entropy_controller_coefficient_is_used_as_an_entropy_bonus():
    class Bonus:
        def update(self, *, kl, entropy=None, reward=None, n_steps=None, tokens_per_sequence=None):
            return type("D", (), {"coef": 0.5})()

    config = PATHOLOGIES["entropy_collapse"].config.replace(steps=150)
    base = run(FixedKL(0.01), config)
    bonus = run(FixedKL(0.01), config, entropy_controller=Bonus())
    assert np.all(bonus.entropy_coef == 0.5) and np.all(base.entropy_coef == 0.0)
    assert bonus.entropy.min() > 3.0 * base.entropy.min()


def test_a_run_of_300_steps_takes_milliseconds():
    run(None, PlantConfig(steps=5))  # warm-up
    start = time.perf_counter()
    run(FixedKL(0.05), PlantConfig(steps=300))
    assert time.perf_counter() - start < 0.5  # ~50 ms on a 2-core machine


# ---------------------------------------------------------------------------- pathologies
def test_every_pathology_is_documented_and_runs_under_its_controller():
    assert set(PATHOLOGIES) == {"reward_hacking", "kl_runaway", "entropy_collapse", "late_crash"}
    for name, pathology in PATHOLOGIES.items():
        assert pathology.name == name and pathology.description
        controller = pathology.controller()
        assert (controller is None) == (pathology.fixed_coef is None)
        assert len(pathology.run(seed=0).reward) == pathology.config.steps


@pytest.mark.parametrize("seed", SEEDS)
def test_reward_hacking_proxy_reward_rises_while_true_reward_falls(seed):
    t = PATHOLOGIES["reward_hacking"].run(seed)
    proxy = rolling_mean(t.reward)
    true_start, true_end = t.true_reward[:10].mean(), t.true_reward[-10:].mean()
    assert proxy[9] < 0.15 and proxy.max() > 0.85  # observed 0.11-0.14 -> 0.89-0.98
    assert true_start > 0.09 and true_end < 0.07  # observed 0.09-0.11 -> 0.01-0.07
    assert t.spike_fraction[-10:].mean() > 0.75  # observed 0.80-0.98
    assert summarize_trajectory(t).entropy_collapse_steps > 100  # observed 112-154


@pytest.mark.parametrize("seed", SEEDS)
def test_kl_runaway_kl_passes_3_nats_within_60_steps_and_stays(seed):
    t = PATHOLOGIES["kl_runaway"].run(seed)
    assert np.argmax(t.kl > 3.0) < 60 and t.kl[59] > 3.0  # observed: step 24-46
    assert t.kl[-10:].mean() > 3.3  # observed 3.38-3.52; SAFE's base threshold is 0.3
    assert t.entropy.min() < 0.05  # observed 0.005-0.013


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_collapse_below_10_percent_of_the_initial_entropy(seed):
    t = PATHOLOGIES["entropy_collapse"].run(seed)
    m = summarize_trajectory(t)
    assert m.entropy_initial > 2.9 and m.entropy_min < 0.1  # observed 0.025-0.056
    assert m.entropy_collapse_steps > 200  # of 300; observed 222-251
    assert t.spike_fraction.max() <= 0.1  # no exploit: the collapse is onto honest tokens


@pytest.mark.parametrize("seed", SEEDS)
def test_late_crash_reward_climbs_then_crashes_and_stays_down(seed):
    t = PATHOLOGIES["late_crash"].run(seed)
    m = summarize_trajectory(t)
    assert m.crashes >= 1 and m.first_crash >= 60  # observed: one crash, onset 85-144
    assert m.reward_peak > 0.28  # observed 0.31-0.39, from ~0.12
    assert m.reward_final < 0.3 * m.reward_peak  # observed 0.05-0.08
    assert int(np.argmax(rolling_mean(t.reward))) >= 40  # the peak comes late (54-121)


def test_a_decision_without_the_contract_is_refused_naming_what_it_lacks():
    class ReturnsAFloat:
        def update(self, *, kl, entropy=None, reward=None, n_steps=None, tokens_per_sequence=None):
            return 0.1

    with pytest.raises(TypeError, match=r"ReturnsAFloat\.update returned float.*slope_at"):
        run(ReturnsAFloat(), PlantConfig(steps=2))
