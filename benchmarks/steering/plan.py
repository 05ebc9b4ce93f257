"""What the steering study runs.

Every run trains 300 iterations and is evaluated every 50 on 512 held-out prompts with the same
sampling noise each time (``eval_every``): the evaluations at iterations 100 and 300 are the two
horizons (a run is deterministic, so its evaluation at 100 is what a 100-iteration run would end
with). Variants: fixed β around each task's best (the frontier sweep's best β was 0.1–0.3 at the
standard learning rate), ``kl-budget`` at its defaults, and ``kl-budget`` with its budget steered
by the proxy's gain per nat of KL (``safecontrol/budget_kl.py``, ``budget_growth``) at two gain
floors, ``kl-budget`` with a β floor (``min_coef``) at three of the fixed β, and ``kl-budget``
with a looser per-step KL limit (``step_ratio``), a β floor without the entropy floor, and
``kl-budget`` with its proxy hold (``hold_window``), alone and over a β floor of 0.1, and that
held floor with a lower entropy floor or none.

Sizes: the offline default (0.34 M parameters), 32 prompts × 16 tokens, one thread per run, two
runs side by side; a run takes ~3 minutes (300 iterations + 6 evaluations of 512 prompts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.frontier.plan import FIXED_BETA_PREFIX, REGIMES, beta_name
from benchmarks.runner import RunSpec, SweepPlan, run_fields
from reference_trainer.config import TASKS

BETAS = (0.03, 0.1, 0.17, 0.3, 1.0)
"""Around the frontier's best β at the standard lr: 0.17, the refined grid's best on every task,
was added after the pilot."""
STEERED: dict[str, dict[str, float]] = {
    # Fixed before the pilot: growth of 2% per batch (a doubling in ~35 batches) up to the
    # initial entropy, while the proxy's gain per nat over the last 10 batches stays above this
    # share of its first window's gain.
    "kl-budget-steer-0.5": {"budget_growth": 0.02, "gain_floor": 0.5},
    "kl-budget-steer-0.25": {"budget_growth": 0.02, "gain_floor": 0.25},
}
BETA_FLOORS = (0.1, 0.17, 0.3)
"""``kl-budget``'s ``min_coef``, added after the pilot: at iteration 100 on topic, ``kl-budget``
held the KL of β 0.3 (1.29 against 1.36 nats per token) with 0.115 less gold, and stopped at its
best evaluation it trails the best fixed β stopped the same way on two of three tasks. What
differs is the path: β ≈ 0 until the budget binds, against a penalty from the first step. With a
floor the budget still caps the KL above it."""
STEP_RATIOS = (0.002, 0.004)
"""``kl-budget``'s ``step_ratio`` (default 0.001), added after the floors: every floor still
trailed β 0.3 on topic, and the frontier's ablations (100 iterations, seeds 0-2) put topic's
``kl-budget`` at -0.073 with the step limit and +0.037 without it. At the standard lr the limit
shrinks ~20% of topic's steps (mean scale 0.90 over the first 100 iterations), at the stress lr
every step (scale 0.1-0.2): a limit 2-4× looser should leave the first alone and still bind the
second, where a step's KL grows roughly with the square of its length."""
FLOOR_WITHOUT_ENTROPY = {"min_coef": 0.3, "max_entropy_drop": None}
"""Added after the step limits: on topic every ``kl-budget`` variant held its entropy at 0.8 of
the first (4.15-4.21 nats against 5.25) with its KL under the set point, so the entropy floor
was the binding limit, while β 0.3's entropy fell to 0.74 of it by iteration 100 and 0.69 by 300
with its gold still rising: topic pays for its gold in entropy."""
HOLD_WINDOW = 80
"""``kl-budget``'s ``hold_window``, added after the entropy floor: inside its budget the policy
went on moving after the proxy had stopped paying, and gold fell at a constant KL (sentiment,
standard lr: 0.41 over iterations 101-200, 0.37 over 201-300, KL 1.37; stress lr: a drawdown of
0.20-0.29 by iteration 300 on every task). Chosen before these runs on replays of seeds 0-3's
logged proxy (``python -m benchmarks.steering.hold_replay``: a run frozen at the update the rule
fires keeps its last evaluation's gold): of
windows 40, 60 and 80 (no hold before a full window), 40 fired at iterations 69-126 and cost
topic 0.03-0.13; 80 had the best worst cell (regret against the best fixed β at 100 and 300
iterations) for ``kl-budget`` at both lrs and for its 0.1 floor at the standard lr: -0.115 and
-0.079, against -0.125 and -0.087 for 60."""
HELD: dict[str, dict[str, Any]] = {
    "kl-budget-hold": {"hold_window": HOLD_WINDOW},
    "kl-budget-floor-0.1-hold": {"min_coef": 0.1, "hold_window": HOLD_WINDOW},
}
HELD_ENTROPY_DROPS = (0.3, None)
"""``max_entropy_drop`` of the held 0.1 floor (default 0.2; None: no entropy floor), added after
the held variants' 8 seeds: the held 0.1 floor was above the best fixed β on sentiment at both
horizons but trailed it on topic by 0.11-0.12, where the entropy floor at 0.8 H₀ binds while β
0.3's entropy falls to 0.74 H₀ by iteration 100 and 0.69 by 300 with its gold still rising. A
drop of 0.3 leaves room down to about β 0.3's entropy; None removes the floor, leaving the hold
to stop the hacking that a narrowing policy would otherwise do unchecked."""
VARIANTS: dict[str, dict[str, Any]] = {
    **{beta_name(b): {"algo": "fixed-kl", "controller_settings": {"coef": b}} for b in BETAS},
    "kl-budget": {"algo": "kl-budget"},
    **{
        name: {"algo": "kl-budget", "controller_settings": settings}
        for name, settings in STEERED.items()
    },
    **{
        f"kl-budget-floor-{b:g}": {"algo": "kl-budget", "controller_settings": {"min_coef": b}}
        for b in BETA_FLOORS
    },
    **{
        f"kl-budget-step-{r:g}": {"algo": "kl-budget", "controller_settings": {"step_ratio": r}}
        for r in STEP_RATIOS
    },
    "kl-budget-floor-0.3-no-entropy": {
        "algo": "kl-budget",
        "controller_settings": FLOOR_WITHOUT_ENTROPY,
    },
    **{
        name: {"algo": "kl-budget", "controller_settings": settings}
        for name, settings in HELD.items()
    },
    **{
        f"kl-budget-floor-0.1-hold-{'no-entropy' if d is None else f'entropy-{d:g}'}": {
            "algo": "kl-budget",
            "controller_settings": {**HELD["kl-budget-floor-0.1-hold"], "max_entropy_drop": d},
        }
        for d in HELD_ENTROPY_DROPS
    },
}
HORIZONS = (100, 300)
"""Iterations at which gold is judged."""
EVAL_EVERY = 50


@dataclass(frozen=True)
class SteeringPlan(SweepPlan):
    """The shared sizes (``SweepPlan``) plus the seeds, the evaluations and the horizons."""

    seeds: int = 8
    eval_every: int = EVAL_EVERY
    """Iterations between held-out evaluations."""
    eval_prompts: int = 512
    """Held-out prompts per evaluation."""
    horizons: tuple[int, ...] = HORIZONS


FULL = SteeringPlan(steps=max(HORIZONS))
QUICK = SteeringPlan(
    steps=6,
    seeds=1,
    eval_every=3,
    eval_prompts=16,
    horizons=(3, 6),
    train={"batch_size": 8, "max_new_tokens": 8, "min_new_tokens": 2, "checkpoint_every": 5},
    prepare={"sft_steps": 30, "n_prompts": 64, "vocab_size": 512, "n_layer": 2, "n_embd": 32},
)


STEERING_REGIMES = ("standard", "stress")
"""The frontier's standard and stress learning rates (``frontier.plan.REGIMES``)."""


def is_fixed_beta(variant: str) -> bool:
    return variant.startswith(FIXED_BETA_PREFIX)


def run_specs(plan: SteeringPlan) -> list[RunSpec]:
    """Seed-major: a sweep stopped early has the same seeds of every variant of every cell."""
    return [
        RunSpec(regime, variant, seed, task)
        for seed in range(plan.seeds)
        for task in TASKS
        for regime in STEERING_REGIMES
        for variant in VARIANTS
    ]


def steering_fields(
    spec: RunSpec, plan: SteeringPlan, runs_dir: Path, data_dir: str, model: str
) -> dict[str, Any]:
    """``run_fields`` and the held-out evaluations."""
    fields = run_fields(
        spec, plan, REGIMES[spec.regime], VARIANTS[spec.variant], runs_dir, data_dir, model
    )
    return {**fields, "eval_every": plan.eval_every, "eval_prompts": plan.eval_prompts}
