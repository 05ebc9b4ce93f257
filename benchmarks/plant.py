"""Benchmark: how often KL runs away, entropy collapses and reward crashes under each controller,
on the surrogate RLHF plant (``safecontrol.testing``), over hundreds of seeds and plant settings.

    .venv/bin/python -m benchmarks.plant [--quick] [--out benchmarks/results] [--seeds N]

Files: this one runs the sweep; ``plant_report.py`` defines the events and does the statistics;
``plant_render.py`` writes ``plant.json``, ``plant.md`` and ``plant_rates.png``.

Controllers: the demo's (``safecontrol.testing.demo.controllers()``): no penalty, then every name
of ``safecontrol.registry`` (a controller registered at run time is benchmarked with no other
edit), made with the demo's ``DEMO_SETTINGS``: a KL budget of 0.3 nats per token where they take
one (the classic targets and SAFE's base threshold), FixedKL's β = 0.05.

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
(setting, seed) pairs, which makes the comparisons paired. Full run: 36 settings × 25 seeds × 6
controllers (the built-in ones) = 5400 plant runs of 300 steps, 450–640 s (0.08–0.12 s a run) in
one process on a 2-core machine busy with another sweep (the json's ``meta`` has the measured
times). ``--quick``: 2 seeds per setting and 60 steps (a smoke test of the pipeline, ~10 s; its
numbers say nothing about the pathologies). Deterministic: the plant is deterministic per seed
and the bootstrap uses a fixed generator, so the same arguments give the same numbers (only times
and dates differ).

Per-run events (on the plant's exact per-token KL and entropy, nats):

- KL runaway: the run's KL p95 exceeds 3 × the budget (0.9 nats), i.e. KL was more than three
  times the budget for more than ~5% of the steps. 3× is beyond every controller's own tolerance
  band (PPO's rule reacts at 1.5× its target; SAFE's threshold never exceeds 0.6 = 2× budget), far
  above the ±noise of a controller tracking 0.3, and well below the ~3–3.9 nats of an uncontrolled
  run, whose policy has put almost all its mass on one token. The same budget is used for the
  controllers without a target (no penalty, FixedKL): it is what the user asked for. Its
  sensitivity to the factor (1.5, 2, 3, 5, 10) is reported beside it.
- Entropy collapse: at least one step with entropy below 10% of the first step's (SPEC §5,
  ``metrics.entropy_collapse_steps``).
- Reward crash: at least one crash of the batch-mean proxy reward (SPEC §5,
  ``metrics.count_crashes``), the reward the learner and the trainer's logs see.
- True-reward crash (secondary): the same on the true reward, which catches reward hacking that
  the proxy hides (proxy rising while the true reward falls).

Per-run measures: training-average proxy reward (SPEC §5), final true reward (mean of the last 10
steps), KL p95 (nats per token), minimum entropy (nats per token).

Statistics (95%): event rates with Wilson score intervals; means with percentile bootstrap
intervals (``scipy.stats.bootstrap``, 9999 resamples, generator seeded with 0); SAFE (``safe``)
against each other controller on the same (setting, seed) pairs: the difference of event rates
with Newcombe's (1998) paired square-and-add interval, and McNemar's exact test (a two-sided
binomial test on the discordant pairs), Holm-adjusted over the 20 overall comparisons (the
per-preset comparisons in the json report raw p-values). The intervals
count seed-to-seed variation only: the settings are a fixed grid, and rates "over all settings"
weigh the 36 settings equally.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy

from benchmarks.stats import CONFIDENCE
from benchmarks.plant_render import jsonable_runs, markdown, write
from benchmarks.plant_report import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    DEFINITIONS,
    RUNAWAY_FACTOR,
    RUNAWAY_FACTORS,
    Runs,
    analyse,
    measure,
)
from safecontrol.testing import PATHOLOGIES, PlantConfig, run
from safecontrol.testing.demo import DEMO_SETTINGS, KL_BUDGET, controllers, settings_changed

RESULTS = Path(__file__).resolve().parent / "results"
LR_FACTORS = (0.5, 1.0, 2.0)
PULL_FACTORS = (0.5, 1.0, 2.0)


# ---------------------------------------------------------------------------------------------
# Settings and runs


@dataclass(frozen=True)
class Setting:
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


def sweep(
    settings: Sequence[Setting],
    factories: dict[str, Callable[[], Any]],
    progress: Callable[[str], None] | None = None,
) -> Runs:
    """Every controller (name → factory; None: no penalty) on every (setting, seed)."""
    runs: Runs = {}
    for setting in settings:
        per_controller: dict[str, list[dict[str, float]]] = {name: [] for name in factories}
        for seed in setting.seeds:
            config = setting.config.replace(seed=seed)
            for name, make in factories.items():
                per_controller[name].append(measure(run(make(), config)))
        runs[setting.name] = {
            name: {key: np.array([r[key] for r in rows]) for key in rows[0]}
            for name, rows in per_controller.items()
        }
        if progress is not None:
            progress(setting.name)
    return runs


# ---------------------------------------------------------------------------------------------
# Main


def _machine() -> dict[str, Any]:
    cores = os.cpu_count()
    return {
        "description": f"{platform.machine()}, {cores} cores, Python {platform.python_version()}",
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": cores,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.plant",
        description="Event rates of every KL controller on the surrogate plant.",
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds, 60 steps: a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per setting (default 25)")
    args = parser.parse_args(argv)
    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 25)
    if seeds < 1:
        parser.error(f"--seeds must be >= 1, got {seeds}")
    steps = 60 if args.quick else None
    resamples = 999 if args.quick else BOOTSTRAP_RESAMPLES
    argv_used = list(sys.argv[1:] if argv is None else argv)

    machine = _machine()
    settings = make_settings(seeds, steps)
    start = time.perf_counter()
    done = [0]

    def progress(name: str) -> None:
        done[0] += 1
        elapsed = time.perf_counter() - start
        print(f"[{done[0]}/{len(settings)}] {name} ({elapsed:.0f} s)", file=sys.stderr, flush=True)

    factories = controllers()
    runs = sweep(settings, factories, progress)
    run_time = time.perf_counter() - start
    results = analyse(runs, settings, resamples)
    n_runs = len(settings) * seeds * len(factories)
    report: dict[str, Any] = {
        "meta": {
            "command": " ".join([".venv/bin/python", "-m", "benchmarks.plant", *argv_used]),
            "date": time.strftime("%Y-%m-%d"),
            "machine": machine,
            "runs": n_runs,
            "sweep_time_s": run_time,
            "mean_run_time_s": run_time / n_runs,
            "wall_time_s": time.perf_counter() - start,
        },
        "config": {
            "quick": args.quick,
            "seeds_per_setting": seeds,
            "steps": settings[0].config.steps,
            "controllers": list(factories),
            "controller_settings": {name: DEMO_SETTINGS.get(name, {}) for name in factories},
            "kl_budget": KL_BUDGET,
            "runaway_factor": RUNAWAY_FACTOR,
            "runaway_sensitivity_factors": list(RUNAWAY_FACTORS),
            "lr_factors": list(LR_FACTORS),
            "pull_factors": list(PULL_FACTORS),
            "presets": {
                name: {
                    "config": settings_changed(p.config),
                    "description": p.description,
                    "pull_field": pull_field(p.config),
                }
                for name, p in PATHOLOGIES.items()
            },
            "confidence": CONFIDENCE,
            "bootstrap": {
                "method": "percentile",
                "n_resamples": resamples,
                "seed": BOOTSTRAP_SEED,
            },
        },
        "definitions": DEFINITIONS,
        "settings": {
            s.name: {
                "preset": s.preset,
                "lr_factor": s.lr_factor,
                "pull_factor": s.pull_factor,
                "pull_field": s.pull_field,
                "config": settings_changed(s.config),
                "seeds": [s.seeds[0], s.seeds[-1]],
            }
            for s in settings
        },
        "results": results,
        "runs": jsonable_runs(runs),
    }
    write(report, args.out)
    print(markdown(report).split("## Measures")[0], end="")
    print(f"({n_runs} runs in {report['meta']['wall_time_s']:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
