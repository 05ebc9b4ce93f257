"""SAFE against PPO across paired seeds, in two regimes, with SAFE's ablations.

Every run is the reference trainer on the offline default (SPEC §6), one directory per
(regime, variant, seed) under ``--runs``. A finished run holds ``done.json``; it is skipped, an
interrupted one resumes from its checkpoint, so the sweep can be stopped, resumed and run in parts
(``--only stress/safe``). Afterwards the runs are aggregated (``stability_report.py``) into
``benchmarks/results/stability.{json,md}`` and PNG plots.

Regimes (learning rate of the policy, KL coefficient 0.05, SPEC §6):
- standard, lr 1e-3: PPO learns steadily (reward 0.05 → ~0.8 in 150 iterations);
- stress, lr 1e-2: PPO's per-token KL runs to 4–8, more than ten times its 0.3 target.

Variants: the four algorithms of the trainer in both regimes (8 seeds: fewer cannot reach p < 0.05
in a two-sided Wilcoxon signed-rank test), and in the stress regime SAFE's ablations (5 seeds):
no entropy gate, no PID (fixed threshold), no phase detector, a single critic, and the published
code's behaviour (the penalty as a detached float, no preview step scaling).

    python benchmarks/stability.py                 # full sweep (~1 hour on 2 cores), then report
    python benchmarks/stability.py --quick --runs /tmp/quick --out /tmp/quick-results
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.runner import checked_workers, run_sweep, sweep_arguments

REGIMES: dict[str, dict[str, Any]] = {
    "standard": {"lr": 1e-3},
    "stress": {"lr": 1e-2},
}
ALGORITHMS: dict[str, dict[str, Any]] = {
    "ppo": {"algo": "fixed-kl", "controller_settings": {"coef": 0.05}},
    # Ziegler's controller as the published sweep ran it: β0 = 0.05, target 0.3 nats per token ×
    # 16 tokens per sequence.
    "ppo-adaptive-kl": {
        "algo": "adaptive-kl",
        "controller_settings": {"init_coef": 0.05, "target": 4.8, "horizon": 10000},
    },
    "ppo-pid-lagrangian": {"algo": "pid-lagrangian-kl", "controller_settings": {"target": 0.3}},
    "safe": {"algo": "safe"},
}
ABLATIONS: dict[str, dict[str, Any]] = {
    "safe-no-gate": {"algo": "safe", "controller_settings": {"use_gate": False}},
    "safe-no-pid": {"algo": "safe", "controller_settings": {"use_pid": False}},
    "safe-no-phase": {"algo": "safe", "controller_settings": {"use_phase": False}},
    "safe-single-critic": {"algo": "safe", "critic_heads": 1},
    "safe-published": {"algo": "safe", "penalty_mode": "detached", "preview_steps": False},
}
ABLATION_REGIME = "stress"


@dataclass(frozen=True)
class Plan:
    """How big the sweep is; ``--quick`` shrinks every axis."""

    seeds: int = 8
    ablation_seeds: int = 5
    steps: int = 150
    threads: int = 1
    """torch threads per run; two single-threaded runs side by side use 2 cores best."""
    train: dict[str, Any] = field(default_factory=dict)
    """Further TrainConfig fields shared by every run."""
    prepare: dict[str, Any] = field(default_factory=dict)
    """PrepareConfig fields of the offline default (empty: the default)."""


FULL = Plan()
QUICK = Plan(
    seeds=2,
    ablation_seeds=2,
    steps=5,
    train={"batch_size": 8, "max_new_tokens": 8, "min_new_tokens": 2, "checkpoint_every": 2},
    prepare={"sft_steps": 30, "n_prompts": 64, "vocab_size": 512, "n_layer": 2, "n_embd": 32},
)


@dataclass(frozen=True)
class RunSpec:
    regime: str
    variant: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.regime}/{self.variant}/seed{self.seed}"


def run_specs(plan: Plan) -> list[RunSpec]:
    """Every run of the sweep, seed by seed, so a sweep stopped early is balanced: every variant
    of every regime has the same seeds done."""
    specs = []
    for seed in range(max(plan.seeds, plan.ablation_seeds)):
        for regime in REGIMES:
            if seed < plan.seeds:
                specs += [RunSpec(regime, variant, seed) for variant in ALGORITHMS]
            if regime == ABLATION_REGIME and seed < plan.ablation_seeds:
                specs += [RunSpec(regime, variant, seed) for variant in ABLATIONS]
    return specs


def train_fields(
    spec: RunSpec, plan: Plan, runs_dir: Path, data_dir: str, model: str
) -> dict[str, Any]:
    """The TrainConfig fields of one run (``model`` empty: the default prepared model)."""
    variant = {**ALGORITHMS, **ABLATIONS}[spec.variant]
    return {
        **plan.train,
        **REGIMES[spec.regime],
        **variant,
        "seed": spec.seed,
        "steps": plan.steps,
        "threads": plan.threads,
        "data_dir": data_dir,
        "model": model,
        "run_dir": str(runs_dir / spec.name),
    }


def main(argv: list[str] | None = None) -> int:
    parser = sweep_arguments(__doc__ or "", "runs/stability", "stress/safe*/*")
    parser.add_argument(
        "--refresh-overhead",
        action="store_true",
        help="recompute only the overhead claim of --out's stability.json from its overhead.json "
        "and trainer_speed.json (no runs needed)",
    )
    args = parser.parse_args(argv)
    checked_workers(parser, args)
    plan = QUICK if args.quick else FULL
    runs_dir = Path(args.runs)
    from benchmarks.stability_render import refresh_overhead, write_report

    try:
        if args.refresh_overhead:
            print(refresh_overhead(Path(args.out)))
            return 0
        if not args.report_only:
            run_sweep(
                run_specs(plan),
                lambda spec, model: train_fields(spec, plan, runs_dir, args.data_dir, model),
                plan.prepare,
                args,
            )
        print(write_report(runs_dir, Path(args.out), plan_name="quick" if args.quick else "full"))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
