"""Every controller against the reward–KL frontier of tuned fixed β, judged by gold.

For each offline task (``reference_trainer/tasks/offline.py``: sentiment, reward-model, topic; a
proxy the policy trains on and a gold reward it never sees) and both learning rates, the reference
trainer runs PPO with a fixed β on a log grid from "hacks the proxy" to "barely moves", β = 0 with
an entropy controller (the GRPO/DAPO-style recipe), every registered controller at its defaults and
at two more KL budgets, and SAFE with the published code's behaviour (SPEC §7). Runs live in
``--runs/<task>/<regime>/<variant>/seed<k>``; finished ones are skipped, interrupted ones resume
(``benchmarks/runner.py``), and ``--only`` trains a part. ``frontier_report.py`` turns them into
``benchmarks/results/frontier.{json,md}`` and plots.

Sizes (fixed before the sweep, never per task): the 0.34 M-parameter offline default, 100 PPO
iterations of 32 prompts × 16 tokens, one thread per run, two runs side by side. Measured: a run
takes ~80 s (median 78 s of training steps plus start-up), ~45 s of sweep time with two side by
side. 3 seeds of every variant (25, with kl-budget's two ablations) are 450 runs (~5.6 h); 5 more
seeds of the headline variants (the β grid, β = 0 + entropy, kl-budget, SAFE and SAFE-published)
another 300 (~3.7 h): the full plan is ~9.4 h of two cores, more than the ~4 h the issue asked
for; it runs in parts of under 2 hours::

    python -m benchmarks.frontier --seeds 3 --only 'sentiment/*'      # ~1.7 h each: seeds 0-2
    python -m benchmarks.frontier --seeds 3 --only 'reward-model/*'   # of one task
    python -m benchmarks.frontier --seeds 3 --only 'topic/*'
    python -m benchmarks.frontier --only 'sentiment/*'   # ~1.3 h each: the headline's seeds 3-7
    python -m benchmarks.frontier --only 'reward-model/*'
    python -m benchmarks.frontier --only 'topic/*'       # then the report of everything
    python -m benchmarks.frontier --quick --runs /tmp/q --out /tmp/q-results   # CI smoke
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.runner import checked_workers, run_sweep, sweep_arguments
from reference_trainer.recipes import RECIPES

TASKS = ("sentiment", "reward-model", "topic")
REGIMES: dict[str, dict[str, Any]] = {"standard": {"lr": 1e-3}, "stress": {"lr": 1e-2}}
BETAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
"""Fixed β, per token (the grid spans "hacks the proxy" to "barely moves" on every task)."""
FINE_BETAS = (0.055, 0.17, 0.55)
"""The standard lr's grid refined where the best β lies (0.1 to 0.3 on every task): the
geometric midpoints, so that neighbours differ by a factor ≈ √3 (a user refines around the best
point of a coarse grid)."""
HIGH_BETAS = (1.7, 3.0, 5.5, 10.0)
"""Above the coarse grid, at the stress lr only (√3 apart up to 10), where β = 1 still runs away."""
TRUST_REGION_BETAS = (0.03, 0.1, 0.3, 1.0)
"""Fixed β with the trainer's per-step KL limit (``max_step_kl``): trust-region PPO."""
TRUST_REGION_KL = 0.005
"""Nats per token per optimizer step: kl-budget's own limit on this model (0.001 × its initial
entropy of about 5.2 nats), so that the trust-region baseline has the same limit."""
STRESS_ONLY = tuple(f"beta-{b:g}" for b in HIGH_BETAS)
STANDARD_ONLY = tuple(f"beta-{b:g}" for b in FINE_BETAS)
BUDGETS = (0.1, 1.0)
"""KL budgets in nats per token given to every budgeted controller beside its default."""
TOKENS_PER_SEQUENCE = 16
"""max_new_tokens: a per-token budget × this is a per-sequence controller's target."""
ENTROPY_TARGET = 2.6
"""β = 0 + entropy control: half the SFT policy's initial per-token entropy (5.2 nats)."""


def beta_name(beta: float) -> str:
    return f"beta-{beta:g}"


def _variants() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {
        beta_name(b): {"algo": "fixed-kl", "controller_settings": {"coef": b}} for b in BETAS
    }
    for b in (*FINE_BETAS, *HIGH_BETAS):
        out[beta_name(b)] = {"algo": "fixed-kl", "controller_settings": {"coef": b}}
    for b in TRUST_REGION_BETAS:
        # The same limit found as kl-budget finds it: predicted, measured at the next epoch.
        out[f"tr-{beta_name(b)}"] = {
            "algo": "fixed-kl",
            "controller_settings": {"coef": b},
            "max_step_kl": TRUST_REGION_KL,
            "step_limit": "predicted",
        }
    out["beta0-entropy"] = {
        "algo": "fixed-kl",
        "controller_settings": {"coef": 0.0},
        "entropy_target": ENTROPY_TARGET,
    }
    for name in ("adaptive-kl", "pid-lagrangian-kl", "schulman-kl", "kl-budget"):
        out[name] = {"algo": name}
        for budget in BUDGETS:
            target = budget * TOKENS_PER_SEQUENCE if name == "adaptive-kl" else budget
            key = "budget" if name == "kl-budget" else "target"
            out[f"{name}-b{budget:g}"] = {"algo": name, "controller_settings": {key: target}}
    # kl-budget's ablations: its step limit and its entropy floor, each removed.
    out["kl-budget-no-preview"] = {"algo": "kl-budget", "preview_steps": False}
    out["kl-budget-no-entropy"] = {
        "algo": "kl-budget",
        "controller_settings": {"max_entropy_drop": None},
    }
    out["safe"] = {"algo": "safe"}
    for budget in BUDGETS:
        # SAFE's budget is its threshold: the published range (0.1, 0.6) around a base of 0.3,
        # scaled to the budget.
        settings = {"threshold_base": budget, "threshold_limits": [budget / 3, 2 * budget]}
        out[f"safe-b{budget:g}"] = {"algo": "safe", "controller_settings": settings}
    # The trainer's safe-published recipe (the paper's code), spelt as safe with its fields so
    # that the runs of the first sweeps, saved that way, still count.
    published = RECIPES["safe-published"]
    out["safe-published"] = {
        "algo": published.controller,
        "critic_heads": published.critic_heads,
        "penalty_mode": published.penalty_mode,
        "preview_steps": published.preview_steps,
    }
    return out


VARIANTS = _variants()
HEADLINE = (
    *(beta_name(b) for b in (*BETAS, *FINE_BETAS, *HIGH_BETAS)),
    *(f"tr-{beta_name(b)}" for b in TRUST_REGION_BETAS),
    "beta0-entropy",
    "kl-budget",
    "safe",
    "safe-published",
)
"""Variants run on all ``Plan.headline_seeds`` paired seeds: the β grid (the best β in hindsight
is chosen from it) and the controllers the report's headline compares with it (``kl-budget`` is
the controller that needs no β)."""


@dataclass(frozen=True)
class Plan:
    tasks: tuple[str, ...] = TASKS
    variants: tuple[str, ...] = tuple(VARIANTS)
    headline: tuple[str, ...] = HEADLINE
    seeds: int = 3
    headline_seeds: int = 8
    steps: int = 100
    threads: int = 1
    train: dict[str, Any] = field(default_factory=dict)
    prepare: dict[str, Any] = field(default_factory=dict)


FULL = Plan()
QUICK = Plan(
    variants=(beta_name(0.01), beta_name(0.3), "beta0-entropy", "kl-budget", "safe"),
    headline=(beta_name(0.01), beta_name(0.3), "kl-budget", "safe"),
    seeds=1,
    headline_seeds=1,
    steps=6,
    train={"batch_size": 8, "max_new_tokens": 8, "min_new_tokens": 2, "checkpoint_every": 5},
    prepare={"sft_steps": 30, "n_prompts": 64, "vocab_size": 512, "n_layer": 2, "n_embd": 32},
)


@dataclass(frozen=True)
class RunSpec:
    task: str
    regime: str
    variant: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.task}/{self.regime}/{self.variant}/seed{self.seed}"


def run_specs(plan: Plan) -> list[RunSpec]:
    """Seed-major: a sweep stopped early has the same seeds of every variant of every cell."""
    specs = []
    for seed in range(max(plan.seeds, plan.headline_seeds)):
        for task in plan.tasks:
            for regime in REGIMES:
                for variant in plan.variants:
                    if variant in (STANDARD_ONLY if regime == "stress" else STRESS_ONLY):
                        continue
                    limit = plan.headline_seeds if variant in plan.headline else plan.seeds
                    if seed < limit:
                        specs.append(RunSpec(task, regime, variant, seed))
    return specs


def train_fields(
    spec: RunSpec, plan: Plan, runs_dir: Path, data_dir: str, model: str
) -> dict[str, Any]:
    return {
        **plan.train,
        **REGIMES[spec.regime],
        **VARIANTS[spec.variant],
        "task": spec.task,
        "seed": spec.seed,
        "steps": plan.steps,
        "threads": plan.threads,
        "data_dir": data_dir,
        "model": model,
        "run_dir": str(runs_dir / spec.name),
    }


def main(argv: list[str] | None = None) -> int:
    parser = sweep_arguments(__doc__ or "", "runs/frontier", "topic/stress/*")
    parser.add_argument(
        "--seeds", type=int, default=0, help="train only seeds below this (0: the plan's)"
    )
    args = parser.parse_args(argv)
    checked_workers(parser, args)
    if args.seeds < 0:
        parser.error(f"--seeds must be >= 0, got {args.seeds}")
    plan = QUICK if args.quick else FULL
    if args.seeds:
        plan = replace(
            plan,
            seeds=min(plan.seeds, args.seeds),
            headline_seeds=min(plan.headline_seeds, args.seeds),
        )
    runs_dir = Path(args.runs)
    from benchmarks.frontier_report import write_report

    try:
        if not args.report_only:
            run_sweep(
                run_specs(plan),
                lambda spec, model: train_fields(spec, plan, runs_dir, args.data_dir, model),
                plan.prepare,
                args,
            )
        print(write_report(runs_dir, Path(args.out), quick=args.quick))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
