"""The steering study's results: held-out gold regret against the best fixed β, and drawdown.

Reads every finished run (``done.json``) under the runs root of ``steering.py``, laid out as
``<task>/<regime>/<variant>/seed<k>``, and each run's evaluations (``eval_*`` rows of its
``metrics.jsonl``). Per task, learning rate and horizon h: the best fixed β in hindsight is the
``beta-*`` variant with the highest mean held-out gold at h; a variant's gold regret is its gold
at h minus the best β's on the same seed, mean over the paired seeds with a 95% percentile
bootstrap CI; its drawdown at h is the best evaluation's gold up to h minus the gold at h.
Crashes (SPEC §5, of the proxy and of the batch gold) and entropy-collapse steps are the whole
run's. Writes ``steering.json`` and ``steering.md``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.stats import bootstrap_mean_ci
from reference_trainer.run_dir.files import read_step_records
from safecontrol._atomic import write_json_atomic, write_text_atomic

RESAMPLES = 10_000


@dataclass(frozen=True)
class RunResult:
    task: str
    regime: str
    variant: str
    seed: int
    gold: dict[int, float]
    """Held-out gold per evaluated iteration."""
    kl: dict[int, float]
    """Held-out KL to the reference (k3, nats per token) per evaluated iteration."""
    crashes: int
    """Proxy and batch-gold crashes over the whole run."""
    collapse_steps: int


@dataclass(frozen=True)
class VariantRow:
    variant: str
    n: int
    gold: float
    kl: float
    regret: float | None
    regret_ci: tuple[float, float] | None
    drawdown: float
    crashes: int
    collapse_steps: int


@dataclass(frozen=True)
class Cell:
    task: str
    regime: str
    horizon: int
    best_beta: str
    rows: tuple[VariantRow, ...]


def load_runs(runs_dir: Path) -> list[RunResult]:
    results = []
    for done_path in sorted(runs_dir.glob("*/*/*/seed*/done.json")):
        run_dir = done_path.parent
        done = json.loads(done_path.read_text())
        spec, summary = done["spec"], done["summary"]
        evaluations = [r for r in read_step_records(run_dir / "metrics.jsonl") if "eval_gold" in r]
        results.append(
            RunResult(
                task=spec["task"],
                regime=spec["regime"],
                variant=spec["variant"],
                seed=int(spec["seed"]),
                gold={int(r["step"]): float(r["eval_gold"]) for r in evaluations},
                kl={int(r["step"]): float(r["eval_kl"]) for r in evaluations},
                crashes=int(summary.get("crashes", 0)) + int(summary.get("gold_crashes", 0)),
                collapse_steps=int(summary.get("entropy_collapse_steps", 0)),
            )
        )
    return results


def drawdown(gold: dict[int, float], horizon: int) -> float:
    """Best evaluation's gold up to ``horizon`` − the gold at ``horizon``."""
    return max(v for step, v in gold.items() if step <= horizon) - gold[horizon]


def cell(results: list[RunResult], task: str, regime: str, horizon: int) -> Cell | None:
    runs = [r for r in results if r.task == task and r.regime == regime and horizon in r.gold]
    by_variant: dict[str, dict[int, RunResult]] = {}
    for run in runs:
        by_variant.setdefault(run.variant, {})[run.seed] = run
    betas = [v for v in by_variant if v.startswith("beta-")]
    if not betas:
        return None

    def mean_gold(variant: str) -> float:
        return float(np.mean([r.gold[horizon] for r in by_variant[variant].values()]))

    best = max(betas, key=mean_gold)
    rows = []
    for variant, seeds in sorted(by_variant.items()):
        paired = [
            seeds[s].gold[horizon] - by_variant[best][s].gold[horizon]
            for s in sorted(seeds)
            if s in by_variant[best]
        ]
        rows.append(
            VariantRow(
                variant=variant,
                n=len(seeds),
                gold=mean_gold(variant),
                kl=float(np.mean([r.kl[horizon] for r in seeds.values()])),
                regret=float(np.mean(paired)) if paired else None,
                regret_ci=bootstrap_mean_ci(np.array(paired), RESAMPLES) if paired else None,
                drawdown=float(np.mean([drawdown(r.gold, horizon) for r in seeds.values()])),
                crashes=sum(r.crashes for r in seeds.values()),
                collapse_steps=sum(r.collapse_steps for r in seeds.values()),
            )
        )
    return Cell(task, regime, horizon, best, tuple(rows))


def cells(results: list[RunResult], horizons: tuple[int, ...]) -> list[Cell]:
    keys = sorted({(r.task, r.regime) for r in results})
    found = [cell(results, task, regime, h) for task, regime in keys for h in horizons]
    return [c for c in found if c is not None]


def _signed(x: float | None) -> str:
    return "–" if x is None else f"{x:+.3f}"


def render(table: list[Cell], quick: bool) -> str:
    lines = [
        "# Steering the KL budget: held-out gold against the best fixed β"
        + (" (quick smoke run)" if quick else ""),
        "",
        "Generated by `python -m benchmarks.steering` (`steering_report.py`). *Gold*: mean over "
        "512 held-out prompts, the same sampling noise at every evaluation, at the horizon's "
        "iteration. *Regret*: gold − the best fixed β's (in hindsight, by mean held-out gold at "
        "that horizon) on the same seed, mean and 95% bootstrap CI over the paired seeds. "
        "*Drawdown*: best evaluation's gold up to the horizon − the gold at it (mean over seeds). "
        "*Crashes*: proxy + batch-gold crashes (SPEC §5) over the whole run, summed over seeds; "
        "*collapse*: entropy-collapse steps, summed.",
        "",
    ]
    for c in table:
        lines += [
            f"## {c.task}, {c.regime}, iteration {c.horizon}: best fixed β `{c.best_beta}`",
            "",
            "| variant | n | gold | KL | gold regret [95% CI] | drawdown | crashes | collapse |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in c.rows:
            ci = (
                ""
                if row.regret_ci is None
                else (f" [{row.regret_ci[0]:+.3f}, {row.regret_ci[1]:+.3f}]")
            )
            lines.append(
                f"| {row.variant} | {row.n} | {row.gold:.3f} | {row.kl:.3f} | "
                f"{_signed(row.regret)}{ci} | {row.drawdown:.3f} | {row.crashes} | "
                f"{row.collapse_steps} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_report(runs_dir: Path, out_dir: Path, horizons: tuple[int, ...], quick: bool) -> Path:
    results = load_runs(runs_dir)
    if not results:
        raise FileNotFoundError(f"no finished run (done.json) under {runs_dir}")
    table = cells(results, horizons)
    name = "steering_quick" if quick else "steering"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / f"{name}.json", {"cells": [asdict(c) for c in table]})
    path = out_dir / f"{name}.md"
    write_text_atomic(path, render(table, quick) + "\n")
    return path
