"""Does steering the KL budget beat the best fixed β on held-out gold, at 100 and 300 iterations?

Every run trains 300 iterations and is evaluated every 50 on 512 held-out prompts with the same
sampling noise each time (``--set eval_every``): the evaluations at iterations 100 and 300 are the
two horizons (a run is deterministic, so its evaluation at 100 is what a 100-iteration run would
end with). Variants: fixed β around each task's best (the frontier sweep's best β was 0.1–0.3 at
the standard learning rate), ``kl-budget`` at its defaults, and ``kl-budget`` with its budget
steered by the proxy's gain per nat of KL (``safecontrol/budget_kl.py``, ``budget_growth``) at
two gain floors. ``steering_report.py`` writes ``benchmarks/results/steering.{json,md}``: per task,
learning rate and horizon, the best fixed β in hindsight (by mean held-out gold), each variant's
gold regret against it over paired seeds with a bootstrap CI, and the gold's drawdown from its
best evaluation.

    python -m benchmarks.steering --seeds 2 --only '*/standard/*'    # the pilot that ran
    python -m benchmarks.steering                                     # 3 tasks x 2 lr x 8 seeds

Sizes: the offline default (0.34 M parameters), 32 prompts × 16 tokens, one thread per run, two
runs side by side; a run takes ~3 minutes (300 iterations + 6 evaluations of 512 prompts).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.frontier import REGIMES, RunSpec, beta_name
from benchmarks.runner import checked_workers, run_sweep, sweep_arguments
from reference_trainer.config import TASKS

BETAS = (0.03, 0.1, 0.3, 1.0)
STEERED = {
    # Fixed before the pilot: growth of 2% per batch (a doubling in ~35 batches) up to the
    # initial entropy, while the proxy's gain per nat over the last 10 batches stays above this
    # share of its first window's gain.
    "kl-budget-steer-0.5": {"budget_growth": 0.02, "gain_floor": 0.5},
    "kl-budget-steer-0.25": {"budget_growth": 0.02, "gain_floor": 0.25},
}
VARIANTS: dict[str, dict[str, Any]] = {
    **{beta_name(b): {"algo": "fixed-kl", "controller_settings": {"coef": b}} for b in BETAS},
    "kl-budget": {"algo": "kl-budget"},
    **{
        name: {"algo": "kl-budget", "controller_settings": settings}
        for name, settings in STEERED.items()
    },
}
HORIZONS = (100, 300)
EVAL_EVERY = 50


@dataclass(frozen=True)
class Plan:
    seeds: int = 8
    steps: int = max(HORIZONS)
    eval_every: int = EVAL_EVERY
    eval_prompts: int = 512
    horizons: tuple[int, ...] = HORIZONS
    train: dict[str, Any] | None = None
    prepare: dict[str, Any] | None = None


FULL = Plan()
QUICK = Plan(
    seeds=1,
    steps=6,
    eval_every=3,
    eval_prompts=16,
    horizons=(3, 6),
    train={"batch_size": 8, "max_new_tokens": 8, "min_new_tokens": 2, "checkpoint_every": 5},
    prepare={"sft_steps": 30, "n_prompts": 64, "vocab_size": 512, "n_layer": 2, "n_embd": 32},
)


def run_specs(plan: Plan) -> list[RunSpec]:
    """Seed-major: a sweep stopped early has the same seeds of every variant of every cell."""
    return [
        RunSpec(task, regime, variant, seed)
        for seed in range(plan.seeds)
        for task in TASKS
        for regime in REGIMES
        for variant in VARIANTS
    ]


def train_fields(
    spec: RunSpec, plan: Plan, runs_dir: Path, data_dir: str, model: str
) -> dict[str, Any]:
    return {
        **(plan.train or {}),
        **REGIMES[spec.regime],
        **VARIANTS[spec.variant],
        "task": spec.task,
        "seed": spec.seed,
        "steps": plan.steps,
        "eval_every": plan.eval_every,
        "eval_prompts": plan.eval_prompts,
        "threads": 1,
        "data_dir": data_dir,
        "model": model,
        "run_dir": str(runs_dir / spec.name),
    }


def main(argv: list[str] | None = None) -> int:
    parser = sweep_arguments(__doc__ or "", "runs/steering", "sentiment/standard/*")
    parser.add_argument("--seeds", type=int, default=0, help="train seeds below this (0: 8)")
    args = parser.parse_args(argv)
    checked_workers(parser, args)
    if args.seeds < 0:
        parser.error(f"--seeds must be >= 0, got {args.seeds}")
    plan = QUICK if args.quick else FULL
    if args.seeds:
        plan = replace(plan, seeds=min(plan.seeds, args.seeds))
    runs_dir = Path(args.runs)
    from benchmarks.steering_report import write_report

    try:
        if not args.report_only:
            run_sweep(
                run_specs(plan),
                lambda spec, model: train_fields(spec, plan, runs_dir, args.data_dir, model),
                plan.prepare or {},
                args,
            )
        print(write_report(runs_dir, Path(args.out), plan.horizons, quick=args.quick))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
