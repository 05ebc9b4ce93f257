"""safecontrol.integrations.trl driving the real TRL GRPOTrainer on CPU.

Everything is built here: a word-level tokenizer and a 1-layer Llama (hidden 16) saved to a
temporary folder, six prompts and a dense word-score reward. Each run is a few optimizer steps of
4 completions of at most 4 tokens; ``logging_steps=1`` makes TRL's log hold each step's metrics.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import shutil
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("trl")

import torch
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from toy_controller import ToyDecision, ToyProportionalKL, registered
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    TrainerCallback,
)
from trl import GRPOConfig, GRPOTrainer

from safecontrol import (
    AdaptiveKL,
    EntropyTargetController,
    FixedKL,
    SafeConfig,
    SafeController,
    registry,
)
from safecontrol.integrations.trl import (
    CHECKPOINT_FILE,
    MEAN_LENGTH,
    PHASE_CODES,
    STATE_FORMAT_VERSION,
    SafeBetaCallback,
    liger_freezes_beta,
)
from safecontrol.testing import check_controller

WORD_SCORES = {
    **{w: 1.0 for w in ("good", "happy")},
    **{w: 0.5 for w in ("bright", "sun")},
    **{w: -1.0 for w in ("bad", "sad")},
    **{w: -0.5 for w in ("dark", "rain")},
    **{w: 0.0 for w in ("the", "a", "day", "night", "is", "was", "very", "not")},
}
PROMPTS = ["the day is", "the sun was", "a night is", "the rain was", "a day was", "the night is"]

# SAFE with a dead band the tiny run leaves at once (threshold 1.5e-4 in warmup, no PID), and a
# large c, so that beta moves visibly within a few steps.
MOVING_SAFE = SafeConfig(
    kl_estimator="k3",
    threshold_base=1e-4,
    threshold_limits=(0.0, 0.6),
    use_pid=False,
    penalty_coef=10.0,
)


def word_score_reward(completions: list[str], **kwargs: Any) -> list[float]:
    """Mean word score of each completion (dense, so GRPO advantages are rarely all zero)."""
    return [
        sum(WORD_SCORES.get(w, 0.0) for w in text.split()) / max(len(text.split()), 1)
        for text in completions
    ]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    for word in WORD_SCORES:
        vocab[word] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece()  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def make_trainer(model_dir: str, output_dir: Any, **overrides: Any) -> GRPOTrainer:
    settings: dict[str, Any] = {
        "output_dir": str(output_dir),
        "beta": 0.04,
        "max_steps": 4,
        "per_device_train_batch_size": 4,
        "num_generations": 2,
        "max_completion_length": 4,
        "learning_rate": 3e-2,
        "use_cpu": True,
        "report_to": [],
        "logging_steps": 1,
        "save_strategy": "no",
        "disable_tqdm": True,
        "seed": 0,
    }
    settings.update(overrides)
    return GRPOTrainer(
        model=model_dir,
        reward_funcs=word_score_reward,
        args=GRPOConfig(**settings),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
    )


class Probe(TrainerCallback):
    """Added after SafeBetaCallback: sees beta and the decision once the callback has acted."""

    def __init__(self, trainer: GRPOTrainer, callback: SafeBetaCallback) -> None:
        self.trainer, self.callback = trainer, callback
        self.steps: list[tuple[int, float, Any]] = []  # (global step, beta, decision)
        self.in_window: list[tuple[int, float]] = []  # (global step, beta) inside a window
        self.state_at_begin: dict[str, Any] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.state_at_begin = self.callback.controller.state_dict()
        self.beta_at_begin = self.trainer.beta

    def on_substep_end(self, args, state, control, **kwargs):
        self.in_window.append((state.global_step, self.trainer.beta))

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append((state.global_step, self.trainer.beta, self.callback.controller.decision))


def attach_with_probe(trainer: GRPOTrainer, controller: Any = None) -> tuple[Any, Probe]:
    callback = SafeBetaCallback.attach(trainer, controller)
    probe = Probe(trainer, callback)
    trainer.add_callback(probe)
    return callback, probe


def step_logs(trainer: GRPOTrainer) -> dict[int, dict[str, Any]]:
    return {h["step"]: h for h in trainer.state.log_history if "loss" in h}


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


def test_safe_by_name_gets_trls_k3_estimator_unless_its_settings_say_otherwise(idle_trainer):
    callback = SafeBetaCallback(idle_trainer, "safe", settings={"penalty_coef": 10.0})
    assert isinstance(callback.controller, SafeController)
    assert callback.controller.config.kl_estimator == "k3"
    assert callback.controller.config.penalty_coef == 10.0
    with pytest.raises(ValueError, match="'k1'"):
        SafeBetaCallback(idle_trainer, "safe", settings={"kl_estimator": "k1"})


def test_an_unknown_name_is_refused_listing_the_registered_ones(idle_trainer):
    with pytest.raises(ValueError, match=r"unknown controller 'saef'.*pid-lagrangian-kl"):
        SafeBetaCallback(idle_trainer, "saef")


def test_an_unknown_setting_is_refused_listing_the_known_ones(idle_trainer):
    with pytest.raises(ValueError, match=r"unknown settings \['targte'\].*target"):
        SafeBetaCallback(idle_trainer, "pid-lagrangian-kl", settings={"targte": 0.2})


def test_settings_with_a_controller_instance_are_refused(idle_trainer):
    with pytest.raises(ValueError, match="registry name"):
        SafeBetaCallback(idle_trainer, FixedKL(0.02), settings={"coef": 0.03})


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


def test_a_dead_band_decision_of_your_own_logs_its_threshold_and_gate(idle_trainer):
    @dataclasses.dataclass(frozen=True)
    class ToyDeadBand(ToyDecision):
        threshold: float = 0.2
        gate: float = 1.5
        penalty_coef: float = 0.1

    class DeadBandController(LenientController):
        decision = ToyDeadBand(coef=0.03)

    callback = SafeBetaCallback(idle_trainer, DeadBandController())
    idle_trainer._metrics["train"].clear()
    callback._log_decision()
    logged = {k: v for k, v in idle_trainer._metrics["train"].items() if k.startswith("safe/")}
    assert logged == {
        "safe/beta": [idle_trainer.beta],
        "safe/coef": [0.03],
        "safe/threshold": [0.2],
        "safe/gate": [1.5],
    }


# ---------------------------------------------------------------------- refusals
def test_starting_beta_zero_is_refused_naming_the_reference_model(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path, beta=0.0)
    with pytest.raises(ValueError, match="reference model"):
        SafeBetaCallback.attach(trainer)
    trainer.beta = 0.04  # a beta raised after construction does not load a reference model
    with pytest.raises(ValueError, match="reference model"):
        SafeBetaCallback.attach(trainer)
    assert not any(isinstance(cb, SafeBetaCallback) for cb in trainer.callback_handler.callbacks)


@pytest.fixture(scope="module")
def idle_trainer(model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> GRPOTrainer:
    return make_trainer(model_dir, tmp_path_factory.mktemp("idle"))


@pytest.mark.parametrize("bad", [0.0, -1e-3, float("nan"), float("inf")])
def test_min_beta_must_be_positive_and_is_named(idle_trainer, bad):
    with pytest.raises(ValueError, match="min_beta"):
        SafeBetaCallback(idle_trainer, min_beta=bad)


def test_safe_controller_must_use_the_k3_estimator(idle_trainer):
    with pytest.raises(ValueError, match="'k1'"):
        SafeBetaCallback(idle_trainer, SafeController(SafeConfig(kl_estimator="k1")))


def test_entropy_bonus_controller_is_refused(idle_trainer):
    with pytest.raises(ValueError, match="entropy-bonus"):
        SafeBetaCallback(idle_trainer, EntropyTargetController(target=1.0))


def test_object_without_controller_methods_is_refused(idle_trainer):
    with pytest.raises(ValueError, match="lacks"):
        SafeBetaCallback(idle_trainer, object())


def test_a_controller_missing_part_of_the_contract_is_refused_naming_the_parts(idle_trainer):
    partial = SimpleNamespace(decision=None, update=print, state_dict=dict, load_state_dict=print)
    with pytest.raises(ValueError, match=r"lacks \['reset', 'kl_unit'\]"):
        SafeBetaCallback(idle_trainer, partial)

    class PerBatch(LenientController):
        kl_unit = "per_batch"

    with pytest.raises(ValueError, match="kl_unit must be one of"):
        SafeBetaCallback(idle_trainer, PerBatch())


def test_second_callback_on_one_trainer_is_refused(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path)
    SafeBetaCallback.attach(trainer)
    with pytest.raises(ValueError, match="already has"):
        SafeBetaCallback.attach(trainer)


def test_default_controller_is_safe_with_k3(idle_trainer):
    callback = SafeBetaCallback(idle_trainer)
    assert isinstance(callback.controller, SafeController)
    assert callback.controller.config.kl_estimator == "k3"


def test_state_for_another_controller_config_is_refused_and_changes_nothing(idle_trainer):
    callback = SafeBetaCallback(idle_trainer, SafeController(MOVING_SAFE))
    other = SafeBetaCallback(idle_trainer)
    before = callback.state_dict()
    with pytest.raises(ValueError, match="config differs"):
        callback.load_state_dict(other.state_dict())
    assert callback.state_dict() == before


# ---------------------------------------------------------------------- restoring state
def _advanced_state(trainer: GRPOTrainer) -> dict[str, Any]:
    """A valid state other than a fresh callback's: three updates, values pending."""
    source = SafeBetaCallback(trainer, SafeController(MOVING_SAFE))
    for i in range(3):
        source.controller.update(kl=0.01 * i, entropy=2.0, reward=0.1 * i, n_steps=4)
    source._pending = {"kl": [0.02], "entropy": [1.9], "reward": [], MEAN_LENGTH: []}
    source._global_step = 6
    trainer.beta = source.beta  # as a restore sets it
    return source.state_dict()


def _set(path: tuple[str, ...], value: Any):
    def mutate(state: dict[str, Any]) -> None:
        for key in path[:-1]:
            state = state[key]
        if value is _DELETE:
            del state[path[-1]]
        else:
            state[path[-1]] = value

    return mutate


_DELETE = object()
BAD_FIELDS = {
    "rollouts=-1": (_set(("rollouts",), -1), "rollouts"),
    "rollouts=1.5": (_set(("rollouts",), 1.5), "rollouts"),
    "rollouts=True": (_set(("rollouts",), True), "rollouts"),
    "rollouts='1'": (_set(("rollouts",), "1"), "rollouts"),
    "global_step=-1": (_set(("global_step",), -1), "global_step"),
    "global_step=None": (_set(("global_step",), None), "global_step"),
    "beta=nan": (_set(("beta",), float("nan")), "beta"),
    "min_beta=0": (_set(("min_beta",), 0.0), "min_beta"),
    "kl nan": (_set(("pending", "kl"), [0.01, float("nan")]), r"pending\['kl'\]\[1\]"),
    "entropy inf": (_set(("pending", "entropy"), [float("inf")]), r"pending\['entropy'\]\[0\]"),
    "reward nan": (_set(("pending", "reward"), [float("nan")]), r"pending\['reward'\]\[0\]"),
    "reward string": (_set(("pending", "reward"), ["0.5"]), r"pending\['reward'\]\[0\]"),
    "reward bool": (_set(("pending", "reward"), [True]), r"pending\['reward'\]\[0\]"),
    "kl a string": (_set(("pending", "kl"), "0.5"), r"pending\['kl'\]"),
    "pending a list": (_set(("pending",), [[0.1], [2.0], []]), "pending"),
    "pending lacks reward": (_set(("pending", "reward"), _DELETE), "reward"),
    "pending extra key": (_set(("pending", "loss"), [1.0]), "loss"),
    "mean length nan": (_set(("pending", MEAN_LENGTH), [float("nan")]), "mean_length"),
    "pending lacks mean length": (_set(("pending", MEAN_LENGTH), _DELETE), "mean_length"),
    "format_version=4": (_set(("format_version",), 4), "format_version"),
    "format_version=True": (_set(("format_version",), True), "format_version"),
    "no rollouts": (_set(("rollouts",), _DELETE), "rollouts"),
    "unknown key": (_set(("extra",), 1), "extra"),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_restore_refuses_a_bad_field_naming_it_and_changes_nothing(idle_trainer, case):
    mutate, field = BAD_FIELDS[case]
    state = _advanced_state(idle_trainer)
    callback = SafeBetaCallback(idle_trainer, SafeController(MOVING_SAFE))
    callback.load_state_dict(json.loads(json.dumps(state)))  # the state itself is fine
    assert callback.state_dict() == state
    fresh = SafeBetaCallback(idle_trainer, SafeController(MOVING_SAFE))
    before, beta = fresh.state_dict(), idle_trainer.beta
    mutate(state)
    with pytest.raises(ValueError, match=field):
        fresh.load_state_dict(state)
    assert fresh.state_dict() == before and idle_trainer.beta == beta


def test_a_format_1_state_loads_with_no_pending_lengths(idle_trainer):
    """States written before the mean length was collected (format 1) still restore."""
    state = _advanced_state(idle_trainer)
    del state["pending"][MEAN_LENGTH]
    state["format_version"] = 1
    callback = SafeBetaCallback(idle_trainer, SafeController(MOVING_SAFE))
    callback.load_state_dict(json.loads(json.dumps(state)))
    restored = callback.state_dict()
    assert restored["format_version"] == STATE_FORMAT_VERSION
    assert restored["pending"] == {**state["pending"], MEAN_LENGTH: []}
    assert restored["controller"] == state["controller"]
    state["pending"][MEAN_LENGTH] = []  # a format-1 state never had the list
    with pytest.raises(ValueError, match="mean_length"):
        callback.load_state_dict(state)


def test_a_per_sequence_controller_without_a_logged_length_is_refused_changing_nothing(
    idle_trainer,
):
    callback = SafeBetaCallback(idle_trainer, AdaptiveKL())
    callback._pending = {"kl": [0.01], "entropy": [1.0], "reward": [0.5], MEAN_LENGTH: []}
    callback._rollouts = 1
    before = callback.state_dict()
    with pytest.raises(RuntimeError, match=r"completions/mean_length.*per_sequence"):
        callback._update(n_completions=4)
    assert callback.state_dict() == before


class LenientController:
    """Takes any state; its decision's coef is the state's ``coef``."""

    kl_unit = "per_token"

    def __init__(self) -> None:
        self.coef = 0.1

    @property
    def decision(self) -> Any:
        return SimpleNamespace(coef=self.coef)

    def update(self, **kwargs: Any) -> Any:
        return self.decision

    def state_dict(self) -> dict[str, Any]:
        return {"coef": self.coef}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.coef = state_dict["coef"]

    def reset(self) -> None:
        self.coef = 0.1


def test_restore_is_all_or_nothing_when_the_restored_decision_is_refused(idle_trainer):
    callback = SafeBetaCallback(idle_trainer, LenientController())
    before, beta = callback.state_dict(), idle_trainer.beta
    state = json.loads(json.dumps(before))
    state["pending"]["kl"], state["global_step"] = [0.5], 3
    state["controller"] = {"coef": float("nan")}  # accepted by the controller, not as a beta
    with pytest.raises(ValueError, match="coef"):
        callback.load_state_dict(state)
    assert callback.controller.coef == 0.1
    assert callback.state_dict() == before and idle_trainer.beta == beta


CORRUPT_FILES = {
    "truncated": b'{"format_version": 1, "type": "SafeBe',
    "empty": b"",
    "binary": b"\xff\xfe\x00garbage",
    "not an object": b"[1, 2, 3]",
    "fields wrong": json.dumps({"format_version": 1, "type": "SafeBetaCallback"}).encode(),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_FILES))
def test_a_corrupt_state_file_is_refused_naming_the_file_and_changes_nothing(
    idle_trainer, tmp_path, case
):
    (tmp_path / CHECKPOINT_FILE).write_bytes(CORRUPT_FILES[case])
    callback = SafeBetaCallback(idle_trainer, SafeController(MOVING_SAFE))
    before, beta = callback.state_dict(), idle_trainer.beta
    with pytest.raises(ValueError, match="corrupt") as error:
        callback.load_checkpoint(tmp_path)
    assert str(tmp_path / CHECKPOINT_FILE) in str(error.value)
    assert callback.state_dict() == before and idle_trainer.beta == beta
    assert callback._restored_step is None  # a later train() does not expect a restored step


def test_a_failed_save_leaves_the_previous_state_file_whole(idle_trainer, tmp_path):
    class Unsaveable(LenientController):
        def state_dict(self) -> dict[str, Any]:
            return {"coef": self.coef, "oops": object()}  # json.dump fails midway

    folder = tmp_path / "checkpoint-3"
    folder.mkdir()
    (folder / CHECKPOINT_FILE).write_text('{"old": true}')
    callback = SafeBetaCallback(idle_trainer, Unsaveable())
    args = SimpleNamespace(should_save=True, output_dir=str(tmp_path))
    with pytest.raises(TypeError, match="not JSON serializable"):
        callback.on_save(args, SimpleNamespace(global_step=3), None)
    assert (folder / CHECKPOINT_FILE).read_text() == '{"old": true}'
    assert sorted(p.name for p in folder.iterdir()) == [CHECKPOINT_FILE]  # no temporary left


# ---------------------------------------------------------------------- entropy bonus
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


def test_entropy_controller_on_a_trainer_built_without_the_bonus_is_refused(idle_trainer):
    assert idle_trainer.args.entropy_coef == 0.0
    with pytest.raises(ValueError, match=r"GRPOConfig\(entropy_coef=<small positive>"):
        SafeBetaCallback(idle_trainer, entropy_controller=EntropyTargetController(target=1.0))


def test_entropy_controller_must_keep_the_contract(entropy_trainer):
    with pytest.raises(ValueError, match="lacks"):
        SafeBetaCallback(entropy_trainer, entropy_controller=object())  # type: ignore[arg-type]


# ---------------------------------------------------------------------- Liger
@pytest.mark.parametrize(
    ("version", "frozen"),
    [
        ("0.19.1", True),
        ("1.0.0", True),
        ("1.12.0", True),
        ("1.12.3", True),
        ("1.13.0", False),
        ("1.13.0.dev0", False),
        ("1.16.0", False),
        ("2.0.0", False),
    ],
)
def test_liger_freezes_beta_up_to_trl_1_12(version, frozen):
    assert liger_freezes_beta(version) is frozen


def test_liger_on_the_installed_trl_is_not_refused(model_dir, tmp_path):
    """Constructing the trainer with Liger needs no liger-kernel package (it applies at train)."""
    assert not liger_freezes_beta(importlib.metadata.version("trl"))
    with pytest.warns(FutureWarning, match="use_liger_kernel"):
        trainer = make_trainer(model_dir, tmp_path, use_liger_kernel=True)
    assert trainer.args.use_liger_kernel
    SafeBetaCallback(trainer)
