"""What the TRL frontier runs.

The offline default model (0.34 M parameters, prepared by ``python -m reference_trainer
prepare``), the sentiment task: VADER as GRPO's reward (the proxy) and the task's gold reward
beside it as a second reward function of weight 0, which TRL scores and logs
(``rewards/gold/mean``) but never trains on. ``STEPS`` optimizer steps of ``COMPLETIONS``
completions (``COMPLETIONS // GENERATIONS`` prompts × ``GENERATIONS`` generations) of at most
``NEW_TOKENS`` tokens, at the standard learning rate (1e-3) and at 10× (1e-2):

- ``beta-*``: plain TRL, ``GRPOConfig(beta=β)``, no callback (the user's hand-tuned β);
- ``kl-budget``: ``SafeBetaCallback.attach(trainer, "kl-budget")``, its per-step KL limit on;
- ``kl-budget-no-limit``: the same with ``limit_steps=False``.

Each run is one JSON file, ``<runs>/<regime>/<variant>/seed<k>.json`` (``run_path``).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.runner import RunSpec

BETAS = (0.01, 0.03, 0.1, 0.3, 1.0)
FIXED_BETA_PREFIX = "beta-"
LIMITED = "kl-budget"
"""kl-budget with its per-step KL limit (the callback's default)."""
UNLIMITED = "kl-budget-no-limit"
CONTROLLED = (LIMITED, UNLIMITED)
VARIANTS = (*(f"{FIXED_BETA_PREFIX}{b:g}" for b in BETAS), *CONTROLLED)
LEARNING_RATES = {"standard": 1e-3, "stress": 1e-2}
SEEDS = tuple(range(8))
STEPS, COMPLETIONS, GENERATIONS, NEW_TOKENS = 100, 32, 4, 16
FINAL_WINDOW = 10
"""Final values are means over the last this many optimizer steps."""
CONTROLLED_START_BETA = 0.001
"""GRPOConfig's β under kl-budget; the callback sets β from the first step on."""

COST_PLAIN = f"{FIXED_BETA_PREFIX}0.1"
COST_VARIANTS = (COST_PLAIN, UNLIMITED, LIMITED)
"""The step limit's cost, measured apart: plain TRL, kl-budget without the limit, with it."""
COST_REGIME = "stress"
"""Where the limit binds on every step."""
COST_STEPS, COST_WARMUP, COST_REPEATS = 30, 5, 3

RUNS_DIR = Path("runs/trl_frontier")
RESULTS_DIR = Path("benchmarks/results")
RESULTS_NAME = "trl_frontier"
COST_NAME = "trl_step_limit_cost"


def is_fixed_beta(variant: str) -> bool:
    return variant.startswith(FIXED_BETA_PREFIX)


def grpo_beta(variant: str) -> float:
    """GRPOConfig's β of ``variant``: the grid point, or kl-budget's start."""
    if is_fixed_beta(variant):
        return float(variant.removeprefix(FIXED_BETA_PREFIX))
    if variant in CONTROLLED:
        return CONTROLLED_START_BETA
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")


def run_specs() -> list[RunSpec]:
    """Seed-major: a sweep stopped early has the same seeds of every variant of every regime."""
    return [
        RunSpec(regime, variant, seed)
        for seed in SEEDS
        for regime in LEARNING_RATES
        for variant in VARIANTS
    ]


def run_path(runs_dir: Path, spec: RunSpec) -> Path:
    return runs_dir / f"{spec.name}.json"
