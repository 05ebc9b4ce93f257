"""SafeBetaCallback driving the real TRL RLOOTrainer on CPU. RLOO subtracts β·Σ k1 from each
completion's reward when it scores a rollout batch, and logs the k1 KL per token with it: the
controller is fed that KL (k1 is its estimator) and the β it decides is the one the next rollout
batch is scored with."""

from __future__ import annotations

import dataclasses
import json
import shutil
from typing import Any

import pytest

pytest.importorskip("trl")

from integrations.trl_tiny import (
    MOVING_SAFE,
    attach_with_probe,
    make_trainer,
    step_logs,
    tiny_model_dir,
    word_score_reward,
)

from safecontrol import AdaptiveKL, EntropyTargetController, SafeConfig, SafeController
from safecontrol.integrations.trl import CHECKPOINT_FILE, MEAN_LENGTH, SafeBetaCallback

MOVING_SAFE_K1 = dataclasses.replace(MOVING_SAFE, kl_estimator="k1")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_model_dir(tmp_path_factory)


class BetaAtScoring:
    """A reward function that records ``trainer.beta`` whenever RLOO scores a rollout batch (in
    the same call that then subtracts β·KL from the rewards)."""

    def __init__(self) -> None:
        self.trainer: Any = None
        self.betas: list[float] = []
        self.__name__ = "word_score"

    def __call__(self, completions: list[str], **kwargs: Any) -> list[float]:
        self.betas.append(self.trainer.beta)
        return word_score_reward(completions)


def rloo_trainer(model_dir: str, out: Any, **overrides: Any) -> tuple[Any, BetaAtScoring]:
    reward = BetaAtScoring()
    trainer = make_trainer(model_dir, out, kind="rloo", reward=reward, **overrides)
    reward.trainer = trainer
    return trainer, reward


class RecordingAdaptiveKL(AdaptiveKL):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[dict[str, Any]] = []

    def update(self, **kwargs: Any):
        self.calls.append(kwargs)
        return super().update(**kwargs)


@pytest.fixture(scope="module")
def rloo_run(model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four RLOO steps with Ziegler's AdaptiveKL (per sequence); checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("rloo_run")
    trainer, reward = rloo_trainer(model_dir, out, save_strategy="steps", save_steps=2)
    controller = RecordingAdaptiveKL(init_coef=0.05, target=0.01, horizon=100)
    _, probe = attach_with_probe(trainer, controller)
    trainer.train()
    return {"trainer": trainer, "reward": reward, "controller": controller, "probe": probe}


def test_each_rollout_batch_is_scored_with_the_beta_decided_after_the_previous_one(rloo_run):
    probe, reward = rloo_run["probe"], rloo_run["reward"]
    assert [s for s, _, _ in probe.steps] == [1, 2, 3, 4]
    decided = [probe.beta_at_begin] + [b for _, b, _ in probe.steps[:-1]]
    assert reward.betas == decided
    assert len(set(decided)) == 4  # AdaptiveKL moves beta at every update


def test_the_controller_is_fed_rloos_k1_kl_per_token_with_the_logged_length(rloo_run):
    trainer, controller = rloo_run["trainer"], rloo_run["controller"]
    logs = step_logs(trainer)
    replay = AdaptiveKL(init_coef=0.05, target=0.01, horizon=100)
    assert len(controller.calls) == 4
    for step, call in enumerate(controller.calls, 1):
        assert call["kl"] == logs[step]["kl"]
        assert call["entropy"] == logs[step]["entropy"]
        assert call["reward"] == logs[step]["reward"]
        assert call["tokens_per_sequence"] == logs[step][MEAN_LENGTH]
        assert call["n_steps"] == trainer.args.generation_batch_size
        expected = replay.update(**call)
        assert logs[step]["safe/beta"] == expected.coef == rloo_run["probe"].steps[step - 1][1]
    assert any(call["kl"] != 0.0 for call in controller.calls)


def test_resume_retraces_the_rloo_beta_trajectory(rloo_run, model_dir, tmp_path):
    out = rloo_run["trainer"].args.output_dir
    shutil.copytree(f"{out}/checkpoint-2", tmp_path / "checkpoint-2")
    saved = json.loads((tmp_path / "checkpoint-2" / CHECKPOINT_FILE).read_text())
    trainer, reward = rloo_trainer(model_dir, tmp_path)
    _, probe = attach_with_probe(
        trainer, RecordingAdaptiveKL(init_coef=0.05, target=0.01, horizon=100)
    )
    trainer.train(resume_from_checkpoint=True)
    assert probe.beta_at_begin == saved["beta"]
    assert reward.betas == rloo_run["reward"].betas[2:]
    original = {s: (b, d.as_dict()) for s, b, d in rloo_run["probe"].steps}
    assert {s: (b, d.as_dict()) for s, b, d in probe.steps} == {3: original[3], 4: original[4]}


def test_the_logs_path_drives_rloo_as_the_fast_path_does(rloo_run, model_dir, tmp_path):
    trainer, reward = rloo_trainer(model_dir, tmp_path)
    controller = RecordingAdaptiveKL(init_coef=0.05, target=0.01, horizon=100)
    attach_with_probe(trainer, controller, source="logs")
    trainer.train()
    assert controller.calls == rloo_run["controller"].calls
    assert reward.betas == rloo_run["reward"].betas


def test_safe_by_name_on_rloo_gets_the_k1_estimator_and_moves_beta(model_dir, tmp_path):
    trainer, _ = rloo_trainer(model_dir, tmp_path, max_steps=3)
    settings = {k: getattr(MOVING_SAFE, k) for k in ("threshold_base", "use_pid", "penalty_coef")}
    callback, probe = attach_with_probe(trainer, "safe", settings=settings)
    assert callback.controller.config.kl_estimator == "k1"
    trainer.train()
    assert [d.step for _, _, d in probe.steps] == [1, 2, 3]
    logs = step_logs(trainer)
    for step, beta, decision in probe.steps:
        assert decision.kl == logs[step]["kl"]
        assert beta == logs[step]["safe/beta"] == max(decision.coef, callback.min_beta)


# ---------------------------------------------------------------------- refusals
@pytest.fixture(scope="module")
def idle_rloo(model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return rloo_trainer(model_dir, tmp_path_factory.mktemp("idle_rloo"))[0]


def test_a_safe_controller_for_k3_is_refused_on_rloo_naming_k1(idle_rloo):
    with pytest.raises(ValueError, match=r"RLOOTrainer measures the per-token k1 KL.*'k3'"):
        SafeBetaCallback(idle_rloo, SafeController(SafeConfig(kl_estimator="k3")))
    SafeBetaCallback(idle_rloo, SafeController(MOVING_SAFE_K1))


def test_an_entropy_controller_is_refused_on_rloo_which_has_no_entropy_bonus(idle_rloo):
    with pytest.raises(ValueError, match="RLOOTrainer adds no entropy bonus"):
        SafeBetaCallback(idle_rloo, entropy_controller=EntropyTargetController(target=1.0))


def test_rloo_with_beta_zero_is_refused_naming_its_config(model_dir, tmp_path):
    trainer, _ = rloo_trainer(model_dir, tmp_path, beta=0.0)
    with pytest.raises(ValueError, match=r"RLOOTrainer has no reference model \(RLOOConfig.beta"):
        SafeBetaCallback(trainer)


def test_another_trainer_is_refused_naming_the_supported_ones():
    with pytest.raises(ValueError, match=r"GRPOTrainer or trl\.RLOOTrainer, got object"):
        SafeBetaCallback(object())
