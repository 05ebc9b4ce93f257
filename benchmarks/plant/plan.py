"""What the plant study runs: its controllers, settings, seeds, and the events it counts.

    .venv/bin/python -m benchmarks.plant [--quick] [--out benchmarks/results] [--seeds N]

Controllers: the demo's (``safecontrol.testing.demo.controllers()``): no penalty, then every name
of ``safecontrol.registry`` (a controller registered at run time is benchmarked with no other
edit), made with the demo's ``DEMO_SETTINGS``: a KL budget of 0.3 nats per token where they take
one (the classic targets and SAFE's base threshold), FixedKL's β = 0.05; a controller without an
entry (kl-budget, safe) runs with its registered defaults.

Settings: each preset of ``safecontrol.testing.PATHOLOGIES`` (reward_hacking, kl_runaway,
entropy_collapse, late_crash) on a 3 × 3 grid of two knobs, 36 settings in all:

- ``lr`` × {0.5, 1, 2}: how far the policy moves per batch, against how fast a controller reacts.
  It is what turns a small fixed β into a KL runaway (the kl_runaway preset is lr 10).
- "pull" × {0.5, 1, 2}: the strength of the reward that drives the preset's pathology: the
  spike's proxy reward (reward-hacking strength) where the preset has an exploit, the honest
  reward in entropy_collapse (which has none: its collapse onto one honest token per context is
  driven by the honest reward). It sets the KL at which the reward gradient balances a penalty.

A pilot (6 seeds per cell) showed both knobs moving outcomes across the thresholds below (e.g.
AdaptiveKL runs away at pull 2 on three presets and holds 0.35 nats at pull 0.5); halving or
doubling the batch size (gradient and k1 noise) changed little, so it is not a knob here.

Seeds: ``--seeds N`` per setting (default 25); the k-th setting of a preset (k = 0..8) uses seeds
k·N … k·N + N − 1, so each preset sees 9·N distinct seeds (225). Every controller runs on the same
(setting, seed) pairs, which makes the comparisons paired. A plant run of 300 steps takes
0.04–0.13 s in one process on a 2-core machine busy with another sweep (the json's ``meta`` has
the measured times). ``--quick``: 2 seeds per setting and 60 steps (a smoke test of the pipeline;
its numbers say nothing about the pathologies). Deterministic: the plant is deterministic per seed
and the bootstrap uses a fixed generator, so the same arguments give the same numbers (only times
and dates differ).

Per-run events (on the plant's exact per-token KL and entropy, nats):

- KL runaway: the run's KL p95 exceeds 3 × the budget (0.9 nats), i.e. KL was more than three
  times the budget for more than ~5% of the steps. 3× is beyond every controller's own tolerance
  band (PPO's rule reacts at 1.5× its target; SAFE's threshold never exceeds 0.6 = 2× budget), far
  above the ±noise of a controller tracking 0.3, and well below the ~3–3.9 nats of an uncontrolled
  run, whose policy has put almost all its mass on one token. The same budget is used for the
  controllers without a target (no penalty, FixedKL) and for kl-budget, whose own budget is a
  share of the initial entropy: it is what the user asked for. Its sensitivity to the factor
  (1.5, 2, 3, 5, 10) is reported beside it.
- Entropy collapse: at least one step with entropy below 10% of the first step's (SPEC §5,
  ``metrics.entropy_collapse_steps``).
- Reward crash: at least one crash of the batch-mean proxy reward (SPEC §5,
  ``metrics.count_crashes``), the reward the learner and the trainer's logs see.
- True-reward crash (secondary): the same on the true reward, which catches reward hacking that
  the proxy hides (proxy rising while the true reward falls).

Per-run measures: training-average proxy reward (SPEC §5), final true reward (mean of the last 10
steps), KL p95 (nats per token), minimum entropy (nats per token).

Statistics (95%, ``benchmarks.stats``): event rates with Wilson score intervals; means with
percentile bootstrap intervals (``RESAMPLES`` = 10 000 resamples, generator seeded with 0); SAFE
(``safe``) against each other controller on the same (setting, seed) pairs: the difference of
event rates with Newcombe's (1998) paired square-and-add interval, and McNemar's exact test (a
two-sided binomial test on the discordant pairs), Holm-adjusted over the overall comparisons
(4 events × every other controller; the per-preset comparisons report raw p-values). The
intervals count seed-to-seed variation only: the settings are a fixed grid, and rates "over all
settings" weigh the 36 settings equally.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from safecontrol.contract import Controller
from safecontrol.testing import PATHOLOGIES, PlantConfig
from safecontrol.testing.demo import KL_BUDGET, controllers
from safecontrol.testing.metrics import CRASH_WINDOW

LR_FACTORS = (0.5, 1.0, 2.0)
PULL_FACTORS = (0.5, 1.0, 2.0)
SEEDS_PER_SETTING = 25
QUICK_SEEDS_PER_SETTING = 2
QUICK_STEPS = 60

SAFE = "safe"
"""The registry name of SAFE, which every other controller is compared against."""
RUNAWAY_FACTOR = 3.0
"""KL runaway: KL p95 above RUNAWAY_FACTOR × KL_BUDGET."""
RUNAWAY_FACTORS = (1.5, 2.0, 3.0, 5.0, 10.0)
"""Factors of the sensitivity table."""

EVENTS = {
    "kl_runaway": "KL runaway",
    "entropy_collapse": "entropy collapse",
    "reward_crash": "reward crash",
    "true_reward_crash": "true-reward crash",
}
"""Per-run events (0/1), by record field → the name in tables."""
MEASURES = {
    "reward_mean": "reward avg",
    "true_reward_final": "true final",
    "kl_p95": "KL p95",
    "entropy_min": "H min",
}
"""Per-run measures, by record field → the name in tables."""
DEFINITIONS = {
    "kl_runaway": f"KL p95 over the run > {RUNAWAY_FACTOR:g} x budget "
    f"({RUNAWAY_FACTOR * KL_BUDGET:g} nats per token; exact KL to the reference)",
    "entropy_collapse": ">= 1 step with entropy below 10% of the first step's "
    "(SPEC 5, metrics.entropy_collapse_steps)",
    "reward_crash": ">= 1 crash of the batch-mean proxy reward (SPEC 5, metrics.count_crashes)",
    "true_reward_crash": ">= 1 crash of the batch-mean true reward (same definition)",
    "reward_mean": "training-average batch-mean proxy reward (SPEC 5)",
    "true_reward_final": f"mean true reward of the last {CRASH_WINDOW} steps",
    "kl_p95": "95th percentile over steps of the exact per-token KL to the reference, nats",
    "entropy_min": "minimum over steps of the per-token policy entropy, nats",
}

ControllerFactory = Callable[[], Controller | None]
"""Makes a fresh controller for one run (None: no penalty)."""


@dataclass(frozen=True)
class Setting:
    """One cell of the grid: a preset with its lr and pull scaled, and the seeds it runs."""

    name: str
    preset: str
    lr_factor: float
    pull_factor: float
    pull_field: str
    """The PlantConfig field the pull factor scales."""
    config: PlantConfig
    seeds: tuple[int, ...]


def pull_field(config: PlantConfig) -> str:
    """The reward that drives the preset's pathology: the spike's, or the honest one without it."""
    return "spike_reward" if config.spike_reward > 0.0 else "honest_reward"


def make_settings(seeds: int, steps: int | None = None) -> list[Setting]:
    """The 36 settings: every preset on the lr × pull grid, each cell with its own seeds."""
    settings = []
    for preset, pathology in PATHOLOGIES.items():
        base = pathology.config if steps is None else pathology.config.replace(steps=steps)
        field = pull_field(base)
        cells = [(lr, pull) for lr in LR_FACTORS for pull in PULL_FACTORS]
        for k, (lr, pull) in enumerate(cells):
            config = base.replace(lr=base.lr * lr, **{field: getattr(base, field) * pull})
            name = f"{preset} lr={lr:g}x pull={pull:g}x"
            first = k * seeds
            seed_range = tuple(range(first, first + seeds))
            settings.append(Setting(name, preset, lr, pull, field, config, seed_range))
    return settings


def controller_factories() -> dict[str, ControllerFactory]:
    """Name → factory: "no penalty", then every registered controller (read at call time)."""
    return dict(controllers())
