"""The one sweep runner: train many reference-trainer runs, resumably, two side by side.

A sweep (the frontier, stability and steering studies) is a list of jobs, each a ``RunSpec``
(whose ``name`` is also its directory under the runs root) and the ``TrainConfig`` fields of that
run (``run_fields``: the plan's shared fields, the regime's, the variant's, then the run's own).
A finished run holds ``done.json`` and is skipped; an interrupted one resumes from its
checkpoint; a finished run whose config differs from the plan is an error, never silently mixed
into results. The offline default and each task's cached artefacts (fluency baseline, learned
reward model) are built once here, before the workers start, so that two workers never build the
same artefact at once.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

Job = tuple[Any, dict[str, Any]]
"""(run spec with ``.name``, TrainConfig fields)."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a variant (its TrainConfig fields) on a seed, in a regime (its learning
    rate) and, for a study over tasks, a task."""

    regime: str
    variant: str
    seed: int
    task: str = ""

    @property
    def name(self) -> str:
        """``[task/]regime/variant/seed<k>``: the run's directory under the runs root."""
        parts = (self.task, self.regime, self.variant, f"seed{self.seed}")
        return "/".join(p for p in parts if p)


@dataclass(frozen=True)
class SweepPlan:
    """What every run of a sweep shares."""

    steps: int
    threads: int = 1
    """torch threads per run; two single-threaded runs side by side use 2 cores best."""
    train: Mapping[str, Any] = field(default_factory=dict)
    """Further TrainConfig fields of every run."""
    prepare: Mapping[str, Any] = field(default_factory=dict)
    """PrepareConfig fields of the offline default (empty: the default)."""


def run_fields(
    spec: RunSpec,
    plan: SweepPlan,
    regime: Mapping[str, Any],
    variant: Mapping[str, Any],
    runs_dir: Path,
    data_dir: str,
    model: str,
) -> dict[str, Any]:
    """The TrainConfig fields of one run (``model`` empty: the default prepared model); later
    layers override earlier ones: the plan's, the regime's, the variant's, the run's own."""
    return {
        **plan.train,
        **regime,
        **variant,
        **({"task": spec.task} if spec.task else {}),
        "seed": spec.seed,
        "steps": plan.steps,
        "threads": plan.threads,
        "data_dir": data_dir,
        "model": model,
        "run_dir": str(runs_dir / spec.name),
    }


def _train_one(job: Job) -> tuple[str, float]:
    """Train (or resume) one run in this worker process; write ``done.json`` when finished."""
    from reference_trainer.config import TrainConfig, as_dict
    from reference_trainer.run import train
    from reference_trainer.run_dir.report import summary
    from safecontrol.atomic_files import write_json_atomic

    spec, fields = job
    config = TrainConfig(**fields)
    run_dir = Path(config.run_dir)
    # A run killed before its first checkpoint has a config.json and resumes from step 0.
    resume = (run_dir / "config.json").is_file()
    started = time.perf_counter()
    train(config, resume=resume, progress=False)
    seconds = time.perf_counter() - started
    done = {"spec": spec.__dict__, "config": as_dict(config), "summary": summary(run_dir)}
    write_json_atomic(run_dir / "done.json", done)
    return spec.name, seconds


def _resolved(config: Any) -> dict[str, Any]:
    """A TrainConfig as JSON, the controller's loop settings as the run trains them
    (``critic_heads`` 0 means the controller's own: safe's 2 saved as 0 and as 2 are the same
    run; so does ``step_limit`` "auto")."""
    from reference_trainer.config import as_dict

    out: dict[str, Any] = json.loads(json.dumps(as_dict(config)))
    out["critic_heads"] = config.n_critic_heads
    out["step_limit"] = config.resolved_step_limit
    return out


def pending(jobs: list[Job]) -> list[Job]:
    """The jobs still to do; a finished run whose config differs from its job is an error."""
    from reference_trainer.config import TrainConfig
    from reference_trainer.run_dir.log import OUTCOME_FREE_KEYS

    todo = []
    for spec, fields in jobs:
        done = Path(fields["run_dir"]) / "done.json"
        if done.is_file():
            saved = json.loads(done.read_text())["config"]
            # Both resolved through TrainConfig: a field added after the run finished takes its
            # default, which changes nothing the run did, and a controller's loop settings
            # (safe's two critic heads) resolve alike whether saved resolved or not.
            saved_run = _resolved(TrainConfig(**saved))
            wanted = _resolved(TrainConfig(**fields))
            # A key that cannot change the outcome (the reward timeout, whose default changed
            # after the frontier's runs finished) does not make a finished run another one.
            changed = sorted(
                k for k in saved_run if saved_run[k] != wanted[k] and k not in OUTCOME_FREE_KEYS
            )
            if changed:
                raise ValueError(
                    f"{done.parent} finished with a different config ({changed}); "
                    "remove it or choose another --runs directory"
                )
            continue
        todo.append((spec, fields))
    return todo


def build_task_artefacts(jobs: list[Job]) -> None:
    """Build every task's cached artefacts once, in this process, before the workers start."""
    from reference_trainer.config import TrainConfig
    from reference_trainer.models import load_policy
    from reference_trainer.tasks.scorers import scorers

    seen = set()
    for _, fields in jobs:
        config = TrainConfig(**fields)
        key = (config.task, config.model, config.data_dir, config.max_new_tokens)
        if config.task and key not in seen:
            seen.add(key)
            _, _, prompts = load_policy(config)
            scorers(config, prompts)


def run_jobs(jobs: list[Job], workers: int) -> None:
    """Train every pending job, ``workers`` at a time, printing progress."""
    todo = pending(jobs)
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already finished; {len(todo)} to go")
    if not todo:
        return
    build_task_artefacts(todo)
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch threads
    with context.Pool(min(workers, len(todo))) as pool:
        for i, (name, seconds) in enumerate(pool.imap_unordered(_train_one, todo), 1):
            elapsed = time.perf_counter() - started
            print(f"[{i}/{len(todo)}] {name} {seconds:.0f} s (sweep {elapsed / 60:.1f} min)")
            sys.stdout.flush()
        pool.close()  # let the workers exit cleanly (terminate() leaks their semaphores)
        pool.join()


def run_sweep(
    specs: list[Any],
    fields_of: Callable[[Any, str], dict[str, Any]],
    prepare_fields: dict[str, Any],
    args: argparse.Namespace,
    recorded: Collection[str] = (),
) -> None:
    """Train the specs matching ``args.only`` (all when empty), resumably.

    ``fields_of(spec, model)`` gives a run's TrainConfig fields; ``model`` is the prepared
    offline default's directory when ``prepare_fields`` is not the default preparation (empty:
    the default, which TrainConfig finds by itself). ``recorded``: names of runs whose record the
    committed results already hold; they count as finished even where their directory is not on
    this machine (a broad ``--only`` would otherwise train them again).
    """
    from reference_trainer.config import PrepareConfig
    from reference_trainer.prepare.default_model import prepare

    matching = [s for s in specs if not args.only or any(fnmatch(s.name, p) for p in args.only)]
    if not matching:
        raise ValueError(
            f"--only {args.only} matches no run; runs are named like {specs[0].name!r}"
        )
    chosen = [s for s in matching if s.name not in recorded]
    if len(chosen) < len(matching):
        print(f"{len(matching) - len(chosen)} of {len(matching)} runs are in the committed results")
    if not chosen:
        return
    prepared = prepare(PrepareConfig(data_dir=args.data_dir, **prepare_fields), progress=False)
    model = str(prepared) if prepare_fields else ""
    run_jobs([(s, fields_of(s, model)) for s in chosen], args.workers)


def sweep_arguments(description: str, default_runs: str, example: str) -> argparse.ArgumentParser:
    """The command line every sweep shares (``--quick``, ``--runs``, ``--only`` ...)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few short runs on a tiny model")
    parser.add_argument("--runs", default=default_runs, help="where run directories live")
    parser.add_argument("--out", default="benchmarks/results", help="where results are written")
    parser.add_argument("--data-dir", default=".data", help="cache of the prepared default")
    parser.add_argument("--workers", type=int, default=2, help="runs trained side by side")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help=f"train only runs matching this glob (repeatable), e.g. {example!r}",
    )
    parser.add_argument("--report-only", action="store_true", help="aggregate, train nothing")
    return parser


def checked_workers(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")


def sweep_command(train: Callable[[], None] | None, report: Callable[[], str]) -> int:
    """A sweep's command: ``train`` (None: ``--report-only``), then print ``report()``. Its expected
    failures (ValueError: an ``--only`` that matches nothing, a run finished with another config;
    FileNotFoundError: nothing to report) print one error line and return 2."""
    try:
        if train is not None:
            train()
        print(report())
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
