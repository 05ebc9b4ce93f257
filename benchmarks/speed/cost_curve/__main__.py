"""``python -m benchmarks.speed.cost_curve``: see the package's docstring."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.speed import cost_curve
from benchmarks.speed.cost_curve.measure import RunRecord, worker
from benchmarks.speed.cost_curve.models import built_model
from benchmarks.speed.cost_curve.plan import BATCH, Job, jobs, make_plan
from benchmarks.speed.cost_curve.provenance import machine, trainer_source
from benchmarks.speed.cost_curve.render import rewrite_report, write_report

ROOT = Path(__file__).resolve().parents[3]
COMMAND = "python -m benchmarks.speed.cost_curve"


def run_job(job: Job) -> RunRecord:
    """One configuration in a fresh interpreter (its own peak RSS); its stderr passes through."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        command = [sys.executable, "-m", "benchmarks.speed.cost_curve"]
        job_json = json.dumps(job.record())
        subprocess.run([*command, "--worker", job_json, str(out)], check=True, cwd=ROOT)
        result: RunRecord = json.loads(out.read_text())
        return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description=cost_curve.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny models, 1 iteration")
    parser.add_argument("--iterations", type=int, default=7, help="timed, per configuration")
    parser.add_argument("--largest-iterations", type=int, default=5, help="timed, largest model")
    parser.add_argument(
        "--bfloat16-lengths", type=int, nargs="+", default=[16, 48], help="also run in bf16"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed, per configuration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--trl-sizes", choices=("all", "ends"), default="all", help="ends: smallest and largest"
    )
    parser.add_argument("--data-dir", default=".data")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument(
        "--render", action="store_true", help="rewrite the md and png from --out's json only"
    )
    parser.add_argument("--worker", nargs=2, metavar=("JOB", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return
    if args.render:
        rewrite_report(Path(args.out))
        return
    from reference_trainer.config import PrepareConfig
    from reference_trainer.prepare.default_model import prepare

    started = time.perf_counter()
    plan = make_plan(args)
    meta: dict[str, Any] = {
        "command": " ".join([COMMAND, *(sys.argv[1:] if argv is None else argv)]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "batch_size": BATCH,
        "plan": asdict(plan),
        "source": trainer_source(ROOT),
    }
    source = prepare(PrepareConfig(data_dir=args.data_dir, threads=args.threads), progress=False)
    cache = Path(args.data_dir) / "cost_curve"
    models = {shape.name: built_model(cache, shape, source) for shape in plan.shapes}
    runs = []
    for job in jobs(plan, models):
        job_started = time.perf_counter()
        runs.append(run_job(job))
        print(f"{job.label}: {time.perf_counter() - job_started:.0f} s", flush=True)
    meta["wall_time_s"] = time.perf_counter() - started
    write_report(Path(args.out), meta, models, runs)


if __name__ == "__main__":
    main()
