"""What the stability study runs: regimes, variants, seeds and sizes.

Every run is the reference trainer on the offline default (SPEC §6), one directory per
``RunSpec`` (``regime/variant/seed<k>``) under the runs root.

Regimes (learning rate of the policy, SPEC §6):
- standard, lr 1e-3: PPO learns steadily (reward 0.05 → ~0.8 in 150 iterations);
- stress, lr 1e-2: PPO's per-token KL runs to 4–8, more than ten times its 0.3 target.

Variants: the published comparison's four algorithms in both regimes (8 seeds: fewer cannot reach
p < 0.05 in a two-sided Wilcoxon signed-rank test), and in the stress regime SAFE's ablations
(5 seeds): no entropy gate, no PID (fixed threshold), no phase detector, a single critic, and the
published code's behaviour (the penalty as a detached float, no preview step scaling).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.runner import RunSpec, SweepPlan, run_fields

REGIMES: dict[str, dict[str, Any]] = {
    "standard": {"lr": 1e-3},
    "stress": {"lr": 1e-2},
}
KL_TARGET_PER_TOKEN = 0.3
"""The per-token KL target of PID-Lagrangian (and, × 16 tokens, of Ziegler) in the sweep."""
ALGORITHMS: dict[str, dict[str, Any]] = {
    "ppo": {"algo": "fixed-kl", "controller_settings": {"coef": 0.05}},
    # Ziegler's controller as the published sweep ran it: β0 = 0.05, target 0.3 nats per token ×
    # 16 tokens per sequence.
    "ppo-adaptive-kl": {
        "algo": "adaptive-kl",
        "controller_settings": {"init_coef": 0.05, "target": 4.8, "horizon": 10000},
    },
    "ppo-pid-lagrangian": {
        "algo": "pid-lagrangian-kl",
        "controller_settings": {"target": KL_TARGET_PER_TOKEN},
    },
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
BASELINE = "ppo"
"""Every variant is compared with this one on the same seeds."""
FULL_SAFE = "safe"
"""Every ablation (a variant named ``safe-…``) is also compared with this one."""


def is_ablation(variant: str) -> bool:
    return variant.startswith(FULL_SAFE + "-")


@dataclass(frozen=True)
class StabilityPlan(SweepPlan):
    """How big the sweep is; ``QUICK`` shrinks every axis."""

    seeds: int = 8
    """Seeds of each algorithm in each regime."""
    ablation_seeds: int = 5
    """Seeds of each ablation (stress regime only)."""


FULL = StabilityPlan(steps=150)
QUICK = StabilityPlan(
    steps=5,
    seeds=2,
    ablation_seeds=2,
    train={"batch_size": 8, "max_new_tokens": 8, "min_new_tokens": 2, "checkpoint_every": 2},
    prepare={"sft_steps": 30, "n_prompts": 64, "vocab_size": 512, "n_layer": 2, "n_embd": 32},
)


def run_specs(plan: StabilityPlan) -> list[RunSpec]:
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
    spec: RunSpec, plan: StabilityPlan, runs_dir: Path, data_dir: str, model: str
) -> dict[str, Any]:
    """The TrainConfig fields of one run (``model`` empty: the default prepared model)."""
    variant = {**ALGORITHMS, **ABLATIONS}[spec.variant]
    return run_fields(spec, plan, REGIMES[spec.regime], variant, runs_dir, data_dir, model)
