"""Does kl-budget's result hold where users train? TRL's GRPOTrainer against a grid of fixed β.

The offline default model (0.34 M parameters, prepared by ``python -m reference_trainer
prepare``), the sentiment task: VADER as GRPO's reward (the proxy) and the task's gold reward
beside it as a second reward function of weight 0, which TRL scores and logs
(``rewards/gold/mean``) but never trains on. 100 optimizer steps of 32 completions (8 prompts × 4
generations) of at most 16 tokens, at the standard learning rate (1e-3) and at 10× (1e-2):

- ``beta-*``: plain TRL, ``GRPOConfig(beta=β)``, no callback (the user's hand-tuned β);
- ``kl-budget``: ``SafeBetaCallback.attach(trainer, "kl-budget")``, its per-step KL limit on;
- ``kl-budget-no-limit``: the same with ``limit_steps=False``.

Final gold = the mean gold of the last 10 steps. Gold regret = kl-budget's final gold − the best
fixed β's (best in hindsight, per learning rate), paired by seed, with a percentile-bootstrap CI.
Seconds per step (wall clock, generation to optimizer step) give the limit's cost as a ratio.

    python -m benchmarks.trl_frontier              # every run not yet done, then the report
    python -m benchmarks.trl_frontier --report-only

Each run writes ``runs/trl_frontier/<lr>/<variant>/seed<k>.json``; finished runs are skipped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stats import bootstrap_mean_ci
from reference_trainer.config import PrepareConfig, TrainConfig
from safecontrol._atomic import write_json_atomic

BETAS = (0.01, 0.03, 0.1, 0.3, 1.0)
VARIANTS = (*(f"beta-{b:g}" for b in BETAS), "kl-budget", "kl-budget-no-limit")
LEARNING_RATES = {"standard": 1e-3, "stress": 1e-2}
SEEDS = tuple(range(8))
STEPS, COMPLETIONS, GENERATIONS, NEW_TOKENS = 100, 32, 4, 16
FINAL_WINDOW = 10
RESAMPLES = 10_000
RUNS = Path("runs/trl_frontier")
RESULTS = Path("benchmarks/results")


def run_one(
    variant: str, lr: float, seed: int, data_dir: str, steps: int = STEPS
) -> dict[str, Any]:
    """One GRPO run; returns its per-step logs and wall-clock seconds per step."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from benchmarks.step_clock import StepClock
    from reference_trainer.tasks.scorers import scorers
    from safecontrol.integrations.trl import SafeBetaCallback

    torch.set_num_threads(1)
    directory = PrepareConfig(data_dir=data_dir).directory()
    tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer", padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(directory / "model")
    prompts = json.loads((directory / "prompts.json").read_text())
    proxy, gold = scorers(TrainConfig(task="sentiment", data_dir=data_dir), prompts)
    assert gold is not None

    def vader(prompts: list[str], completions: list[str], **kwargs: object) -> list[float]:
        return list(proxy(prompts, completions))

    def gold_reward(prompts: list[str], completions: list[str], **kwargs: object) -> list[float]:
        return list(gold(prompts, completions))

    gold_reward.__name__ = "gold"

    beta = float(variant.removeprefix("beta-")) if variant.startswith("beta-") else 0.001
    clock = StepClock()
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=[vader, gold_reward],
            args=GRPOConfig(
                output_dir=output_dir,
                beta=beta,
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
                seed=seed,
            ),
            train_dataset=Dataset.from_dict({"prompt": prompts}),
            callbacks=[clock],
        )
        if variant.startswith("kl-budget"):
            SafeBetaCallback.attach(trainer, "kl-budget", limit_steps=variant == "kl-budget")
        trainer.train()
        logs = [row for row in trainer.state.log_history if "loss" in row]
    return {"variant": variant, "lr": lr, "seed": seed, "logs": logs, "seconds": clock.seconds}


def summary(run: dict[str, Any]) -> dict[str, float]:
    """Final (last ``FINAL_WINDOW`` steps) gold, proxy and KL, and the median seconds per step."""
    tail = run["logs"][-FINAL_WINDOW:]

    def final(key: str) -> float:
        return float(np.mean([row[key] for row in tail if key in row]))

    return {
        "gold": final("rewards/gold/mean"),
        "proxy": final("rewards/vader/mean"),
        "kl": final("kl"),
        "seconds_per_step": statistics.median(run["seconds"]),
    }


def run_path(regime: str, variant: str, seed: int) -> Path:
    return RUNS / regime / variant / f"seed{seed}.json"


def sweep(data_dir: str, only: str | None) -> None:
    for seed in SEEDS:
        for regime, lr in LEARNING_RATES.items():
            for variant in VARIANTS:
                path = run_path(regime, variant, seed)
                if path.is_file() or (only and only not in f"{regime}/{variant}"):
                    continue
                started = time.perf_counter()
                result = run_one(variant, lr, seed, data_dir)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json_atomic(path, result)
                took = time.perf_counter() - started
                print(f"{regime} {variant} seed {seed}: {summary(result)} ({took:.0f} s)")


def aggregate() -> dict[str, Any]:
    """Per regime: each variant's final values by seed, and kl-budget's paired gold regret."""
    out: dict[str, Any] = {}
    for regime in LEARNING_RATES:
        cells = {}
        for variant in VARIANTS:
            runs = {
                seed: summary(json.loads(run_path(regime, variant, seed).read_text()))
                for seed in SEEDS
                if run_path(regime, variant, seed).is_file()
            }
            if runs:
                cells[variant] = runs
        grid = {v: c for v, c in cells.items() if v.startswith("beta-")}
        if not grid:
            continue
        best = max(grid, key=lambda v: np.mean([r["gold"] for r in grid[v].values()]))
        regrets = {}
        for variant in ("kl-budget", "kl-budget-no-limit"):
            seeds = sorted(set(cells.get(variant, {})) & set(grid[best]))
            diffs = np.array([cells[variant][s]["gold"] - grid[best][s]["gold"] for s in seeds])
            if len(diffs):
                regrets[variant] = {
                    "n": len(diffs),
                    "mean": float(diffs.mean()),
                    "ci": bootstrap_mean_ci(diffs, RESAMPLES),
                }
        out[regime] = {"best_beta": best, "cells": cells, "regret": regrets}
    return out


def cost_ratio(results: dict[str, Any]) -> dict[str, float]:
    """Median seconds per step of kl-budget with the limit / without it, per regime."""
    ratios = {}
    for regime, cell in results.items():
        with_limit = cell["cells"].get("kl-budget", {})
        without = cell["cells"].get("kl-budget-no-limit", {})
        seeds = sorted(set(with_limit) & set(without))
        if seeds:
            ratios[regime] = float(
                np.median(
                    [
                        with_limit[s]["seconds_per_step"] / without[s]["seconds_per_step"]
                        for s in seeds
                    ]
                )
            )
    return ratios


def render(results: dict[str, Any], heading: str = "##") -> str:
    """The results in Markdown, regimes under ``heading``-level titles (the README nests them)."""
    lines = [
        "Generated by `python -m benchmarks.trl_frontier` (see its docstring for the protocol). "
        f"{STEPS} steps × {COMPLETIONS} completions ({GENERATIONS} per prompt) of ≤ "
        f"{NEW_TOKENS} tokens; final = mean of the last {FINAL_WINDOW} steps; one thread per run.",
        "",
    ]
    for regime, cell in results.items():
        lr = LEARNING_RATES[regime]
        lines += [
            f"{heading} {regime} (lr {lr:g}); best fixed β in hindsight: {cell['best_beta']}",
            "",
            "| variant | n | final gold | final proxy | final KL (k3 per token) | s per step |",
            "|---|---|---|---|---|---|",
        ]
        for variant, runs in cell["cells"].items():
            values = list(runs.values())

            def mean(key: str, values: list[dict[str, float]] = values) -> float:
                return float(np.mean([v[key] for v in values]))

            lines.append(
                f"| {variant} | {len(values)} | {mean('gold'):.3f} | {mean('proxy'):.3f} | "
                f"{mean('kl'):.3f} | {mean('seconds_per_step'):.3f} |"
            )
        lines.append("")
        for variant, regret in cell["regret"].items():
            ci = regret["ci"]
            shown = "n < 2" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"
            lines.append(
                f"- gold regret of {variant} against {cell['best_beta']}: "
                f"{regret['mean']:+.3f} {shown} (95% CI, n = {regret['n']} paired seeds)"
            )
        lines.append("")
    ratios = cost_ratio(results)
    if ratios:
        shown = ", ".join(f"{r} {v:.2f}×" for r, v in ratios.items())
        lines += [
            "Cost of the step limit: median seconds per step of kl-budget with the limit / "
            f"without it, paired by seed: {shown} (runs two at a time on two shared cores).",
            "",
        ]
    return "\n".join(lines)


COST_VARIANTS = ("beta-0.1", "kl-budget-no-limit", "kl-budget")
COST_STEPS, COST_WARMUP = 30, 5


def measure_cost(data_dir: str, repeats: int = 3) -> dict[str, Any]:
    """Median seconds per step (after ``COST_WARMUP``) of plain TRL (fixed β), kl-budget without
    its limit and with it, at the stress learning rate where the limit binds on every step; the
    variants interleaved, one process, so that they share the machine's state alike."""
    seconds: dict[str, list[float]] = {v: [] for v in COST_VARIANTS}
    for seed in range(repeats):
        for variant in COST_VARIANTS:
            run = run_one(variant, LEARNING_RATES["stress"], seed, data_dir, COST_STEPS)
            seconds[variant] += run["seconds"][COST_WARMUP:]
    median = {v: statistics.median(values) for v, values in seconds.items()}
    return {
        "steps_measured": len(seconds["kl-budget"]),
        "seconds_per_step": median,
        "limit_over_plain_trl": median["kl-budget"] / median["beta-0.1"],
        "limit_over_no_limit": median["kl-budget"] / median["kl-budget-no-limit"],
    }


def render_cost(cost: dict[str, Any]) -> str:
    s = cost["seconds_per_step"]
    return (
        f"Cost of the step limit, measured apart (`--cost`: lr {LEARNING_RATES['stress']:g}, "
        f"{cost['steps_measured']} steps per variant after a {COST_WARMUP}-step warm-up, one "
        f"process, the variants interleaved): median seconds per step plain TRL (β 0.1) "
        f"{s['beta-0.1']:.3f}, kl-budget without its limit {s['kl-budget-no-limit']:.3f}, with "
        f"it {s['kl-budget']:.3f}: **{cost['limit_over_plain_trl']:.2f}× plain TRL**, "
        f"{cost['limit_over_no_limit']:.2f}× kl-budget without the limit."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trl_frontier", description=__doc__)
    parser.add_argument("--data-dir", default=".data")
    parser.add_argument("--only", help="run only cells whose 'regime/variant' contains this")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--cost", action="store_true", help="measure the step limit's cost per step (quiet cores)"
    )
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.cost:
        cost = measure_cost(args.data_dir)
        write_json_atomic(RESULTS / "trl_step_limit_cost.json", cost, indent=1)
    elif not args.report_only:
        sweep(args.data_dir, args.only)
    results = aggregate()
    write_json_atomic(RESULTS / "trl_frontier.json", results, indent=1)
    text = TITLE + "\n\n" + render_with_cost(results, RESULTS)
    (RESULTS / "trl_frontier.md").write_text(text)
    print(text)
    return 0


TITLE = "# kl-budget in TRL's GRPOTrainer against fixed β (sentiment, offline default model)"


def render_with_cost(results: dict[str, Any], results_dir: Path, heading: str = "##") -> str:
    """``render`` and, where it was measured, the step limit's cost (the README's TRL block)."""
    text = render(results, heading)
    cost_path = results_dir / "trl_step_limit_cost.json"
    if cost_path.is_file():
        text += "\n" + render_cost(json.loads(cost_path.read_text())) + "\n"
    return text + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
