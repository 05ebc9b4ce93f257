"""python -m benchmarks.steering: train the steering study's runs, then write its report.

Does steering the KL budget beat the best fixed β on held-out gold, at 100 and 300 iterations?
Every run trains 300 iterations, evaluated every 50 on 512 held-out prompts (``plan.py``); the
report (``steering.{json,md}``) gives, per task, learning rate and horizon, the best fixed β in
hindsight (by mean held-out gold), each variant's gold regret against it over paired seeds with a
bootstrap CI, and the gold's drawdown from its best evaluation.

    python -m benchmarks.steering --seeds 2 --only '*/standard/*'    # the pilot that ran
    python -m benchmarks.steering                                     # 3 tasks x 2 lr x 8 seeds
    python -m benchmarks.steering --report-only   # from the runs and steering.json's records

A run whose record ``steering.json`` already holds is not trained again (a new machine has none
of the earlier runs' directories); the report joins those records with the finished runs under
``--runs``, a run replacing the record of the same name.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from benchmarks.runner import RunSpec, checked_workers, run_sweep, sweep_arguments, sweep_command
from benchmarks.steering.aggregate import RunResult, aggregate, load_runs, runs_from_results
from benchmarks.steering.plan import FULL, QUICK, run_specs, steering_fields
from benchmarks.steering.render import page
from safecontrol.atomic_files import write_json_atomic, write_text_atomic


def results_path(out_dir: Path, quick: bool) -> Path:
    return out_dir / ("steering_quick.json" if quick else "steering.json")


def run_name(run: RunResult) -> str:
    """The run's directory under the runs root, as ``RunSpec.name`` spells it."""
    return RunSpec(run.regime, run.variant, run.seed, run.task).name


def recorded_runs(json_path: Path) -> list[RunResult]:
    """The per-run records of ``json_path`` (none where there is no such file)."""
    return runs_from_results(json.loads(json_path.read_text())) if json_path.is_file() else []


def write_report(runs_dir: Path, out_dir: Path, horizons: tuple[int, ...], quick: bool) -> Path:
    """Aggregate the records of ``steering[_quick].json`` in ``out_dir`` joined with the finished
    runs under ``runs_dir`` (a run replacing the record of the same name) and write
    ``steering[_quick].{json,md}``."""
    json_path = results_path(out_dir, quick)
    found = load_runs(runs_dir)
    found_names = {run_name(r) for r in found}
    runs = [r for r in recorded_runs(json_path) if run_name(r) not in found_names] + found
    if not runs:
        raise FileNotFoundError(f"no finished run (done.json) under {runs_dir} nor in {json_path}")
    results = aggregate(runs, horizons)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(json_path, asdict(results))
    path = json_path.with_suffix(".md")
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
            {run_name(r) for r in recorded_runs(results_path(Path(args.out), args.quick))},
        ),
        lambda: write_report(runs_dir, Path(args.out), plan.horizons, quick=args.quick),
    )


if __name__ == "__main__":
    sys.exit(main())
