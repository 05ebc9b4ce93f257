"""The stability results as markdown (the results page and the README's section) and plots.

Plots ``stability_<regime>[_ablations].png``: reward with 95% bootstrap bands over seeds, KL with
SAFE's threshold and the others' target, entropy. They need the runs' per-step curves, so only a
report from run directories redraws them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from benchmarks.stability.aggregate import ALPHA, StabilityAggregate
from benchmarks.stability.plan import FULL_SAFE, KL_TARGET_PER_TOKEN, is_ablation
from benchmarks.stability.records import MEASURES, Curves
from benchmarks.stability.results import StabilityResults
from benchmarks.text import with_ci

BAND_RESAMPLES = 2000
"""Bootstrap resamples per plotted step (a drawn band, not a reported number)."""


def band(curves: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-step mean and 95% percentile-bootstrap band over seeds (rows) of ``curves``."""
    rng = np.random.default_rng(seed)
    n = curves.shape[0]
    mean = curves.mean(axis=0)
    if n < 2:
        return mean, mean, mean
    picks = rng.integers(0, n, size=(BAND_RESAMPLES, n))
    means = curves[picks].mean(axis=1)
    low, high = np.percentile(means, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)], axis=0)
    return mean, low, high


def plot(
    aggregate: StabilityAggregate, curves: Mapping[tuple[str, str, int], Curves], out_dir: Path
) -> list[Path]:
    """One figure per regime (the algorithms) and one of the ablations with full SAFE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    panels: dict[str, Callable[[str], bool]] = {
        "": lambda v: not is_ablation(v),
        "_ablations": lambda v: v == FULL_SAFE or is_ablation(v),
    }
    for regime in aggregate.regimes:
        groups = aggregate.in_regime(regime)
        for suffix, wanted in panels.items():
            chosen = [g for g in groups if wanted(g.variant)]
            if not chosen or (suffix and len(chosen) < 2):
                continue
            fig, axes = plt.subplots(1, 3, figsize=(15, 4))
            for group in chosen:
                runs = [curves[(regime, group.variant, s)] for s in group.seeds]
                for ax, key in zip(axes, ("reward_mean", "kl_k3", "entropy"), strict=True):
                    stacked = np.stack([run[key] for run in runs])
                    mean, low, high = band(stacked)
                    steps = np.arange(1, mean.size + 1)
                    (line,) = ax.plot(steps, mean, label=f"{group.variant} (n={len(runs)})")
                    ax.fill_between(steps, low, high, alpha=0.2, color=line.get_color())
                    if key == "kl_k3" and group.variant == FULL_SAFE:
                        threshold = np.stack([run["threshold"] for run in runs]).mean(0)
                        ax.plot(
                            steps,
                            threshold,
                            ls="--",
                            color=line.get_color(),
                            label="SAFE threshold (mean)",
                        )
            if not suffix:
                axes[1].axhline(
                    KL_TARGET_PER_TOKEN,
                    ls=":",
                    color="grey",
                    label="PID-Lagrangian / Ziegler target",
                )
            titles = ("batch-mean reward", "per-token KL (k3)", "per-token entropy (nats)")
            for ax, title in zip(axes, titles, strict=True):
                ax.set_title(f"{regime} (lr {chosen[0].lr:g}): {title}")
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


PAGE_COMPARED = ("reward_mean", "crashes", "kl_p95", "entropy_min", "wall_seconds")
"""The measures of the results page's paired table."""


def markdown(results: StabilityResults) -> str:
    """The results page, ``stability.md``."""
    aggregate, words, meta = results.aggregate, results.words, results.meta
    lines = [
        "# Stability: SAFE against PPO on the reference trainer",
        "",
        f"Produced by `{meta.command}` ({meta.plan} plan) on {meta.machine}, from {meta.source}.",
        "Mean over seeds with a 95% percentile-bootstrap CI in brackets. Definitions (SPEC §5): "
        "training-average reward = mean over all steps of the batch-mean reward; a crash = the "
        "10-step rolling mean falls more than max(3 σ, 30% of the run's reward range) below its "
        "running maximum (σ: robust batch-noise estimate); volatility = std of step-to-step "
        "reward changes; KL = per-token k3 to the reference; 'above limit' = fraction of steps "
        "above SAFE's threshold or the 0.3 per-token target of the other algorithms; entropy "
        "per token (collapse = below 10% of the initial).",
        "",
    ]
    for regime in aggregate.regimes:
        groups = aggregate.in_regime(regime)
        lines += [f"## Regime `{regime}` (policy lr {groups[0].lr:g})", ""]
        lines += ["| variant | seeds | " + " | ".join(m.label for m in MEASURES.values()) + " |"]
        lines += ["|---" * (len(MEASURES) + 2) + "|"]
        for group in groups:
            cells = [with_ci(group.measures[name]) for name in MEASURES]
            lines.append(f"| {group.variant} | {len(group.seeds)} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Paired on the same seeds (Δ = variant − baseline, Wilcoxon signed-rank):",
            "",
            "| variant | baseline | metric | Δ mean [95% CI] | relative | p | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for comparison in aggregate.comparisons:
            if comparison.regime != regime:
                continue
            for name in PAGE_COMPARED:
                test = comparison.measures[name]
                if test is None:
                    continue
                rel = "–" if test.relative is None else f"{100 * test.relative:+.1f}%"
                p = "–" if test.p_value is None else f"{test.p_value:.3g}"
                lines.append(
                    f"| {comparison.variant} | {comparison.baseline} | {MEASURES[name].label} | "
                    f"{with_ci(test.difference)} | {rel} | {p} | {test.verdict} |"
                )
        lines.append("")
    if words.ablations:
        lines += ["## What each ablation shows (against full SAFE, same seeds)", ""]
        lines += [f"- {a.sentence}" for a in words.ablations]
        lines.append("")
    lines += ["## The paper's claims", ""]
    for claim in words.claims:
        lines.append(f"- **{claim.claim}: {claim.verdict}.**")
        lines += [f"  - {regime}: {r.sentence}" for regime, r in claim.per_regime.items()]
        if claim.overhead is not None:
            lines.append(f"  - {claim.overhead.sentence}")
    lines += ["", "Plots: " + ", ".join(f"`{p}`" for p in meta.plots), ""]
    return "\n".join(lines)


README_SHOWN = {
    "reward_mean": "training-avg reward",
    "crashes": "crashes / run",
    "kl_p95": "KL p95",
    "kl_above": "steps above limit",
    "entropy_min": "min entropy",
    "distinct_1_final": "distinct-1 (end)",
}


def readme_section(results: StabilityResults) -> list[str]:
    """The README's lines on the stability study (``benchmarks.readme_results``)."""
    aggregate, words = results.aggregate, results.words
    regimes = ", ".join(
        f"*{regime}* (lr {groups[0].lr:g}, {groups[0].steps} iterations)"
        for regime in aggregate.regimes
        if (groups := aggregate.in_regime(regime))
    )
    lines = [
        "### SAFE against PPO on the reference trainer",
        "",
        f"Paired seeds, two regimes: {regimes}. Mean over seeds with a 95% bootstrap CI; "
        "paired differences against PPO on the same seeds with a Wilcoxon signed-rank test. "
        "Full tables: [`benchmarks/results/stability.md`](benchmarks/results/stability.md).",
        "",
        "**The paper's claims:**",
        "",
    ]
    for claim in words.claims:
        lines.append(f"- {claim.claim}: **{claim.verdict}**.")
        lines += [f"  - {regime}: {r.sentence}" for regime, r in claim.per_regime.items()]
        if claim.overhead is not None:
            lines.append(f"  - {claim.overhead.sentence}")
    for regime in aggregate.regimes:
        lines += [
            "",
            f"*{regime}*:",
            "",
            "| variant | seeds | " + " | ".join(README_SHOWN.values()) + " |",
            "|---" * (len(README_SHOWN) + 2) + "|",
        ]
        for group in aggregate.in_regime(regime):
            cells = " | ".join(with_ci(group.measures[name]) for name in README_SHOWN)
            lines.append(f"| {group.variant} | {len(group.seeds)} | {cells} |")
    if words.ablations:
        lines += [
            "",
            "**Ablations** (stress regime, against full SAFE on the same seeds; 'higher' / "
            "'lower' where the bootstrap CI of the paired difference excludes 0):",
            "",
        ]
        lines += [f"- {a.sentence}" for a in words.ablations]
    lines += [
        "",
        "Plots: " + ", ".join(f"[`{p}`](benchmarks/results/{p})" for p in results.meta.plots),
        "",
    ]
    return lines
