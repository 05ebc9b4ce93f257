"""The peer of the speed benchmarks: TRL's ``GRPOTrainer`` timed on a prepared model, with the
reference trainer's speed setting (``BATCH`` completions of at most ``NEW_TOKENS`` tokens per
step, β ``BETA``): 16 prompts × 2 generations (GRPO needs groups), one optimizer step per
generation, the VADER reward. Its tokens/s are generated completion tokens over the step's wall
time (``StepClock``), so only a ratio against a trainer measured in the same run compares."""

from __future__ import annotations

import json
import statistics
import tempfile

BATCH, NEW_TOKENS, BETA = 32, 16, 0.05
"""Sequences per step, new tokens per sequence and the KL coefficient β of both the reference
trainer's speed runs and the peer."""


def measure_trl_grpo(iterations: int, warmup: int, threads: int, data_dir: str) -> dict[str, float]:
    """Median seconds per step, tokens/s and mean completion length of TRL's GRPOTrainer over
    ``iterations`` steps after ``warmup``, on ``PrepareConfig(data_dir).directory()``'s model."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from benchmarks.step_clock import StepClock
    from reference_trainer.config import PrepareConfig
    from reference_trainer.tasks.rewards import vader_reward

    directory = PrepareConfig(data_dir=data_dir).directory()
    tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer", padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(directory / "model")
    prompts = json.loads((directory / "prompts.json").read_text())
    vader = vader_reward()

    def reward(prompts: list[str], completions: list[str], **kwargs: object) -> list[float]:
        return list(vader(prompts, completions))

    torch.set_num_threads(threads)
    clock = StepClock()
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=reward,
            args=GRPOConfig(
                output_dir=output_dir,
                beta=BETA,
                max_steps=warmup + iterations,
                per_device_train_batch_size=BATCH,
                num_generations=2,
                max_completion_length=NEW_TOKENS,
                temperature=1.0,
                learning_rate=1e-3,
                use_cpu=True,
                report_to=[],
                logging_steps=1,
                save_strategy="no",
                disable_tqdm=True,
                seed=0,
            ),
            train_dataset=Dataset.from_dict({"prompt": prompts[: BATCH * (warmup + iterations)]}),
            callbacks=[clock],
        )
        trainer.train()
        lengths = trainer.state.log_history
    mean_lengths = [
        row["completions/mean_length"] for row in lengths if "completions/mean_length" in row
    ]
    timed = list(zip(clock.seconds, mean_lengths, strict=False))[warmup:]
    return {
        "total": statistics.median(seconds for seconds, _ in timed),
        "tokens_per_second": statistics.median(
            BATCH * length / seconds for seconds, length in timed
        ),
        "mean_completion_length": statistics.median(length for _, length in timed),
    }


def trl_version() -> str:
    from importlib.metadata import version

    return version("trl")
