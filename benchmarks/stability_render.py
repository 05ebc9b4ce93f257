"""Render the stability sweep's aggregate (``stability_report.py``) as results files.

Writes ``stability.json``, ``stability.md`` and ``stability_<regime>[_ablations].png`` (reward
with 95% bootstrap bands over seeds, KL with SAFE's threshold and the others' target, entropy).
"""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stability_report import (
    ABLATION_METRICS,
    ALPHA,
    FULL_SAFE,
    METRICS,
    OVERHEAD_CLAIM,
    ablation_readings,
    aggregate,
    claims,
    load_runs,
    refreshed_overhead_claim,
)

KL_TARGET_PER_TOKEN = 0.3
"""The per-token KL target of PID-Lagrangian (and, × 16 tokens, of Ziegler) in the sweep."""


def band(curves: np.ndarray, seed: int = 0, resamples: int = 2000) -> tuple[np.ndarray, ...]:
    """Per-step mean and 95% percentile-bootstrap band over seeds (rows) of ``curves``."""
    rng = np.random.default_rng(seed)
    n = curves.shape[0]
    mean = curves.mean(axis=0)
    if n < 2:
        return mean, mean, mean
    picks = rng.integers(0, n, size=(resamples, n))
    means = curves[picks].mean(axis=1)
    low, high = np.percentile(means, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)], axis=0)
    return mean, low, high


# ------------------------------------------------------------------ plots
def plot(runs: dict[tuple[str, str], dict[int, Any]], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    by_panel = {
        "": lambda v: not v.startswith(FULL_SAFE + "-"),
        "_ablations": lambda v: v == FULL_SAFE or v.startswith(FULL_SAFE + "-"),
    }
    for regime in sorted({r for r, _ in runs}):
        for suffix, wanted in by_panel.items():
            variants = sorted(v for r, v in runs if r == regime and wanted(v))
            if not variants or (suffix and len(variants) < 2):
                continue
            fig, axes = plt.subplots(1, 3, figsize=(15, 4))
            for variant in variants:
                seeds = runs[(regime, variant)]
                for ax, key in zip(axes, ("reward_mean", "kl_k3", "entropy"), strict=True):
                    curves = np.stack([seeds[s]["curves"][key] for s in sorted(seeds)])
                    mean, low, high = band(curves)
                    steps = np.arange(1, mean.size + 1)
                    (line,) = ax.plot(steps, mean, label=f"{variant} (n={curves.shape[0]})")
                    ax.fill_between(steps, low, high, alpha=0.2, color=line.get_color())
                    if key == "kl_k3" and variant == FULL_SAFE:
                        threshold = np.stack(
                            [seeds[s]["curves"]["threshold"] for s in sorted(seeds)]
                        )
                        ax.plot(
                            steps,
                            threshold.mean(0),
                            ls="--",
                            color=line.get_color(),
                            label="SAFE threshold (mean)",
                        )
            any_config = next(iter(runs[(regime, variants[0])].values()))["config"]
            if not suffix:
                axes[1].axhline(
                    KL_TARGET_PER_TOKEN,
                    ls=":",
                    color="grey",
                    label="PID-Lagrangian / Ziegler target",
                )
            titles = ("batch-mean reward", "per-token KL (k3)", "per-token entropy (nats)")
            for ax, title in zip(axes, titles, strict=True):
                ax.set_title(f"{regime} (lr {any_config['lr']:g}): {title}")
                ax.set_xlabel("PPO iteration")
            axes[1].set_yscale("symlog", linthresh=1.0)
            axes[0].legend(fontsize=7)
            axes[1].legend(fontsize=7)
            fig.tight_layout()
            path = out_dir / f"stability_{regime}{suffix}.png"
            fig.savefig(path, dpi=90)
            plt.close(fig)
            written.append(path)
    return written


# ------------------------------------------------------------------ report
def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}" if abs(value) >= 100 else f"{value:.{digits}f}"


def with_ci(stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "–"
    ci = stats["ci"]
    return fmt(stats["mean"]) + ("" if ci is None else f" [{fmt(ci[0])}, {fmt(ci[1])}]")


def ablation_lines(readings: dict[str, dict[str, Any]]) -> list[str]:
    """One sentence per ablation, from ``ablation_readings``."""
    lines = []
    for variant, entry in readings.items():
        parts = []
        for name in ABLATION_METRICS:
            r = entry[name]
            rel = "" if r["relative"] is None else f" ({100 * r['relative']:+.1f}%)"
            parts.append(f"{METRICS[name][0]} {r['reading']}{rel}")
        test = entry["reward_mean"]["test"]
        lines.append(f"{variant}: " + ", ".join(parts) + f"; Wilcoxon: {test}.")
    return lines


def markdown(results: dict[str, Any], command: str) -> str:
    groups, comparisons = results["groups"], results["comparisons"]
    lines = [
        "# Stability: SAFE against PPO on the reference trainer",
        "",
        f"Produced by `{command}` ({results['plan']} plan) on {results['machine']}.",
        "Mean over seeds with a 95% percentile-bootstrap CI in brackets. Definitions (SPEC §5): "
        "training-average reward = mean over all steps of the batch-mean reward; a crash = the "
        "10-step rolling mean falls more than max(3 σ, 30% of the run's reward range) below its "
        "running maximum (σ: robust batch-noise estimate); volatility = std of step-to-step "
        "reward changes; KL = per-token k3 to the reference; 'above limit' = fraction of steps "
        "above SAFE's threshold or the 0.3 per-token target of the other algorithms; entropy "
        "per token (collapse = below 10% of the initial).",
        "",
    ]
    shown = (
        "reward_mean",
        "reward_final",
        "volatility",
        "crashes",
        "kl_mean",
        "kl_p95",
        "kl_max",
        "kl_above",
        "entropy_min",
        "distinct_1_final",
        "wall_seconds",
    )
    for regime, variants in groups.items():
        lr = next(iter(variants.values()))["lr"]
        lines += [f"## Regime `{regime}` (policy lr {lr:g})", ""]
        lines += ["| variant | seeds | " + " | ".join(METRICS[m][0] for m in shown) + " |"]
        lines += ["|---" * (len(shown) + 2) + "|"]
        for variant, group in variants.items():
            cells = [with_ci(group["metrics"][m]) for m in shown]
            lines.append(f"| {variant} | {len(group['seeds'])} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Paired on the same seeds (Δ = variant − baseline, Wilcoxon signed-rank):",
            "",
        ]
        lines += ["| variant | baseline | metric | Δ mean [95% CI] | relative | p | verdict |"]
        lines += ["|---|---|---|---|---|---|---|"]
        for variant, by_baseline in comparisons.get(regime, {}).items():
            for baseline, metrics in by_baseline.items():
                for m in ("reward_mean", "crashes", "kl_p95", "entropy_min", "wall_seconds"):
                    c = metrics[m]
                    if c is None:
                        continue
                    ci = "" if c["ci"] is None else f" [{fmt(c['ci'][0])}, {fmt(c['ci'][1])}]"
                    rel = "–" if c["relative"] is None else f"{100 * c['relative']:+.1f}%"
                    p = "–" if c["p_value"] is None else f"{c['p_value']:.3g}"
                    lines.append(
                        f"| {variant} | {baseline} | {METRICS[m][0]} | "
                        f"{fmt(c['mean_difference'])}{ci} | {rel} | {p} | {c['verdict']} |"
                    )
        lines.append("")
    if results["ablations"]:
        lines += ["## What each ablation shows (against full SAFE, same seeds)", ""]
        lines += [f"- {line}" for line in ablation_lines(results["ablations"])]
        lines.append("")
    lines += ["## The paper's claims", ""]
    for claim in results["claims"]:
        lines.append(f"- **{claim['claim']}: {claim['verdict']}.**")
        for regime, detail in claim.get("per_regime", {}).items():
            parts = [
                f"{k}={fmt(v) if isinstance(v, float) else v}"
                for k, v in detail.items()
                if k not in ("ci", "safe_ci")
            ]
            lines.append(f"  - {regime}: " + ", ".join(parts))
        for key in ("controller_us_per_update", "controller_share_of_step", "note"):
            if key in claim:
                lines.append(f"  - {key}: {claim[key]}")
    lines += ["", "Plots: " + ", ".join(f"`{p}`" for p in results["plots"]), ""]
    return "\n".join(lines)


def write_report(runs_dir: Path, out_dir: Path, plan_name: str, command: str = "") -> Path:
    """Aggregate ``runs_dir`` into ``out_dir``; returns the markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = load_runs(runs_dir)
    results = aggregate(runs)
    results["claims"] = claims(results, *_speed_results(out_dir))
    results["ablations"] = ablation_readings(results)
    results["plan"] = plan_name
    cpus = os.cpu_count() or 1
    results["machine"] = f"{platform.machine()}, {platform.python_version()}, {cpus} CPUs"
    results["plots"] = [p.name for p in plot(runs, out_dir)]
    return _write(results, out_dir, command)


def refresh_overhead(out_dir: Path, command: str = "") -> Path:
    """Recompute the overhead claim of ``out_dir/stability.json`` from the ``overhead.json`` and
    ``trainer_speed.json`` beside it, keeping everything the sweep measured: those two benchmarks
    are rerun on a quiet machine, apart from the sweep, whose runs need not be at hand."""
    results = json.loads((out_dir / "stability.json").read_text())
    (index,) = [i for i, c in enumerate(results["claims"]) if c["claim"] == OVERHEAD_CLAIM]
    stored = results["claims"][index]
    results["claims"][index] = refreshed_overhead_claim(stored, *_speed_results(out_dir))
    return _write(results, out_dir, command)


def _speed_results(out_dir: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    overhead, trainer_speed = (
        json.loads(path.read_text()) if path.is_file() else None
        for path in (out_dir / "overhead.json", out_dir / "trainer_speed.json")
    )
    return overhead, trainer_speed


def _write(results: dict[str, Any], out_dir: Path, command: str) -> Path:
    quick = results["plan"] == "quick"
    command = command or f"python benchmarks/stability.py{' --quick' if quick else ''}"
    (out_dir / "stability.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    path = out_dir / "stability.md"
    path.write_text(markdown(results, command))
    return path
