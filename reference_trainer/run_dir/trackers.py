"""Experiment trackers beside ``metrics.jsonl``: TensorBoard, Weights & Biases (``report_to``).

``metrics.jsonl`` keeps the trainer's flat keys (the report, the benchmarks and resumed runs read
them); trackers receive every numeric metric under a namespace, as TRL, CleanRL and verl users
expect to find them: ``reward/``, ``kl/``, ``controller/``, ``policy/``, ``value/``,
``rollout/``, ``time/``. A metric the trainer logs without a namespace here is an error in the
tests, so a new metric cannot reach a dashboard unsorted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from ..config import parse_report_to

NAMESPACES = {
    "reward_mean": "reward/mean",
    "reward_std": "reward/std",
    "gold_mean": "reward/gold_mean",
    "kl_k1": "kl/k1",
    "kl_k3": "kl/k3",
    "kl_measured": "kl/measured",
    "live_kl": "kl/live",
    "kl_term": "kl/loss_term",
    "approx_kl": "kl/approx_to_rollout_policy",
    "preview_kl": "kl/preview_step",
    "coef": "controller/coef",
    "budget": "controller/budget",
    "threshold": "controller/threshold",
    "gate": "controller/gate",
    "phase": "controller/phase",
    "active": "controller/active",
    "kl_predicted": "controller/kl_predicted",
    "penalty": "controller/penalty",
    "pid_p": "controller/pid_p",
    "pid_i": "controller/pid_i",
    "pid_d": "controller/pid_d",
    "skipped": "controller/skipped",
    "entropy": "policy/entropy",
    "entropy_coef": "policy/entropy_coef",
    "policy_loss": "policy/loss",
    "grad_norm": "policy/grad_norm",
    "clip_fraction": "policy/clip_fraction",
    "step_scale": "policy/step_scale",
    "step_scale_min": "policy/step_scale_min",
    "value_loss": "value/loss",
    "explained_variance": "value/explained_variance",
    "response_length": "rollout/response_length",
    "distinct_1": "rollout/distinct_1",
    "tokens_per_second": "time/tokens_per_second",
    "eval_reward": "eval/reward",
    "eval_gold": "eval/gold",
    "eval_kl": "eval/kl",
    "eval_entropy": "eval/entropy",
    "eval_distinct_1": "eval/distinct_1",
    "eval_response_length": "eval/response_length",
}
"""Flat metric key → tracker key; ``seconds_*`` go to ``time/``, ``step`` is the x axis."""


def namespaced(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics under their tracker keys (bools as 0/1; strings and None left out)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key == "step" or value is None or isinstance(value, str):
            continue
        name = f"time/{key}" if key.startswith("seconds_") else NAMESPACES.get(key)
        if name is None:
            raise KeyError(f"metric {key!r} has no tracker namespace (trackers.NAMESPACES)")
        out[name] = float(value)
    return out


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class _TensorBoard:
    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _WandB:
    def __init__(self, run_dir: Path, config: dict[str, Any], resume: bool) -> None:
        import wandb

        # WANDB_MODE (e.g. "offline") and WANDB_PROJECT are honoured as wandb documents them.
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "safecontrol"),
            dir=str(run_dir),
            config=config,
            name=run_dir.name,
            resume="allow" if resume else None,
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


class Trackers:
    """The trackers of one run (rank 0 only); ``log`` takes the trainer's flat metrics."""

    def __init__(
        self, report_to: str, run_dir: Path, config: dict[str, Any], resume: bool, writer: bool
    ) -> None:
        names = parse_report_to(report_to) if writer else ()
        self.trackers: list[Tracker] = []
        for name in names:
            try:
                tracker: Tracker = (
                    _TensorBoard(run_dir)
                    if name == "tensorboard"
                    else _WandB(run_dir, config, resume)
                )
            except ImportError as exc:
                raise ValueError(
                    f"report_to {name!r} needs the {name} package: pip install {name} ({exc})"
                ) from exc
            self.trackers.append(tracker)

    def log(self, metrics: dict[str, Any]) -> None:
        if self.trackers:
            values = namespaced(metrics)
            for tracker in self.trackers:
                tracker.log(values, int(metrics["step"]))

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
