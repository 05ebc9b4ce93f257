"""``python -m benchmarks.plant``: every controller on the surrogate plant (``plan`` has the
design), or ``--from-json``: the statistics and files of a results JSON's stored runs, afresh.

    .venv/bin/python -m benchmarks.plant [--quick] [--out benchmarks/results] [--seeds N]
    .venv/bin/python -m benchmarks.plant --from-json benchmarks/results/plant.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy

from benchmarks.plant.plan import (
    LR_FACTORS,
    PULL_FACTORS,
    QUICK_SEEDS_PER_SETTING,
    QUICK_STEPS,
    RUNAWAY_FACTOR,
    RUNAWAY_FACTORS,
    SEEDS_PER_SETTING,
    Setting,
    controller_factories,
    make_settings,
    pull_field,
)
from benchmarks.plant.records import sweep
from benchmarks.plant.render import markdown, write
from benchmarks.plant.report import build, rebuild
from benchmarks.stats import CONFIDENCE, RESAMPLES, SEED
from safecontrol.testing import PATHOLOGIES
from safecontrol.testing.demo import DEMO_SETTINGS, KL_BUDGET, settings_changed

RESULTS = Path(__file__).resolve().parents[1] / "results"


def machine() -> dict[str, Any]:
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


def sweep_config(quick: bool, seeds: int, steps: int, controllers: Sequence[str]) -> dict[str, Any]:
    return {
        "quick": quick,
        "seeds_per_setting": seeds,
        "steps": steps,
        "controllers": list(controllers),
        "controller_settings": {name: DEMO_SETTINGS.get(name, {}) for name in controllers},
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
        "bootstrap": {"method": "percentile", "n_resamples": RESAMPLES, "seed": SEED},
    }


def settings_record(settings: Sequence[Setting]) -> dict[str, dict[str, Any]]:
    return {
        s.name: {
            "preset": s.preset,
            "lr_factor": s.lr_factor,
            "pull_factor": s.pull_factor,
            "pull_field": s.pull_field,
            "config": settings_changed(s.config),
            "seeds": [s.seeds[0], s.seeds[-1]],
        }
        for s in settings
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.plant",
        description="Event rates of every KL controller on the surrogate plant.",
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds, 60 steps: a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    parser.add_argument(
        "--seeds", type=int, default=None, help=f"seeds per setting (default {SEEDS_PER_SETTING})"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="rewrite the files from this plant.json's stored runs instead of running the plant",
    )
    args = parser.parse_args(argv)
    if args.from_json is not None:
        if args.quick or args.seeds is not None:
            parser.error("--from-json reads its runs: --quick and --seeds do not apply")
        report = rebuild(json.loads(args.from_json.read_text()))
        write(report, args.out)
        print(f"rewrote {args.out} from {args.from_json}", file=sys.stderr)
        return 0

    default_seeds = QUICK_SEEDS_PER_SETTING if args.quick else SEEDS_PER_SETTING
    seeds = args.seeds if args.seeds is not None else default_seeds
    if seeds < 1:
        parser.error(f"--seeds must be >= 1, got {seeds}")
    argv_used = list(sys.argv[1:] if argv is None else argv)

    about = machine()
    settings = make_settings(seeds, QUICK_STEPS if args.quick else None)
    start = time.perf_counter()
    done = [0]

    def progress(name: str) -> None:
        done[0] += 1
        elapsed = time.perf_counter() - start
        print(f"[{done[0]}/{len(settings)}] {name} ({elapsed:.0f} s)", file=sys.stderr, flush=True)

    factories = controller_factories()
    runs = sweep(settings, factories, progress)
    sweep_time = time.perf_counter() - start
    n_runs = len(settings) * seeds * len(factories)
    meta: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "-m", "benchmarks.plant", *argv_used]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": about,
        "runs": n_runs,
        "sweep_time_s": sweep_time,
        "mean_run_time_s": sweep_time / n_runs,
    }
    config = sweep_config(args.quick, seeds, settings[0].config.steps, list(factories))
    report = build(meta, config, settings_record(settings), runs)
    report = replace(report, meta={**meta, "wall_time_s": time.perf_counter() - start})
    write(report, args.out)
    print(markdown(report).split("## Measures")[0], end="")
    print(f"({n_runs} runs in {report.meta['wall_time_s']:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
