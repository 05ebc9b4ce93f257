"""Command line: ``python -m reference_trainer {prepare,train,report} [--set key=value ...]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import PrepareConfig, TrainConfig
from .config_cli import build, describe_fields, parse_assignments
from .run_dir.files import read_json
from .tasks.rewards import is_python_reward


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    values: dict[str, str] = {}
    if args.config:
        loaded = read_json(Path(args.config))
        if not isinstance(loaded, dict):
            raise ValueError(
                f"--config {args.config} must hold a JSON object of config fields, "
                f"got {type(loaded).__name__}"
            )
        values.update(
            {k: json.dumps(v) if not isinstance(v, str) else v for k, v in loaded.items()}
        )
    values.update(parse_assignments(args.set or []))
    return values


def _saved_config(args: argparse.Namespace, overrides: dict[str, str]) -> dict[str, object] | None:
    """With ``--resume``, the run's saved ``config.json``: the settings it was started with
    (reward, task, controller...) are restored, the command line's apply on top; a Python reward
    it names must be named again or trusted (``_refuse_run_code``)."""
    if args.command != "train" or not args.resume:
        return None
    run_dir = Path(overrides.get("run_dir", TrainConfig().run_dir))
    path = run_dir / "config.json"
    if not path.is_file():
        return None  # the run directory's own check says there is no run to resume
    saved = read_json(path)
    if not isinstance(saved, dict):
        raise ValueError(f"{path} must hold a JSON object of config fields")
    if not args.trust_run_code:
        _refuse_run_code(path, saved, overrides)
    return saved


def _refuse_run_code(path: Path, saved: dict[str, object], overrides: dict[str, str]) -> None:
    """Refuse a Python reward that only the run directory names. A run directory is data (its
    checkpoint is loaded ``weights_only``); importing the module its config.json names would run
    whatever a received directory ships beside it (``python -m`` puts the current directory first
    on ``sys.path``), so the user names that code again, or trusts the run's."""
    for key in ("reward", "gold_reward"):
        spec = saved.get(key)
        if key not in overrides and isinstance(spec, str) and is_python_reward(spec):
            raise ValueError(
                f"--resume: {path} names the Python function {key}={spec!r}, and code named only "
                f"by a run directory is not imported: add --set {key}={spec} if you trust that "
                f"code, or --trust-run-code to import every function the run names"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference_trainer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, cls in (("prepare", PrepareConfig), ("train", TrainConfig)):
        sub = commands.add_parser(
            name, epilog=describe_fields(cls), formatter_class=argparse.RawDescriptionHelpFormatter
        )
        sub.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="override a config field (repeatable)",
        )
        sub.add_argument("--config", help="a JSON file of config fields")
        sub.add_argument("--no-progress", action="store_true")
        if name == "train":
            sub.add_argument("--algo", help="a registered controller (listed below)")
            sub.add_argument("--model", help="local path or Hub name of a causal LM")
            sub.add_argument(
                "--reward-model", help="local path or Hub name of a sequence-classification reward"
            )
            sub.add_argument("--run-dir")
            sub.add_argument("--report-to", help="none, tensorboard, wandb (comma-separated)")
            sub.add_argument("--resume", action="store_true", help="continue the run in run_dir")
            sub.add_argument(
                "--trust-run-code",
                action="store_true",
                help="with --resume, import the module:function rewards the run's config.json "
                "names (else each must be named again with --set)",
            )
            sub.add_argument("--report", action="store_true", help="write the report afterwards")
    report_parser = commands.add_parser("report")
    report_parser.add_argument("run_dir")
    args = parser.parse_args(argv)

    try:
        if args.command == "report":
            from .run_dir.report import report

            print(report(Path(args.run_dir)))
            return 0
        overrides = _overrides(args)
        if args.command == "prepare":
            from .prepare.default_model import prepare

            print(
                prepare(
                    build(PrepareConfig, overrides, strings=True), progress=not args.no_progress
                )
            )
            return 0
        for flag, key in (
            ("algo", "algo"),
            ("model", "model"),
            ("reward_model", "reward"),
            ("run_dir", "run_dir"),
            ("report_to", "report_to"),
        ):
            if getattr(args, flag):
                overrides[key] = getattr(args, flag)
        config = build(TrainConfig, overrides, strings=True, base=_saved_config(args, overrides))
        from .run import train

        run_dir = train(config, resume=args.resume, progress=not args.no_progress)
        if args.report:
            from .run_dir.report import report

            print(f"report: {report(run_dir)}")
        print(f"run: {run_dir}")
        return 0
    except (ValueError, OSError, RuntimeError) as exc:
        # OSError: missing, unreadable (PermissionError), not a directory, disk full.
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
