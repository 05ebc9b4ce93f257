"""``report``: plots and the SPEC §5 summary of a run directory.

Writes ``report/summary.json``, ``report/summary.md`` and PNG plots: reward, KL against the
threshold (SAFE) or target, entropy against the controller's entropy floor (if it has one), the
KL coefficient, value loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from safecontrol import registry
from safecontrol.atomic_files import write_json_atomic
from safecontrol.testing.metrics import CRASH_WINDOW, count_crashes, rolling_mean, summarize

from .files import numbered_step_records, read_json

REPORTED = (
    "reward_mean",
    "reward_std",
    "kl_k1",
    "kl_k3",
    "kl_measured",
    "entropy",
    "response_length",
    "distinct_1",
    "coef",
    "value_loss",
    "seconds_total",
)
"""What the report reads from every step record (the trainer writes each of them every step)."""
PER_RUN = ("gold_mean", "threshold", "budget")
"""Logged at every step of a run or at none (a gold reward, a dead band's threshold, a budget
controller's budget): the first record says which."""


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The step records of ``run_dir``'s metrics.jsonl, steps 1, 2, 3, ..., each holding every
    number the report reads: a record without one is an error naming the file and the line."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no metrics.jsonl; is it a training run directory?")
    records = list(numbered_step_records(path))
    rows = [row for _, row in records]
    steps = [row["step"] for row in rows]
    if steps != list(range(1, len(steps) + 1)):
        raise ValueError(
            f"{path} holds steps {steps[:12]}{' ...' if len(steps) > 12 else ''}, not "
            f"1, 2, 3, ...: it was written by more than one process or edited"
        )
    if not rows:
        raise ValueError(f"{path} is empty: the run has not completed a step")
    needed = REPORTED + tuple(key for key in PER_RUN if key in rows[0])
    for number, row in records:
        missing = [key for key in needed if key not in row]
        if missing:
            raise ValueError(
                f"{path} line {number} (step {row['step']}) lacks {', '.join(missing)}, which "
                f"the trainer logs and the report reads at every step"
            )
        for key in needed:
            if isinstance(row[key], bool) or not isinstance(row[key], int | float):
                raise ValueError(f"{path} line {number}: {key} is {row[key]!r}, not a number")
    return rows


DEFAULT_KL_BUDGET = 0.3
"""Nats per token (SAFE's base threshold): the budget a run is judged against when its
controller has no per-token target of its own."""


def _registered(config: dict[str, Any]) -> bool:
    """Whether the run's controller is registered in this process: a controller the training
    process registered itself is unknown to a later ``report``, which must still work."""
    return config["algo"] in registry.names()


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """The controller's settings in this run: its registration's defaults, then the run's."""
    defaults = registry.registration(config["algo"]).defaults() if _registered(config) else {}
    return {**defaults, **config.get("controller_settings", {})}


def kl_limit(config: dict[str, Any], rows: list[dict[str, Any]]) -> np.ndarray | float:
    """Per token: the per-step threshold of a dead-band controller or budget of a budget
    controller (logged), else the ``target`` of a registered controller (a per-sequence one
    divided by each step's mean response length), else ``DEFAULT_KL_BUDGET``."""
    for logged in ("threshold", "budget"):  # a dead band's threshold, a budget controller's
        if rows and logged in rows[0]:
            return np.array([r[logged] for r in rows])
    target = _settings(config).get("target")
    if target is None or not _registered(config):
        return DEFAULT_KL_BUDGET
    if registry.make(config["algo"]).kl_unit == "per_sequence":
        return float(target) / np.array([r["response_length"] for r in rows])
    return float(target)


BUDGET_SLACK = 1.1
"""SPEC §7: a step keeps the budget when its KL is at most 1.1 × the budget."""


def budget_adherence(kl: np.ndarray, limit: np.ndarray | float, warmup: int) -> float | None:
    """Share of the steps after the first ``warmup`` with KL ≤ ``BUDGET_SLACK`` × limit, in the
    controller's own estimator (SPEC §7); None when the run is no longer than its warm-up."""
    limits = np.broadcast_to(limit, kl.shape)
    if kl.size <= warmup:
        return None
    return float(np.mean(kl[warmup:] <= BUDGET_SLACK * limits[warmup:]))


EVALUATED = ("eval_reward", "eval_kl", "eval_entropy", "eval_distinct_1")
"""What every evaluation logs (``eval_every`` > 0), and ``eval_gold`` where the run has a gold."""


def evaluation_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The last evaluation's metrics and, with a gold reward, the gold's drawdown: the best
    evaluation's gold − the last one's (0 when the last is the best); empty without evaluations."""
    evaluations = [row for row in rows if "eval_reward" in row]
    if not evaluations:
        return {}
    last = evaluations[-1]
    out: dict[str, Any] = {f"{key}_final": float(last[key]) for key in EVALUATED}
    out["evaluations"] = len(evaluations)
    if "eval_gold" in last:
        gold = [float(row["eval_gold"]) for row in evaluations]
        best = max(range(len(gold)), key=gold.__getitem__)
        out.update(
            eval_gold_final=gold[-1],
            eval_gold_best=gold[best],
            eval_gold_best_step=evaluations[best]["step"],
            gold_drawdown=gold[best] - gold[-1],
        )
    return out


def summary(run_dir: Path) -> dict[str, Any]:
    rows = read_metrics(run_dir)
    config = read_json(run_dir / "config.json")
    series = {k: np.array([r[k] for r in rows]) for k in ("reward_mean", "kl_k3", "entropy")}
    limit = kl_limit(config, rows)
    metrics = summarize(series["reward_mean"], series["kl_k3"], series["entropy"], limit).as_dict()
    kl_measured = np.array([r["kl_measured"] for r in rows])
    metrics["budget_adherence"] = budget_adherence(kl_measured, limit, warmup=CRASH_WINDOW)
    if "gold_mean" in rows[0]:
        gold = np.array([r["gold_mean"] for r in rows])
        metrics.update(
            gold_mean=float(gold.mean()),
            gold_final=float(gold[-CRASH_WINDOW:].mean()),
            gold_peak=float(rolling_mean(gold).max()),
            gold_crashes=count_crashes(gold),
        )
    metrics.update(evaluation_summary(rows))
    metrics.update(
        algo=config.get("algo"),
        steps=len(rows),
        reward_start=float(series["reward_mean"][: min(10, len(rows))].mean()),
        distinct_1_final=float(np.mean([r["distinct_1"] for r in rows[-10:]])),
        wall_seconds=float(sum(r["seconds_total"] for r in rows)),
        seconds_per_step=float(np.median([r["seconds_total"] for r in rows])),
    )
    return metrics


def plot(run_dir: Path, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    config = read_json(run_dir / "config.json")
    steps = np.array([r["step"] for r in rows])

    def series(key: str) -> np.ndarray:
        return np.array([r[key] for r in rows], dtype=float)

    floor = _settings(config).get("entropy_floor")
    panels = {
        "reward.png": (
            "reward",
            [("proxy reward mean", series("reward_mean"))]
            + ([("gold reward mean", series("gold_mean"))] if "gold_mean" in rows[0] else []),
        ),
        "kl.png": (
            "KL per token",
            [
                ("k3", series("kl_k3")),
                ("k1", series("kl_k1")),
                ("threshold / target", np.broadcast_to(kl_limit(config, rows), steps.shape)),
            ],
        ),
        "entropy.png": (
            "entropy (nats)",
            [("entropy", series("entropy"))]
            + ([] if floor is None else [("entropy floor", np.full(steps.shape, floor))]),
        ),
        "coef.png": ("KL coefficient β", [("coef", series("coef"))]),
        "value_loss.png": ("value loss", [("value loss", series("value_loss"))]),
    }
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (ylabel, lines) in panels.items():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for label, ys in lines:
            ax.plot(steps, ys, label=label)
        if name == "reward.png":
            mean, std = series("reward_mean"), series("reward_std")
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2, label="± batch std")
        ax.set_xlabel("PPO iteration")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{config.get('algo')}: {ylabel}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        written.append(out_dir / name)
    if any("eval_reward" in row for row in rows):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for label, xs, ys in evaluation_lines(rows):
            ax.plot(xs, ys, marker="o", label=label)
        ax.set_xlabel("PPO iteration")
        ax.set_ylabel("mean score")
        ax.set_title(f"{config.get('algo')}: held-out evaluation")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / "evaluation.png", dpi=100)
        plt.close(fig)
        written.append(out_dir / "evaluation.png")
    return written


def evaluation_lines(rows: list[dict[str, Any]]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, steps, values) of the evaluations' proxy and gold."""
    evaluations = [row for row in rows if "eval_reward" in row]
    steps = np.array([row["step"] for row in evaluations])
    lines = [("held-out proxy", steps, np.array([row["eval_reward"] for row in evaluations]))]
    if "eval_gold" in evaluations[-1]:
        lines.append(("held-out gold", steps, np.array([row["eval_gold"] for row in evaluations])))
    return lines


def report(run_dir: Path) -> Path:
    """Write the report; returns the directory that holds it."""
    out_dir = run_dir / "report"
    plot(run_dir, out_dir)
    metrics = summary(run_dir)
    write_json_atomic(out_dir / "summary.json", metrics)
    lines = [f"# Run report: {run_dir}", "", "| metric | value |", "|---|---|"]
    lines += [
        f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
        for k, v in metrics.items()
    ]
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")
    return out_dir
