"""A tiny TRL setup for the integration tests, built offline in a second.

A word-level tokenizer and a 1-layer Llama (hidden 16) saved to a temporary folder, six prompts and
a dense word-score reward. Each run is a few optimizer steps of 4 completions of at most 4 tokens;
``logging_steps=1`` makes TRL's log hold each step's metrics.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, TrainerCallback
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from safecontrol import SafeConfig
from safecontrol.integrations.trl import SafeBetaCallback

WORD_SCORES = {
    **{w: 1.0 for w in ("good", "happy")},
    **{w: 0.5 for w in ("bright", "sun")},
    **{w: -1.0 for w in ("bad", "sad")},
    **{w: -0.5 for w in ("dark", "rain")},
    **{w: 0.0 for w in ("the", "a", "day", "night", "is", "was", "very", "not")},
}
PROMPTS = ["the day is", "the sun was", "a night is", "the rain was", "a day was", "the night is"]
TRAINERS = {"grpo": (GRPOTrainer, GRPOConfig), "rloo": (RLOOTrainer, RLOOConfig)}

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
    """Mean word score of each completion (dense, so advantages are rarely all zero)."""
    return [
        sum(WORD_SCORES.get(w, 0.0) for w in text.split()) / max(len(text.split()), 1)
        for text in completions
    ]


def save_tiny_model(path: Any) -> None:
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
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh folder holding the tiny model and its tokenizer (for a module's fixture)."""
    path = tmp_path_factory.mktemp("tiny_llama")
    save_tiny_model(path)
    return str(path)


TINY_RUN = {
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
"""What makes a run tiny (the settings a test does not choose itself)."""


def make_trainer(
    model_dir: str, output_dir: Any, kind: str = "grpo", reward: Any = None, **overrides: Any
) -> Any:
    """A ``GRPOTrainer`` (``kind="grpo"``) or ``RLOOTrainer`` (``"rloo"``) of a tiny run."""
    trainer_class, config_class = TRAINERS[kind]
    settings: dict[str, Any] = {"output_dir": str(output_dir), "beta": 0.04, **TINY_RUN}
    settings.update(overrides)
    return trainer_class(
        model=model_dir,
        reward_funcs=reward or word_score_reward,
        args=config_class(**settings),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
    )


class Probe(TrainerCallback):
    """Added after SafeBetaCallback: sees beta and the decision once the callback has acted."""

    def __init__(self, trainer: Any, callback: SafeBetaCallback) -> None:
        self.trainer, self.callback = trainer, callback
        self.steps: list[tuple[int, float, Any]] = []  # (global step, beta, decision)
        self.in_window: list[tuple[int, float]] = []  # (global step, beta) inside a window
        self.logged: list[tuple[int, float, Any]] = []  # (global step, beta, decision) at a log
        self.state_at_begin: dict[str, Any] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.state_at_begin = self.callback.controller.state_dict()
        self.beta_at_begin = self.trainer.beta

    def on_substep_end(self, args, state, control, **kwargs):
        self.in_window.append((state.global_step, self.trainer.beta))

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append((state.global_step, self.trainer.beta, self.callback.controller.decision))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:  # a training log
            decision = self.callback.controller.decision
            self.logged.append((state.global_step, self.trainer.beta, decision))


def attach_with_probe(trainer: Any, controller: Any = None, **kwargs: Any) -> tuple[Any, Probe]:
    callback = SafeBetaCallback.attach(trainer, controller, **kwargs)
    probe = Probe(trainer, callback)
    trainer.add_callback(probe)
    return callback, probe


def step_logs(trainer: Any) -> dict[int, dict[str, Any]]:
    """Each optimizer step's training log (``logging_steps=1``), by global step."""
    return {h["step"]: h for h in trainer.state.log_history if "loss" in h}


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
