"""SafeBetaCallback driving the real TRL GRPOTrainer on CPU: β follows the controller's decisions,
one update per rollout batch, checkpoints and resume, controllers by name (``trl_tiny`` builds the
model, data and trainer)."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

pytest.importorskip("trl")

from integrations.trl_tiny import (
    MOVING_SAFE,
    Probe,
    attach_with_probe,
    make_trainer,
    step_logs,
    tiny_model_dir,
)
from toy_controller import ToyDecision, ToyProportionalKL, registered

from safecontrol import AdaptiveKL, FixedKL, SafeController, registry
from safecontrol.integrations.trl import (
    CHECKPOINT_FILE,
    MEAN_LENGTH,
    PHASE_CODES,
    SafeBetaCallback,
)
from safecontrol.testing import check_controller


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_model_dir(tmp_path_factory)


class RecordingAdaptiveKL(AdaptiveKL):
    """AdaptiveKL that records the arguments of each update."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[dict[str, Any]] = []

    def update(self, **kwargs: Any):
        self.calls.append(kwargs)
        return super().update(**kwargs)


@pytest.fixture(scope="module")
def safe_run(model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four optimizer steps with a moving SAFE controller; checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("safe_run")
    trainer = make_trainer(model_dir, out, save_strategy="steps", save_steps=2)
    callback, probe = attach_with_probe(trainer, SafeController(MOVING_SAFE))
    trainer.train()
    return {"trainer": trainer, "callback": callback, "probe": probe, "out": out}


# ---------------------------------------------------------------------- beta follows decisions
def test_beta_equals_decision_coef_after_every_optimizer_step(safe_run):
    probe, callback = safe_run["probe"], safe_run["callback"]
    assert [s for s, _, _ in probe.steps] == [1, 2, 3, 4]
    for step, beta, decision in probe.steps:
        assert decision.step == step  # one controller update per optimizer step
        assert beta == max(decision.coef, callback.min_beta)
    betas = [beta for _, beta, _ in probe.steps]
    assert len(set(betas)) > 1, f"beta never moved: {betas}"
    assert probe.beta_at_begin == callback.min_beta  # neutral SAFE decision: coef 0
    print("\nbeta trajectory (step, beta, coef, kl, threshold, gate, phase):")
    for step, beta, d in probe.steps:
        print(
            f"  {step} {beta:.6g} {d.coef:.6g} {d.kl:.6g} {d.threshold:.4g} {d.gate:.4g} {d.phase}"
        )


def test_controller_is_fed_the_kl_entropy_and_reward_trl_logged(safe_run):
    logs = step_logs(safe_run["trainer"])
    for step, _, decision in safe_run["probe"].steps:
        assert decision.kl == logs[step]["kl"]
        assert decision.entropy == logs[step]["entropy"]
        assert decision.reward == logs[step]["reward"]


def test_decision_is_logged_into_trl_logs(safe_run):
    logs = step_logs(safe_run["trainer"])
    for step, beta, decision in safe_run["probe"].steps:
        log = logs[step]
        assert log["safe/beta"] == beta
        assert log["safe/coef"] == decision.coef
        assert log["safe/threshold"] == decision.threshold
        assert log["safe/gate"] == decision.gate
        assert log["safe/phase"] == PHASE_CODES[decision.phase]
        assert log["safe/kl_predicted"] == decision.kl_predicted


# ---------------------------------------------------------------------- checkpoints
def test_checkpoint_holds_controller_state_and_beta(safe_run):
    out, probe = safe_run["out"], safe_run["probe"]
    for step in (2, 4):
        with open(out / f"checkpoint-{step}" / CHECKPOINT_FILE) as f:
            saved = json.load(f)
        _, beta, decision = probe.steps[step - 1]
        assert saved["global_step"] == step
        assert saved["beta"] == beta
        assert saved["controller"]["type"] == "SafeController"
        assert saved["controller"]["state"]["controller"]["step"] == step
        assert saved["controller"]["state"]["controller"]["last_decision"] == decision.as_dict()
    assert not list(out.glob("checkpoint-*/.safecontrol-*"))  # no temporary files left


def test_resume_restores_controller_state_and_continues_the_beta_trajectory(
    safe_run, model_dir, tmp_path
):
    shutil.copytree(safe_run["out"] / "checkpoint-2", tmp_path / "checkpoint-2")
    with open(tmp_path / "checkpoint-2" / CHECKPOINT_FILE) as f:
        saved = json.load(f)
    trainer = make_trainer(model_dir, tmp_path)
    _, probe = attach_with_probe(trainer, SafeController(MOVING_SAFE))
    trainer.train(resume_from_checkpoint=True)
    assert probe.state_at_begin == saved["controller"]
    assert probe.beta_at_begin == saved["beta"]
    assert [s for s, _, _ in probe.steps] == [3, 4]
    # Same seed, restored RNG and optimizer: the resumed run retraces the original steps 3-4.
    original = {s: (b, d.as_dict()) for s, b, d in safe_run["probe"].steps}
    for step, beta, decision in probe.steps:
        assert (beta, decision.as_dict()) == original[step]


def test_resume_without_controller_state_is_refused(safe_run, model_dir, tmp_path):
    shutil.copytree(safe_run["out"] / "checkpoint-2", tmp_path / "checkpoint-2")
    (tmp_path / "checkpoint-2" / CHECKPOINT_FILE).unlink()
    trainer = make_trainer(model_dir, tmp_path)
    SafeBetaCallback.attach(trainer, SafeController(MOVING_SAFE))
    with pytest.raises(FileNotFoundError, match="load_checkpoint"):
        trainer.train(resume_from_checkpoint=True)


def test_load_checkpoint_restores_state_from_a_checkpoint_outside_output_dir(
    safe_run, model_dir, tmp_path
):
    checkpoint = safe_run["out"] / "checkpoint-2"
    trainer = make_trainer(model_dir, tmp_path / "elsewhere", max_steps=3)
    callback, probe = attach_with_probe(trainer, SafeController(MOVING_SAFE))
    callback.load_checkpoint(checkpoint)
    trainer.train(resume_from_checkpoint=str(checkpoint))
    saved = json.loads((checkpoint / CHECKPOINT_FILE).read_text())
    assert probe.state_at_begin == saved["controller"]
    assert [d.step for _, _, d in probe.steps] == [3]


# ---------------------------------------------------------------------- update timing
def test_gradient_accumulation_gives_one_update_per_optimizer_step(model_dir, tmp_path):
    trainer = make_trainer(
        model_dir,
        tmp_path,
        max_steps=3,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
    )
    _, probe = attach_with_probe(trainer, SafeController(MOVING_SAFE))
    trainer.train()
    assert [(s, d.step) for s, _, d in probe.steps] == [(1, 1), (2, 2), (3, 3)]
    # Inside each window beta is the one set at the end of the previous optimizer step.
    beta_after = {0: probe.beta_at_begin, **{s: b for s, b, _ in probe.steps}}
    assert [s for s, _ in probe.in_window] == [0, 1, 2]
    for step, beta in probe.in_window:
        assert beta == beta_after[step]
    logs = step_logs(trainer)
    for step, _, decision in probe.steps:  # the two micro-batches' KL, averaged as TRL logs it
        assert decision.kl == logs[step]["kl"]


def test_reused_rollouts_hold_beta_and_update_once_per_rollout_batch(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path, num_iterations=2)
    controller = RecordingAdaptiveKL(init_coef=0.05, target=1e-4, horizon=100)
    callback, probe = attach_with_probe(trainer, controller)
    trainer.train()
    assert [d.step for _, _, d in probe.steps] == [1, 1, 2, 2]  # rollouts at steps 1 and 3
    betas = [b for _, b, _ in probe.steps]
    assert betas[0] == betas[1] and betas[2] == betas[3]
    assert betas == [max(d.coef, callback.min_beta) for _, _, d in probe.steps]
    logs = step_logs(trainer)
    first, second = controller.calls
    assert first["kl"] == logs[1]["kl"]
    assert second["kl"] == (logs[2]["kl"] + logs[3]["kl"]) / 2  # step 2's KL carried over
    assert second["reward"] == logs[3]["reward"]
    assert first["n_steps"] == second["n_steps"] == trainer.args.generation_batch_size
    # The length comes with its rollout batch, as the reward does.
    assert first["tokens_per_sequence"] == logs[1][MEAN_LENGTH]
    assert second["tokens_per_sequence"] == logs[3][MEAN_LENGTH]


def test_per_sequence_controller_receives_trls_logged_mean_completion_length(model_dir, tmp_path):
    """AdaptiveKL (kl_unit per_sequence) gets TRL's ``completions/mean_length`` as the length that
    turns TRL's KL per token into its KL per sequence."""
    trainer = make_trainer(model_dir, tmp_path, max_steps=3)
    controller = RecordingAdaptiveKL(init_coef=0.05, target=1e-3, horizon=100)
    callback, probe = attach_with_probe(trainer, controller)
    trainer.train()
    logs = step_logs(trainer)
    assert len(controller.calls) == 3
    replay = AdaptiveKL(init_coef=0.05, target=1e-3, horizon=100)
    for step, call in enumerate(controller.calls, 1):
        assert call["tokens_per_sequence"] == logs[step][MEAN_LENGTH]
        assert 1.0 <= call["tokens_per_sequence"] <= trainer.args.max_completion_length
        assert call["kl"] == logs[step]["kl"]
        assert call["n_steps"] == trainer.args.generation_batch_size
        expected = replay.update(**call)
        assert probe.steps[step - 1][2] == expected
        assert probe.steps[step - 1][1] == max(expected.coef, callback.min_beta)


def test_classic_controller_sets_its_coef_and_logs_no_safe_fields(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path, max_steps=2)
    attach_with_probe(trainer, FixedKL(0.02))
    trainer.train()
    logs = step_logs(trainer)
    assert [logs[s]["safe/beta"] for s in (1, 2)] == [0.02, 0.02]
    assert trainer.beta == 0.02
    assert "safe/threshold" not in logs[1]


# ---------------------------------------------------------------------- controllers by name
def test_a_registry_name_with_settings_builds_and_drives_that_controller(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path, max_steps=3)
    callback = SafeBetaCallback.attach(trainer, "pid-lagrangian-kl", settings={"target": 1e-4})
    probe = Probe(trainer, callback)
    trainer.add_callback(probe)
    trainer.train()
    expected = registry.make("pid-lagrangian-kl", target=1e-4)
    assert type(callback.controller) is type(expected) and callback.controller.target == 1e-4
    logs = step_logs(trainer)
    for step, beta, decision in probe.steps:  # fed exactly what TRL logged, per token
        log = logs[step]
        replayed = expected.update(
            kl=log["kl"],
            entropy=log["entropy"],
            reward=log["reward"],
            n_steps=trainer.args.generation_batch_size,
            tokens_per_sequence=log[MEAN_LENGTH],
        )
        assert decision.as_dict() == replayed.as_dict()
        assert beta == log["safe/beta"] == max(decision.coef, callback.min_beta)
    assert len({beta for _, beta, _ in probe.steps}) > 1


# ---------------------------------------------------------------------- a controller of your own
def test_a_controller_registered_at_run_time_is_driven_by_name_and_beta_follows_it(
    model_dir, tmp_path
):
    """Issue 11's acceptance: a new controller is one file (``tests/toy_controller.py``) and one
    ``register`` call; the TRL callback then drives it by its name, unchanged, and β is its
    decision."""
    settings = {"gain": 50.0, "target": 1e-4}
    with registered() as toy_name:
        check_controller(lambda: registry.make(toy_name, **settings))  # it keeps the contract
        trainer = make_trainer(model_dir, tmp_path, max_steps=3)
        callback = SafeBetaCallback.attach(trainer, toy_name, settings=settings)
        probe = Probe(trainer, callback)
        trainer.add_callback(probe)
        trainer.train()
    assert type(callback.controller) is ToyProportionalKL and callback.controller.gain == 50.0
    assert probe.beta_at_begin == 0.05  # the toy's initial decision
    logs = step_logs(trainer)
    assert [s for s, _, _ in probe.steps] == [1, 2, 3]
    coef = 0.05
    for step, beta, decision in probe.steps:
        coef = min(1.0, max(0.0, coef + 50.0 * (logs[step]["kl"] - 1e-4)))
        assert type(decision) is ToyDecision and decision.step == step
        assert decision.coef == coef
        assert beta == logs[step]["safe/beta"] == max(coef, callback.min_beta)
    assert len({beta for _, beta, _ in probe.steps}) > 1
    assert "safe/threshold" not in logs[1]  # no dead band: only beta and coef are logged
