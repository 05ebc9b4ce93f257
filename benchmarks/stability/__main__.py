"""Train the stability sweep (resumably) and write its results.

    python -m benchmarks.stability                 # full sweep (~1 hour on 2 cores), then report
    python -m benchmarks.stability --report-only   # report only: from the runs under --runs when
                                                   # there are any, else from the run records
                                                   # stored in --records (default --out's JSON)
    python -m benchmarks.stability --refresh-overhead   # the same from the stored records, e.g.
                                                   # after overhead.json / trainer_speed.json moved
    python -m benchmarks.stability --quick --runs /tmp/quick --out /tmp/quick-results

Writes ``stability.json`` (every run record, the aggregate and the words), ``stability.md`` and,
from runs, the plots ``stability_<regime>[_ablations].png``. The overhead claim reads
``overhead.json`` and ``trainer_speed.json`` from ``--out``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import replace
from pathlib import Path

from benchmarks.runner import checked_workers, run_sweep, sweep_arguments, sweep_command
from benchmarks.stability.aggregate import aggregate
from benchmarks.stability.plan import FULL, QUICK, run_specs, train_fields
from benchmarks.stability.records import has_runs, load_curves, load_records
from benchmarks.stability.render import markdown, plot
from benchmarks.stability.results import (
    RESULTS_NAME,
    Meta,
    StabilityResults,
    read_records,
    write_results,
)
from benchmarks.stability.words import SpeedResults, speed_results, stability_words

COMMAND = "python -m benchmarks.stability"


def _speed(out_dir: Path) -> SpeedResults | None:
    overhead, trainer_speed = (
        json.loads(path.read_text()) if path.is_file() else None
        for path in (out_dir / "overhead.json", out_dir / "trainer_speed.json")
    )
    return speed_results(overhead, trainer_speed)


def report_from_runs(runs_dir: Path, out_dir: Path, plan_name: str) -> StabilityResults:
    """Aggregate the finished runs under ``runs_dir`` and draw the plots into ``out_dir``."""
    records = load_records(runs_dir)
    summary = aggregate(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = plot(summary, load_curves(runs_dir), out_dir)
    cpus = os.cpu_count() or 1
    meta = Meta(
        plan=plan_name,
        machine=f"{platform.machine()}, {platform.python_version()}, {cpus} CPUs",
        command=COMMAND + (" --quick" if plan_name == "quick" else ""),
        source=f"the runs under `{runs_dir}`",
        plots=tuple(p.name for p in plots),
    )
    return StabilityResults(
        meta, tuple(records), summary, stability_words(summary, _speed(out_dir))
    )


def report_from_records(records_path: Path, out_dir: Path) -> StabilityResults:
    """Recompute everything from the run records stored in ``records_path``; the plots (which
    need the runs' curves) are those the records' report drew."""
    stored = read_records(records_path)
    summary = aggregate(stored.runs)
    meta = replace(stored.meta, source=f"the run records stored in `{records_path}`")
    return StabilityResults(meta, stored.runs, summary, stability_words(summary, _speed(out_dir)))


def write(results: StabilityResults, out_dir: Path) -> Path:
    """``stability.json`` and ``stability.md`` into ``out_dir``; returns the markdown's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_results(results, out_dir / RESULTS_NAME)
    path = out_dir / "stability.md"
    path.write_text(markdown(results))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = sweep_arguments(__doc__ or "", "runs/stability", "stress/safe*/*")
    parser.prog = COMMAND
    parser.add_argument(
        "--records",
        default="",
        help=f"results file whose run records a report without runs reads (default: --out's "
        f"{RESULTS_NAME})",
    )
    parser.add_argument(
        "--refresh-overhead",
        action="store_true",
        help="report from the stored records even where runs exist (no runs needed), e.g. to "
        "take in a new overhead.json and trainer_speed.json",
    )
    args = parser.parse_args(argv)
    checked_workers(parser, args)
    plan = QUICK if args.quick else FULL
    runs_dir, out_dir = Path(args.runs), Path(args.out)
    records_path = Path(args.records) if args.records else out_dir / RESULTS_NAME

    def report() -> str:
        if has_runs(runs_dir) and not args.refresh_overhead:
            results = report_from_runs(runs_dir, out_dir, "quick" if args.quick else "full")
        else:
            results = report_from_records(records_path, out_dir)
        return write(results, out_dir)

    return sweep_command(
        None
        if args.report_only or args.refresh_overhead
        else lambda: run_sweep(
            run_specs(plan),
            lambda spec, model: train_fields(spec, plan, runs_dir, args.data_dir, model),
            dict(plan.prepare),
            args,
        ),
        report,
    )


if __name__ == "__main__":
    sys.exit(main())
