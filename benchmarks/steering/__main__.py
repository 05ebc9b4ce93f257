"""python -m benchmarks.steering: train the steering study's runs, then write its report.

Does steering the KL budget beat the best fixed β on held-out gold, at 100 and 300 iterations?
Every run trains 300 iterations, evaluated every 50 on 512 held-out prompts (``plan.py``); the
report (``steering.{json,md}``) gives, per task, learning rate and horizon, the best fixed β in
hindsight (by mean held-out gold), each variant's gold regret against it over paired seeds with a
bootstrap CI, and the gold's drawdown from its best evaluation.

    python -m benchmarks.steering --seeds 2 --only '*/standard/*'    # the pilot that ran
    python -m benchmarks.steering                                     # 3 tasks x 2 lr x 8 seeds
    python -m benchmarks.steering --report-only   # from the runs, or (no run under --runs)
                                                  # from the per-run records of steering.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from benchmarks.runner import checked_workers, run_sweep, sweep_arguments, sweep_command
from benchmarks.steering.aggregate import aggregate, load_runs, runs_from_results
from benchmarks.steering.plan import FULL, QUICK, run_specs, steering_fields
from benchmarks.steering.render import page
from safecontrol.atomic_files import write_json_atomic, write_text_atomic


def write_report(runs_dir: Path, out_dir: Path, horizons: tuple[int, ...], quick: bool) -> Path:
    """Aggregate the runs under ``runs_dir`` (where it has none: the per-run records of the
    results JSON already in ``out_dir``) and write ``steering[_quick].{json,md}``."""
    name = "steering_quick" if quick else "steering"
    json_path = out_dir / f"{name}.json"
    runs = load_runs(runs_dir)
    if not runs and json_path.is_file():
        runs = runs_from_results(json.loads(json_path.read_text()))
    if not runs:
        raise FileNotFoundError(f"no finished run (done.json) under {runs_dir}")
    results = aggregate(runs, horizons)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(json_path, asdict(results))
    path = out_dir / f"{name}.md"
    write_text_atomic(path, page(results.cells, quick))
    return path


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
    return sweep_command(
        None
        if args.report_only
        else lambda: run_sweep(
            run_specs(plan),
            lambda spec, model: steering_fields(spec, plan, runs_dir, args.data_dir, model),
            dict(plan.prepare),
            args,
        ),
        lambda: write_report(runs_dir, Path(args.out), plan.horizons, quick=args.quick),
    )


if __name__ == "__main__":
    sys.exit(main())
