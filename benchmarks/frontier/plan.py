"""What the frontier study runs: tasks, regimes, variants, seeds and sizes.

For each offline task (``reference_trainer/tasks/offline.py``: sentiment, reward-model, topic; a
proxy the policy trains on and a gold reward it never sees) and both learning rates, the reference
trainer runs PPO with a fixed β on a log grid from "hacks the proxy" to "barely moves" (refined
around the best β at the standard lr, extended upwards at the stress lr), fixed β with the
trainer's per-step KL limit (trust-region PPO), β = 0 with an entropy controller (the
GRPO/DAPO-style recipe), every registered controller at its defaults and at two more KL budgets,
and SAFE with the published code's behaviour (SPEC §7).

Sizes (fixed before the sweep, never per task): the 0.34 M-parameter offline default, 100 PPO
iterations of 32 prompts × 16 tokens, one thread per run, two runs side by side; a run takes
~80 s. 3 seeds of every variant, 8 of the headline variants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.runner import RunSpec, SweepPlan
from reference_trainer.recipes import RECIPES

TASKS = ("sentiment", "reward-model", "topic")
REGIMES: dict[str, dict[str, Any]] = {
    "lr-3e-4": {"lr": 3e-4},
    "standard": {"lr": 1e-3},
    "lr-3e-3": {"lr": 3e-3},
    "stress": {"lr": 1e-2},
}
"""Learning rates: the standard and the stress (10×) lr run every variant; the two between and
below run ``LR_SWEEP`` alone."""
LR_SWEEP_REGIMES = ("lr-3e-4", "lr-3e-3")
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
BUDGETS = (0.1, 1.0)
"""KL budgets in nats per token given to every budgeted controller beside its default."""
TOKENS_PER_SEQUENCE = 16
"""max_new_tokens: a per-token budget × this is a per-sequence controller's target."""
ENTROPY_TARGET = 2.6
"""β = 0 + entropy control: half the SFT policy's initial per-token entropy (5.2 nats)."""

FIXED_BETA_PREFIX = "beta-"
TRUST_REGION_PREFIX = "tr-beta-"


def beta_name(beta: float) -> str:
    """The fixed-β variant's name, e.g. ``beta-0.3``."""
    return f"{FIXED_BETA_PREFIX}{beta:g}"


def trust_region_name(beta: float) -> str:
    """The trust-region variant's name, e.g. ``tr-beta-0.3``."""
    return f"{TRUST_REGION_PREFIX}{beta:g}"


LR_SWEEP = (beta_name(0.17), trust_region_name(0.3), "kl-budget")
"""The variants of the learning-rate sweep: the refined grid's best fixed β (0.17 on every task at
the standard lr), the best trust-region β (0.3 on two of the three tasks at both lrs) and the
default controller; with the standard and stress lr they give the gold-against-lr curves and each
task's best (β, lr) pair: whether the controller removes the lr search too."""
STRESS_ONLY = tuple(beta_name(b) for b in HIGH_BETAS)
STANDARD_ONLY = tuple(beta_name(b) for b in FINE_BETAS)


def _variants() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for b in (*BETAS, *FINE_BETAS, *HIGH_BETAS):
        out[beta_name(b)] = {"algo": "fixed-kl", "controller_settings": {"coef": b}}
    for b in TRUST_REGION_BETAS:
        # The same limit found as kl-budget finds it: predicted, measured at the next epoch.
        out[trust_region_name(b)] = {
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
    # kl-budget with a β floor: the KL penalised from the first step as by a fixed β (the refined
    # grid's best β beats the budget at equal KL), the budget still binding above it.
    out["kl-budget-floor-0.1"] = {"algo": "kl-budget", "controller_settings": {"min_coef": 0.1}}
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
"""Variant name → its TrainConfig fields."""
HEADLINE = (
    *(beta_name(b) for b in (*BETAS, *FINE_BETAS, *HIGH_BETAS)),
    *(trust_region_name(b) for b in TRUST_REGION_BETAS),
    "beta0-entropy",
    "kl-budget",
    "safe",
    "safe-published",
)
"""Variants run on all ``FrontierPlan.headline_seeds`` paired seeds: the β grids (each family's
best in hindsight is chosen from them) and the controllers the report's headline compares with
them (``kl-budget`` is the controller that needs no β)."""


@dataclass(frozen=True)
class FrontierPlan(SweepPlan):
    """The shared sizes (``SweepPlan``) plus which tasks, variants and seeds run."""

    tasks: tuple[str, ...] = TASKS
    variants: tuple[str, ...] = tuple(VARIANTS)
    headline: tuple[str, ...] = HEADLINE
    seeds: int = 3
    """Seeds of every variant."""
    headline_seeds: int = 8
    """Seeds of the headline variants."""
    regimes: tuple[str, ...] = tuple(REGIMES)


FULL = FrontierPlan(steps=100)
QUICK = FrontierPlan(
    steps=6,
    variants=(beta_name(0.01), beta_name(0.3), "beta0-entropy", "kl-budget", "safe"),
    headline=(beta_name(0.01), beta_name(0.3), "kl-budget", "safe"),
    seeds=1,
    headline_seeds=1,
    regimes=("standard", "stress"),
    train={"batch_size": 8, "max_new_tokens": 8, "min_new_tokens": 2, "checkpoint_every": 5},
    prepare={"sft_steps": 30, "n_prompts": 64, "vocab_size": 512, "n_layer": 2, "n_embd": 32},
)


LARGER_VARIANTS = (
    *(beta_name(b) for b in (0.03, 0.1, 0.3, 1.0)),
    *(trust_region_name(b) for b in (0.1, 0.3)),
    "kl-budget",
)
LARGER = FrontierPlan(
    steps=100,
    tasks=("sentiment", "reward-model"),
    variants=LARGER_VARIANTS,
    headline=LARGER_VARIANTS,
    seeds=3,
    headline_seeds=3,
    regimes=("standard", "stress"),
    train={"max_new_tokens": 32},
    prepare={"n_embd": 256, "n_layer": 4},
)
"""The scale check: a 3.7 M-parameter model (11× the default's parameters: width 256, 4 layers,
prepared offline like the default) answering in 32 tokens, on two tasks at both learning rates:
the coarse β grid around the small model's best, trust-region PPO at its two best β and the
default controller, 3 paired seeds (84 runs)."""
PLANS = {"full": FULL, "quick": QUICK, "larger": LARGER}
"""``--plan`` → the plan (``--quick`` is ``--plan quick``)."""


def runs_in_regime(variant: str, regime: str) -> bool:
    """Whether ``variant`` is part of ``regime``'s plan (the fine grid is standard-only, the high
    grid stress-only, the lr sweep's regimes run ``LR_SWEEP`` alone)."""
    if regime in LR_SWEEP_REGIMES:
        return variant in LR_SWEEP
    return variant not in (STANDARD_ONLY if regime == "stress" else STRESS_ONLY)


def run_specs(plan: FrontierPlan) -> list[RunSpec]:
    """Seed-major: a sweep stopped early has the same seeds of every variant of every cell."""
    specs = []
    for seed in range(max(plan.seeds, plan.headline_seeds)):
        for task in plan.tasks:
            for regime in plan.regimes:
                for variant in plan.variants:
                    if not runs_in_regime(variant, regime):
                        continue
                    limit = plan.headline_seeds if variant in plan.headline else plan.seeds
                    if seed < limit:
                        specs.append(RunSpec(regime=regime, variant=variant, seed=seed, task=task))
    return specs
