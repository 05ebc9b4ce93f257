"""Seconds per PPO iteration of the reference trainer, split by stage.

The default 0.34 M-parameter offline model, 32 prompts × 16 new tokens, 2 threads, ``--algo ppo``
(and SAFE for comparison); median over ``--iterations`` after ``--warmup``. Goal: ≤ 0.45 s per
iteration, controller share < 0.1%. Writes benchmarks/results/trainer_speed.{json,md}.

    python benchmarks/trainer_speed.py            # prepares the default first if needed
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

import torch

from reference_trainer.config import PrepareConfig, TrainConfig
from reference_trainer.prepare import prepare
from reference_trainer.train import Trainer

STAGES = ("generate", "score", "forward", "controller", "update")


def measure(algo: str, iterations: int, warmup: int, threads: int, data_dir: str) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        config = TrainConfig(
            algo=algo,
            run_dir=run_dir,
            batch_size=32,
            max_new_tokens=16,
            threads=threads,
            data_dir=data_dir,
        )
        trainer = Trainer(config)
        for _ in range(warmup):
            trainer.iteration()
        rows = [trainer.iteration() for _ in range(iterations)]
    result = {stage: statistics.median(r[f"seconds_{stage}"] for r in rows) for stage in STAGES}
    result["total"] = statistics.median(r["seconds_total"] for r in rows)
    result["controller_share"] = statistics.median(
        r["seconds_controller"] / r["seconds_total"] for r in rows
    )
    result["tokens_per_second"] = statistics.median(r["tokens_per_second"] for r in rows)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=".data")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()

    prepare_config = PrepareConfig(data_dir=args.data_dir, threads=args.threads)
    prepare(prepare_config, progress=False)
    results = {
        algo: measure(algo, args.iterations, args.warmup, args.threads, args.data_dir)
        for algo in ("ppo", "safe")
    }
    meta = {
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "model": "offline default (PrepareConfig defaults)",
        "iterations": args.iterations,
        "warmup": args.warmup,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "trainer_speed.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2)
    )
    lines = [
        "# Reference trainer: seconds per PPO iteration (median)",
        "",
        f"Command: `{meta['command']}` ({meta['date']}, {meta['machine']}, torch {meta['torch']}).",
        "32 prompts × 16 new tokens, 2 PPO epochs, the offline default model.",
        "",
        "| algo | " + " | ".join(STAGES) + " | total | controller share | tokens/s |",
        "|---|" + "---|" * (len(STAGES) + 3),
    ]
    for algo, r in results.items():
        stages = " | ".join(f"{r[s]:.4f}" for s in STAGES)
        lines.append(
            f"| {algo} | {stages} | {r['total']:.3f} | {100 * r['controller_share']:.3f}%"
            f" | {r['tokens_per_second']:.0f} |"
        )
    (out / "trainer_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
