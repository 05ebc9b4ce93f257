"""One GRPO run of TRL's trainer on the offline default model, and the step limit's cost.

torch, transformers, datasets and TRL are imported inside the functions: the aggregate, the
report and the README read the results without them.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

from benchmarks.runner import RunSpec
from benchmarks.trl_frontier.plan import (
    COMPLETIONS,
    COST_REGIME,
    COST_REPEATS,
    COST_STEPS,
    COST_VARIANTS,
    COST_WARMUP,
    GENERATIONS,
    LEARNING_RATES,
    LIMITED,
    NEW_TOKENS,
    STEPS,
    grpo_beta,
)
from reference_trainer.config import PrepareConfig, TrainConfig


def run_one(spec: RunSpec, data_dir: str, steps: int = STEPS) -> dict[str, Any]:
    """One GRPO run: its per-step logs (TRL's ``log_history`` rows of the optimizer steps) and
    wall-clock seconds per step (generation to optimizer step)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from benchmarks.step_clock import StepClock
    from reference_trainer.tasks.scorers import scorers
    from safecontrol.integrations.trl import SafeBetaCallback

    torch.set_num_threads(1)
    lr = LEARNING_RATES[spec.regime]
    directory = PrepareConfig(data_dir=data_dir).directory()
    tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer", padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(directory / "model")
    prompts = json.loads((directory / "prompts.json").read_text())
    proxy, gold = scorers(TrainConfig(task="sentiment", data_dir=data_dir), prompts)
    assert gold is not None

    def vader(prompts: list[str], completions: list[str], **kwargs: object) -> list[float | None]:
        return list(proxy(prompts, completions))

    def gold_reward(
        prompts: list[str], completions: list[str], **kwargs: object
    ) -> list[float | None]:
        return list(gold(prompts, completions))

    gold_reward.__name__ = "gold"  # TRL logs it as rewards/gold/mean

    clock = StepClock()
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=[vader, gold_reward],
            args=GRPOConfig(
                output_dir=output_dir,
                beta=grpo_beta(spec.variant),
                reward_weights=[1.0, 0.0],
                max_steps=steps,
                per_device_train_batch_size=COMPLETIONS,
                num_generations=GENERATIONS,
                max_completion_length=NEW_TOKENS,
                temperature=1.0,
                learning_rate=lr,
                use_cpu=True,
                report_to=[],
                logging_steps=1,
                save_strategy="no",
                disable_tqdm=True,
                seed=spec.seed,
            ),
            train_dataset=Dataset.from_dict({"prompt": prompts}),
            callbacks=[clock],
        )
        if spec.variant.startswith(LIMITED):
            SafeBetaCallback.attach(trainer, "kl-budget", limit_steps=spec.variant == LIMITED)
        trainer.train()
        logs = [row for row in trainer.state.log_history if "loss" in row]
    return {
        "variant": spec.variant,
        "lr": lr,
        "seed": spec.seed,
        "logs": logs,
        "seconds": clock.seconds,
    }


def measure_step_seconds(data_dir: str, repeats: int = COST_REPEATS) -> dict[str, list[float]]:
    """Seconds per step (after ``COST_WARMUP``) of each of ``COST_VARIANTS`` at the stress
    learning rate, where the limit binds on every step; the variants interleaved, one process,
    so that they share the machine's state alike."""
    seconds: dict[str, list[float]] = {v: [] for v in COST_VARIANTS}
    for seed in range(repeats):
        for variant in COST_VARIANTS:
            run = run_one(RunSpec(COST_REGIME, variant, seed), data_dir, COST_STEPS)
            seconds[variant] += run["seconds"][COST_WARMUP:]
    return seconds
