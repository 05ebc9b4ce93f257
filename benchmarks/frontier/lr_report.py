"""The gold-against-learning-rate curves (``lr_curve``) for a reader: where each peaks (the
sentence stored in ``FrontierWords``), a table per task, a plot and the report's section.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.frontier.aggregate import FrontierAggregate
from benchmarks.frontier.cells import NO_BETA
from benchmarks.frontier.lr_curve import BEST_FIXED_BETA, LrCurve
from benchmarks.frontier.plot_style import HIGHLIGHT, error_bar
from benchmarks.text import fmt, markdown_table, with_ci


def lr_sentence(curves: tuple[LrCurve, ...]) -> str:
    """Where each curve's gold peaks, the default controller first."""
    ordered = sorted(curves, key=lambda c: c.name != NO_BETA)
    parts = []
    for curve in ordered:
        best = curve.best
        if best is None:
            continue
        beta = f" (`{best.variant}`)" if curve.name == BEST_FIXED_BETA else ""
        parts.append(
            f"`{curve.name}`{beta} peaks at lr {best.lr:g} with gold {fmt(best.gold_final.mean)} "
            f"(over lrs {', '.join(f'{p.lr:g}' for p in curve.points)})"
        )
    return "; ".join(parts) + "." if parts else "No curve has two learning rates yet."


LR_STYLES = {NO_BETA: (HIGHLIGHT[NO_BETA], "-*"), BEST_FIXED_BETA: ("0.4", ":o")}


def plot_lr_curves(curves: dict[str, tuple[LrCurve, ...]], path: Path) -> None:
    """One panel per task: mean final gold with its 95% CI against the learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4.2), squeeze=False)
    for ax, (task, task_curves) in zip(axes[0], curves.items(), strict=True):
        for i, curve in enumerate(task_curves):
            colour, style = LR_STYLES.get(curve.name, (f"C{i}", "--s"))
            shown = [p for p in curve.points if p.gold_final.mean is not None]
            bars = [error_bar(p.gold_final) or [[0.0], [0.0]] for p in shown]
            ax.errorbar(
                [p.lr for p in shown],
                [p.gold_final.mean for p in shown],
                yerr=[[b[0][0] for b in bars], [b[1][0] for b in bars]],
                fmt=style,
                color=colour,
                capsize=3,
                label=curve.name,
                # Where the best β is the sweep's own β the two curves coincide: the best-β
                # curve is drawn behind, hollow and larger, so that both stay visible.
                **(
                    {"markerfacecolor": "none", "markersize": 10, "zorder": 1}
                    if curve.name == BEST_FIXED_BETA
                    else {"zorder": 2}
                ),
            )
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("final gold reward")
        ax.set_title(f"{task}: gold against learning rate")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def lr_table(curves: tuple[LrCurve, ...]) -> list[str]:
    """One row per curve, one column per lr: final gold [95% CI] (n)."""
    lrs = sorted({p.lr for c in curves for p in c.points})
    rows = []
    for curve in curves:
        by_lr = {p.lr: p for p in curve.points}
        row = [curve.name]
        for lr in lrs:
            p = by_lr.get(lr)
            beta = "" if p is None or curve.name != BEST_FIXED_BETA else f"`{p.variant}` "
            row.append(
                "not run" if p is None else f"{beta}{with_ci(p.gold_final)} (n={p.gold_final.n})"
            )
        rows.append(row)
    return markdown_table(["final gold at lr →", *(f"{lr:g}" for lr in lrs)], rows)


def lr_section(agg: FrontierAggregate, sentences: dict[str, str], stem: str) -> list[str]:
    """The gold-against-lr section (empty: no task has two learning rates)."""
    if not agg.lr_curves:
        return []
    lines = [
        "## Gold against the learning rate",
        "",
        "Does the controller remove the learning-rate search too? The learning-rate sweep's "
        "variants at every lr they ran, and each lr's best fixed β in hindsight (at an lr that "
        "runs only the sweep's variants, that is the one β run there).",
        "",
    ]
    for task, curves in agg.lr_curves.items():
        lines += [f"**{task}.** {sentences[task]}", "", *lr_table(curves), ""]
    return [*lines, f"![gold against learning rate]({stem}_gold_vs_lr.png)", ""]
