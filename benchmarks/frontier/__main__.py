"""``python -m benchmarks.frontier``: train the frontier sweep (``plan.py``) and report it.

Runs live in ``--runs/<task>/<regime>/<variant>/seed<k>``; finished ones, and those whose record
``--out``/frontier.json holds, are skipped; interrupted ones resume (``benchmarks/runner.py``),
and ``--only`` trains a part. The report
(``--out``/frontier.{json,md} and one PNG per task × regime) is computed from the records stored
in ``--out``/frontier.json (the committed sweep, whose raw runs need not be on this machine) and
the finished runs under ``--runs``, a run replacing the stored record of the same name.

The full plan is 1 272 runs of ~80 s, two side by side; it runs in parts::

    python -m benchmarks.frontier --seeds 3 --only 'sentiment/*'   # seeds 0-2 of one task
    python -m benchmarks.frontier --only 'sentiment/*'             # the headline's seeds 3-7
    python -m benchmarks.frontier --report-only                    # the report alone
    python -m benchmarks.frontier --quick --runs /tmp/q --out /tmp/q-results   # CI smoke

The learning-rate sweep (``plan.LR_SWEEP`` at lr 3e-4 and 3e-3, 144 runs) is part of the full
plan: ``--only '*/lr-3e-4/*' --only '*/lr-3e-3/*'``. ``--plan larger`` is the scale check
(``plan.LARGER``: a 3.7 M-parameter model prepared offline like the default, 32-token answers,
84 runs in runs/frontier-larger, results ``frontier_larger.{json,md}``).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmarks.frontier.aggregate import aggregate
from benchmarks.frontier.plan import PLANS, REGIMES, VARIANTS, FrontierPlan, run_specs
from benchmarks.frontier.records import load_records, records_from_results, saved_results
from benchmarks.frontier.render import (
    DEFAULT_RUNS,
    ReportMeta,
    commands,
    default_runs,
    markdown,
    plot,
    results_stem,
)
from benchmarks.frontier.words import frontier_words
from benchmarks.runner import (
    checked_workers,
    run_fields,
    run_sweep,
    sweep_arguments,
    sweep_command,
)


def strict(value: Any) -> Any:
    """``value`` with every non-finite float as None (strict JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def write_report(runs_dir: Path, out_dir: Path, plan_name: str = "full") -> str:
    """Report the records of ``out_dir``/frontier.json (``frontier_<plan>.json`` for another plan
    than the full and quick ones) and the finished runs under ``runs_dir`` into ``out_dir``;
    returns a few lines for the console."""
    stem = results_stem(plan_name)
    results_path = out_dir / f"{stem}.json"
    found = load_records(runs_dir, results_path, plan_name)
    agg = aggregate(found.records)
    words = frontier_words(agg)
    planned = {s.name for s in run_specs(PLANS[plan_name])}
    names = {r.name for r in found.records}
    meta = ReportMeta(
        plan=plan_name,
        runs_found=len(names),
        runs_planned=len(planned),
        runs_unplanned=tuple(sorted(names - planned)),
        records_from_runs=found.from_runs,
        commands=commands(runs_dir, out_dir, plan_name),
        sizes=found.sizes,
        model=found.model,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = plot(agg, out_dir, stem)
    results = {
        **asdict(agg),
        "words": asdict(words),
        "meta": asdict(meta),
        "plots": [p.name for p in plots],
        "records": [asdict(r) for r in sorted(found.records, key=_record_order)],
    }
    results_path.write_text(json.dumps(strict(results), indent=1, allow_nan=False) + "\n")
    (out_dir / f"{stem}.md").write_text(markdown(agg, words, meta))
    lines = [f"frontier: {len(names)} of {len(planned)} planned runs → {out_dir}/{stem}.md"]
    lines += [f"  {task}: {text}" for task, text in words.console.items()]
    return "\n".join(lines)


def recorded_names(results_path: Path, plan_name: str) -> set[str]:
    """The runs whose records ``results_path`` holds for ``plan_name`` (none: no such file)."""
    saved = saved_results(results_path, plan_name)
    return {r.name for r in records_from_results(saved)} if saved else set()


def _record_order(record: Any) -> tuple[Any, ...]:
    variants, regimes = list(VARIANTS), list(REGIMES)
    return (
        record.task,
        regimes.index(record.regime) if record.regime in regimes else len(regimes),
        variants.index(record.variant) if record.variant in variants else len(variants),
        record.variant,
        record.seed,
    )


def main(argv: list[str] | None = None) -> int:
    parser = sweep_arguments(__doc__ or "", DEFAULT_RUNS, "topic/stress/*")
    parser.add_argument(
        "--seeds", type=int, default=0, help="train only seeds below this (0: the plan's)"
    )
    parser.add_argument(
        "--plan", choices=sorted(PLANS), default="full", help="which plan (--quick: quick)"
    )
    args = parser.parse_args(argv)
    checked_workers(parser, args)
    if args.seeds < 0:
        parser.error(f"--seeds must be >= 0, got {args.seeds}")
    if args.quick and args.plan not in ("full", "quick"):
        parser.error(f"--quick is --plan quick; got --plan {args.plan} too")
    plan_name = "quick" if args.quick else args.plan
    if args.runs == DEFAULT_RUNS:
        args.runs = default_runs(plan_name)
    plan: FrontierPlan = PLANS[plan_name]
    if args.seeds:
        plan = replace(
            plan,
            seeds=min(plan.seeds, args.seeds),
            headline_seeds=min(plan.headline_seeds, args.seeds),
        )
    runs_dir = Path(args.runs)
    return sweep_command(
        None
        if args.report_only
        else lambda: run_sweep(
            run_specs(plan),
            lambda spec, model: run_fields(
                spec,
                plan,
                REGIMES[spec.regime],
                VARIANTS[spec.variant],
                runs_dir,
                args.data_dir,
                model,
            ),
            dict(plan.prepare),
            args,
            recorded_names(Path(args.out) / f"{results_stem(plan_name)}.json", plan_name),
        ),
        lambda: write_report(runs_dir, Path(args.out), plan_name),
    )


if __name__ == "__main__":
    sys.exit(main())
