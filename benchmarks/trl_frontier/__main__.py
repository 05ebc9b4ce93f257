"""python -m benchmarks.trl_frontier: train every run not yet done, then write the report.

    python -m benchmarks.trl_frontier                 # every run not yet done, then the report
    python -m benchmarks.trl_frontier --report-only   # the report from the runs (or, where the
                                                      # runs directory is empty, from the per-run
                                                      # records of the results JSON)
    python -m benchmarks.trl_frontier --cost          # measure the step limit's cost apart

Final gold = the mean gold of the last 10 steps. Gold regret = kl-budget's final gold − the best
fixed β's (best in hindsight, per learning rate), paired by seed, with a percentile-bootstrap CI.
Seconds per step (wall clock, generation to optimizer step) give the limit's cost as a ratio.
Writes ``trl_frontier.{json,md}`` (and, with ``--cost``, ``trl_step_limit_cost.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.trl_frontier.aggregate import (
    aggregate,
    read_step_limit_cost,
    records_from_results,
    records_from_runs,
    step_limit_cost,
    summarise,
)
from benchmarks.trl_frontier.grpo_run import measure_step_seconds, run_one
from benchmarks.trl_frontier.plan import (
    COST_NAME,
    RESULTS_DIR,
    RESULTS_NAME,
    RUNS_DIR,
    run_path,
    run_specs,
)
from benchmarks.trl_frontier.render import page
from benchmarks.trl_frontier.words import with_words
from safecontrol.atomic_files import write_json_atomic, write_text_atomic


def sweep(runs_dir: Path, data_dir: str, only: str | None) -> None:
    """Train every planned run without a file, seed-major; ``only``: those whose
    ``regime/variant`` contains it."""
    for spec in run_specs():
        path = run_path(runs_dir, spec)
        if path.is_file() or (only and only not in f"{spec.regime}/{spec.variant}"):
            continue
        started = time.perf_counter()
        result = run_one(spec, data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, result)
        took = time.perf_counter() - started
        print(
            f"{spec.regime} {spec.variant} seed {spec.seed}: {summarise(result, spec.seed)} "
            f"({took:.0f} s)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.trl_frontier",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", default=".data")
    parser.add_argument("--only", help="run only cells whose 'regime/variant' contains this")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--cost", action="store_true", help="measure the step limit's cost per step (quiet cores)"
    )
    parser.add_argument("--runs", type=Path, default=RUNS_DIR, help="where run files live")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where results are written")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cost_path = args.out / f"{COST_NAME}.json"
    results_path = args.out / f"{RESULTS_NAME}.json"
    if args.cost:
        cost = step_limit_cost(measure_step_seconds(args.data_dir))
        write_json_atomic(cost_path, asdict(cost), indent=1)
    elif not args.report_only:
        sweep(args.runs, args.data_dir, args.only)
    records = records_from_runs(args.runs)
    if not records and results_path.is_file():
        records = records_from_results(json.loads(results_path.read_text()))
    if not records:
        parser.error(f"no run under {args.runs} and no per-run records in {results_path}")
    results = with_words(aggregate(records, read_step_limit_cost(cost_path)))
    write_json_atomic(results_path, results.to_json(), indent=1)
    text = page(results)
    write_text_atomic(args.out / f"{RESULTS_NAME}.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
