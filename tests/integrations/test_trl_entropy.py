"""SafeBetaCallback driving GRPOTrainer's entropy bonus (``entropy_coef``, trl >= 1.8) from an
entropy controller beside β: fed TRL's logged entropy, checkpointed and resumed with β, refused
beside TRL's own adaptive entropy or where the trainer has no bonus term."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

pytest.importorskip("trl")

from integrations.trl_tiny import make_trainer, step_logs, tiny_model_dir
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from safecontrol import EntropyTargetController, FixedKL
from safecontrol.integrations.trl import CHECKPOINT_FILE, STATE_FORMAT_VERSION, SafeBetaCallback

if "entropy_coef" not in GRPOConfig.__dataclass_fields__:
    pytest.skip("GRPOConfig has no entropy_coef before trl 1.8", allow_module_level=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_model_dir(tmp_path_factory)


# Far above the tiny model's entropy (at most ln 21 nats), so the coefficient climbs every update.
ENTROPY_TARGET = {"target": 10.0, "delta": 0.005}


class EntropyProbe(TrainerCallback):
    """Added after SafeBetaCallback: records trainer.entropy_coef at each optimizer step's end."""

    def __init__(self, trainer: GRPOTrainer) -> None:
        self.trainer = trainer
        self.steps: list[tuple[int, float]] = []  # (global step, entropy_coef)

    def on_train_begin(self, args, state, control, **kwargs):
        self.coef_at_begin = self.trainer.entropy_coef

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append((state.global_step, self.trainer.entropy_coef))


def attach_entropy(trainer: GRPOTrainer, **settings: Any) -> tuple[SafeBetaCallback, EntropyProbe]:
    callback = SafeBetaCallback.attach(
        trainer,
        FixedKL(0.02),
        entropy_controller=EntropyTargetController(**{**ENTROPY_TARGET, **settings}),
    )
    probe = EntropyProbe(trainer)
    trainer.add_callback(probe)
    return callback, probe


@pytest.fixture(scope="module")
def entropy_run(model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four optimizer steps with an entropy controller; checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("entropy_run")
    trainer = make_trainer(model_dir, out, entropy_coef=0.01, save_strategy="steps", save_steps=2)
    callback, probe = attach_entropy(trainer)
    trainer.train()
    return {"trainer": trainer, "callback": callback, "probe": probe, "out": out}


def test_entropy_coef_follows_the_entropy_controller_fed_trls_logged_entropy(entropy_run):
    trainer, probe = entropy_run["trainer"], entropy_run["probe"]
    logs = step_logs(trainer)
    assert probe.coef_at_begin == 0.0  # the controller's init_coef, not GRPOConfig's 0.01
    replay = EntropyTargetController(**ENTROPY_TARGET)
    applied = probe.coef_at_begin
    assert [s for s, _ in probe.steps] == [1, 2, 3, 4]
    for step, coef in probe.steps:
        assert logs[step]["entropy_coef"] == applied  # TRL logs the coefficient its loss used
        expected = replay.update(entropy=logs[step]["entropy"]).coef
        assert coef == expected
        assert logs[step]["safe/entropy_coef"] == coef
        applied = coef
    assert [c for _, c in probe.steps] == pytest.approx([0.005, 0.01, 0.015, 0.02])


def test_checkpoint_holds_the_entropy_controller_state(entropy_run):
    out, probe = entropy_run["out"], entropy_run["probe"]
    for step in (2, 4):
        saved = json.loads((out / f"checkpoint-{step}" / CHECKPOINT_FILE).read_text())
        assert saved["format_version"] == STATE_FORMAT_VERSION
        assert saved["entropy_controller"]["type"] == "EntropyTargetController"
        assert saved["entropy_controller"]["state"]["coef"] == probe.steps[step - 1][1]


def test_resume_restores_the_entropy_controller_and_retraces_its_coefficients(
    entropy_run, model_dir, tmp_path
):
    shutil.copytree(entropy_run["out"] / "checkpoint-2", tmp_path / "checkpoint-2")
    trainer = make_trainer(model_dir, tmp_path, entropy_coef=0.01)
    _, probe = attach_entropy(trainer)
    trainer.train(resume_from_checkpoint=True)
    assert probe.coef_at_begin == entropy_run["probe"].steps[1][1]
    assert probe.steps == entropy_run["probe"].steps[2:]


@pytest.fixture(scope="module")
def entropy_trainer(model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> GRPOTrainer:
    return make_trainer(model_dir, tmp_path_factory.mktemp("entropy_idle"), entropy_coef=0.01)


def test_entropy_state_round_trips_through_json_and_sets_the_trainers_coef(entropy_trainer):
    source = SafeBetaCallback(
        entropy_trainer, FixedKL(0.02), entropy_controller=EntropyTargetController(target=1.0)
    )
    for entropy in (0.5, 0.4, 2.0, 0.3):
        source.entropy_controller.update(entropy=entropy)  # type: ignore[union-attr]
    entropy_trainer.beta = source.beta  # as a restore sets it
    state = json.loads(json.dumps(source.state_dict()))
    entropy_trainer.entropy_coef = 0.5  # whatever it was, the restore sets it
    restored = SafeBetaCallback(
        entropy_trainer, FixedKL(0.02), entropy_controller=EntropyTargetController(target=1.0)
    )
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    assert entropy_trainer.entropy_coef == pytest.approx(0.01) == restored.entropy_coef


def test_a_state_with_and_a_callback_without_an_entropy_controller_are_refused(entropy_trainer):
    plain = SafeBetaCallback(entropy_trainer, FixedKL(0.02))
    with_entropy = SafeBetaCallback(
        entropy_trainer, FixedKL(0.02), entropy_controller=EntropyTargetController(target=1.0)
    )
    for callback, state in ((plain, with_entropy.state_dict()), (with_entropy, plain.state_dict())):
        before = callback.state_dict()
        with pytest.raises(ValueError, match="entropy_controller"):
            callback.load_state_dict(state)
        assert callback.state_dict() == before


def test_a_format_2_state_loads_without_an_entropy_controller(entropy_trainer):
    callback = SafeBetaCallback(entropy_trainer, FixedKL(0.02))
    state = callback.state_dict()
    del state["entropy_controller"]
    state["format_version"] = 2
    callback.load_state_dict(state)
    assert callback.state_dict()["entropy_controller"] is None


def test_entropy_controller_with_trls_adaptive_entropy_is_refused_naming_both(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path, entropy_coef=0.01, use_adaptive_entropy=True)
    with pytest.raises(ValueError, match=r"use_adaptive_entropy.*entropy_controller"):
        SafeBetaCallback(trainer, entropy_controller=EntropyTargetController(target=1.0))
    SafeBetaCallback(trainer)  # driving beta alone is fine


def test_entropy_controller_on_a_trainer_built_without_the_bonus_is_refused(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path)
    assert trainer.args.entropy_coef == 0.0
    with pytest.raises(ValueError, match=r"GRPOConfig\(entropy_coef=<small positive>"):
        SafeBetaCallback(trainer, entropy_controller=EntropyTargetController(target=1.0))


def test_entropy_controller_must_keep_the_contract(entropy_trainer):
    with pytest.raises(ValueError, match="lacks"):
        SafeBetaCallback(entropy_trainer, entropy_controller=object())  # type: ignore[arg-type]
