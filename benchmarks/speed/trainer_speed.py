"""Seconds per PPO iteration of the reference trainer, split by stage, beside TRL's GRPOTrainer.

The default 0.34 M-parameter offline model, 32 prompts × 16 new tokens, 2 threads: PPO with a fixed
β (``--algo fixed-kl``), SAFE, kl-budget and kl-budget without its preview step limit, measured
side by side (their iterations interleaved, so every controller sees the same machine load); median
over ``--iterations`` after ``--warmup``. Each method's cost is its iteration over PPO's, both in
total and in the training step alone (forward + controller + update: generation time differs only
because the policies sample different lengths). Goals: ≤ 0.45 s per iteration, controller share <
0.1%, a method's training step ≤ 1.05 × PPO's. The peer: TRL's ``GRPOTrainer``
(``--peer``, the default) on the same model, tokenizer, prompts, VADER reward, threads, β and 32
completions of at most 16 tokens per step (``benchmarks.speed.trl_peer``), measured in the same
run, so the ratio of the two tokens/s is what compares (not the absolute times).
Writes benchmarks/results/trainer_speed.{json,md}.

    python -m benchmarks.speed.trainer_speed            # prepares the default first if needed
    python -m benchmarks.speed.trainer_speed --render   # the md again from the json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.speed.trl_peer import BATCH, NEW_TOKENS, measure_trl_grpo, trl_version

COMMAND = "python -m benchmarks.speed.trainer_speed"
STAGES = ("generate", "score", "forward", "controller", "update")
ALGOS: dict[str, tuple[str, dict[str, Any]]] = {
    "ppo": ("fixed-kl", {}),
    "safe": ("safe", {}),
    "kl-budget": ("kl-budget", {}),
    "kl-budget-no-preview": ("kl-budget", {"preview_steps": False}),
}
"""Result label → the trainer's controller and other settings (the stability report and the
overhead benchmark read the "ppo" and "safe" labels' ``total``)."""
STEP_STAGES = ("forward", "controller", "update")
"""The training step: what a KL method changes (generation and scoring it does not)."""


@dataclass(frozen=True)
class AlgoSpeed:
    """One algo's medians over the timed iterations (seconds, unless named otherwise), and its
    cost against PPO's measured in the same run (``trainer_speed.json``'s ``results`` values)."""

    generate: float
    score: float
    forward: float
    controller: float
    update: float
    total: float
    training_step: float
    """forward + controller + update (the median of their per-iteration sum)."""
    controller_share: float
    """The controller's seconds over the iteration's (median of the per-iteration ratio)."""
    tokens_per_second: float
    total_over_ppo: float
    training_step_over_ppo: float


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    """An algo's medians of its iterations' metrics (without the ratios against PPO)."""
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


def against_ppo(by_algo: dict[str, dict[str, float]]) -> dict[str, AlgoSpeed]:
    ppo = by_algo["ppo"]
    return {
        label: AlgoSpeed(
            **m,
            total_over_ppo=m["total"] / ppo["total"],
            training_step_over_ppo=m["training_step"] / ppo["training_step"],
        )
        for label, m in by_algo.items()
    }


def measure(iterations: int, warmup: int, threads: int, data_dir: str) -> dict[str, AlgoSpeed]:
    """Every algo's medians, their iterations interleaved round-robin."""
    from reference_trainer.config import TrainConfig
    from reference_trainer.train import Trainer

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
        rows: dict[str, list[dict[str, float]]] = {label: [] for label in ALGOS}
        for i in range(warmup + iterations):
            for label, trainer in trainers.items():
                row = trainer.iteration()
                if i >= warmup:
                    rows[label].append(row)
    return against_ppo({label: medians(r) for label, r in rows.items()})


def markdown(report: dict[str, Any]) -> str:
    """``trainer_speed.md`` from ``trainer_speed.json``'s content."""
    meta, peer, ratio = report["meta"], report["peer_trl_grpo"], report["ppo_over_peer"]
    results = {label: AlgoSpeed(**r) for label, r in report["results"].items()}
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
        stages = " | ".join(f"{getattr(r, s):.4f}" for s in STAGES)
        lines.append(
            f"| {algo} | {stages} | {r.total:.3f} | {r.total_over_ppo:.3f} | "
            f"{r.training_step:.3f} | {r.training_step_over_ppo:.3f} | "
            f"{100 * r.controller_share:.3f}% | {r.tokens_per_second:.0f} |"
        )
    if peer is not None:
        # Runs before the TRL version was stored in the meta name the installed one.
        trl = meta.get("trl") or trl_version()
        lines += [
            "",
            f"Peer, same run: TRL {trl} GRPOTrainer {peer['total']:.3f} s per step, "
            f"{peer['tokens_per_second']:.0f} tokens/s (mean completion "
            f"{peer['mean_completion_length']:.1f} tokens); reference-trainer PPO / GRPO tokens/s "
            f"= {ratio:.2f}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=".data")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--no-peer", action="store_true", help="skip TRL's GRPOTrainer")
    parser.add_argument(
        "--render", action="store_true", help="rewrite the md from --out's json only"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.render:
        report = json.loads((out / "trainer_speed.json").read_text())
        (out / "trainer_speed.md").write_text(markdown(report))
        print(markdown(report))
        return

    import torch

    from reference_trainer.config import PrepareConfig
    from reference_trainer.prepare.default_model import prepare

    prepare(PrepareConfig(data_dir=args.data_dir, threads=args.threads), progress=False)
    results = measure(args.iterations, args.warmup, args.threads, args.data_dir)
    peer = (
        None
        if args.no_peer
        else measure_trl_grpo(args.iterations, args.warmup, args.threads, args.data_dir)
    )
    meta = {
        "command": " ".join([COMMAND, *(sys.argv[1:] if argv is None else argv)]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "trl": None if peer is None else trl_version(),
        "model": "offline default (PrepareConfig defaults)",
        "iterations": args.iterations,
        "warmup": args.warmup,
    }
    ratio = None if peer is None else results["ppo"].tokens_per_second / peer["tokens_per_second"]
    report = {
        "meta": meta,
        "results": {label: asdict(r) for label, r in results.items()},
        "peer_trl_grpo": peer,
        "ppo_over_peer": ratio,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "trainer_speed.json").write_text(json.dumps(report, indent=2))
    (out / "trainer_speed.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
