"""Seconds per PPO iteration of the reference trainer, split by stage, beside TRL's GRPOTrainer.

The default 0.34 M-parameter offline model, 32 prompts × 16 new tokens, 2 threads: PPO with a fixed
β (``--algo fixed-kl``), SAFE, kl-budget and kl-budget without its preview step limit, measured
side by side (their iterations interleaved, so every controller sees the same machine load); median
over ``--iterations`` after ``--warmup``. Each method's cost is its iteration over PPO's, both in
total and in the training step alone (forward + controller + update: generation time differs only
because the policies sample different lengths). Goals: ≤ 0.45 s per iteration, controller share <
0.1%, a method's training step ≤ 1.05 × PPO's. The peer: TRL's ``GRPOTrainer``
(``--peer``, the default) on the same model, tokenizer, prompts, VADER reward, threads, β and 32
completions of at most 16 tokens per step (16 prompts × 2 generations: GRPO needs groups), one
optimizer step per generation; its tokens/s are generated completion tokens over the step's wall
time, measured in the same run, so the ratio of the two is what compares (not the absolute times).
Writes benchmarks/results/trainer_speed.{json,md}.

    python -m benchmarks.trainer_speed            # prepares the default first if needed
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from reference_trainer.config import PrepareConfig, TrainConfig
from reference_trainer.prepare.default_model import prepare
from reference_trainer.train import Trainer

STAGES = ("generate", "score", "forward", "controller", "update")
ALGOS: dict[str, tuple[str, dict[str, Any]]] = {
    "ppo": ("fixed-kl", {}),
    "safe": ("safe", {}),
    "kl-budget": ("kl-budget", {}),
    "kl-budget-no-preview": ("kl-budget", {"preview_steps": False}),
}
"""Result label → the trainer's controller and other settings (the stability report reads the
"ppo" and "safe" labels)."""
BATCH, NEW_TOKENS, BETA = 32, 16, 0.05
STEP_STAGES = ("forward", "controller", "update")
"""The training step: what a KL method changes (generation and scoring it does not)."""


def measure(iterations: int, warmup: int, threads: int, data_dir: str) -> dict[str, dict]:
    """Every algo's median seconds per stage, their iterations interleaved round-robin."""
    with tempfile.TemporaryDirectory() as runs:
        trainers = {
            label: Trainer(
                TrainConfig(
                    algo=algo,
                    run_dir=str(Path(runs) / label),
                    batch_size=BATCH,
                    max_new_tokens=NEW_TOKENS,
                    threads=threads,
                    data_dir=data_dir,
                    **settings,
                )
            )
            for label, (algo, settings) in ALGOS.items()
        }
        rows: dict[str, list[dict]] = {label: [] for label in ALGOS}
        for i in range(warmup + iterations):
            for label, trainer in trainers.items():
                row = trainer.iteration()
                if i >= warmup:
                    rows[label].append(row)
    return {label: summarise(r) for label, r in rows.items()}


def summarise(rows: list[dict]) -> dict[str, float]:
    result = {stage: statistics.median(r[f"seconds_{stage}"] for r in rows) for stage in STAGES}
    result["total"] = statistics.median(r["seconds_total"] for r in rows)
    result["training_step"] = statistics.median(
        sum(r[f"seconds_{stage}"] for stage in STEP_STAGES) for r in rows
    )
    result["controller_share"] = statistics.median(
        r["seconds_controller"] / r["seconds_total"] for r in rows
    )
    result["tokens_per_second"] = statistics.median(r["tokens_per_second"] for r in rows)
    return result


def measure_trl_grpo(iterations: int, warmup: int, threads: int, data_dir: str) -> dict:
    """Tokens/s of TRL's GRPOTrainer on the prepared default (see the module doc)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from benchmarks.step_clock import StepClock
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=".data")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--no-peer", action="store_true", help="skip TRL's GRPOTrainer")
    args = parser.parse_args()

    prepare_config = PrepareConfig(data_dir=args.data_dir, threads=args.threads)
    prepare(prepare_config, progress=False)
    results = measure(args.iterations, args.warmup, args.threads, args.data_dir)
    for r in results.values():
        r["total_over_ppo"] = r["total"] / results["ppo"]["total"]
        r["training_step_over_ppo"] = r["training_step"] / results["ppo"]["training_step"]
    peer = (
        None
        if args.no_peer
        else measure_trl_grpo(args.iterations, args.warmup, args.threads, args.data_dir)
    )
    meta = {
        "command": " ".join(["python -m benchmarks.trainer_speed", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "model": "offline default (PrepareConfig defaults)",
        "iterations": args.iterations,
        "warmup": args.warmup,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ratio = (
        None if peer is None else results["ppo"]["tokens_per_second"] / peer["tokens_per_second"]
    )
    (out / "trainer_speed.json").write_text(
        json.dumps(
            {"meta": meta, "results": results, "peer_trl_grpo": peer, "ppo_over_peer": ratio},
            indent=2,
        )
    )
    lines = [
        "# Reference trainer: seconds per PPO iteration (median)",
        "",
        f"Command: `{meta['command']}` ({meta['date']}, {meta['machine']}, torch {meta['torch']}).",
        "32 prompts × 16 new tokens, 2 PPO epochs, the offline default model.",
        "",
        "| algo | " + " | ".join(STAGES) + " | total | × PPO | training step | × PPO | "
        "controller share | tokens/s |",
        "|---|" + "---|" * (len(STAGES) + 6),
    ]
    for algo, r in results.items():
        stages = " | ".join(f"{r[s]:.4f}" for s in STAGES)
        lines.append(
            f"| {algo} | {stages} | {r['total']:.3f} | {r['total_over_ppo']:.3f} | "
            f"{r['training_step']:.3f} | {r['training_step_over_ppo']:.3f} | "
            f"{100 * r['controller_share']:.3f}% | {r['tokens_per_second']:.0f} |"
        )
    if peer is not None:
        lines += [
            "",
            f"Peer, same run: TRL {trl_version()} GRPOTrainer {peer['total']:.3f} s per step, "
            f"{peer['tokens_per_second']:.0f} tokens/s (mean completion "
            f"{peer['mean_completion_length']:.1f} tokens); reference-trainer PPO / GRPO tokens/s "
            f"= {ratio:.2f}.",
        ]
    (out / "trainer_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def trl_version() -> str:
    from importlib.metadata import version

    return version("trl")


if __name__ == "__main__":
    main()
