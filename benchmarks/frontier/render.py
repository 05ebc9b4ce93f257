"""The frontier aggregate as ``frontier.md`` and one PNG per task × regime (proxy–KL and gold–KL
panels: the fixed-β and trust-region frontiers, kl-budget with its 95% CIs, each family's best
marked, every other variant a faded grey point).

Numbers are read from the aggregate, sentences from the stored ``FrontierWords``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.frontier.aggregate import FrontierAggregate
from benchmarks.frontier.cells import (
    BEST_PAIR,
    FAMILIES,
    FAMILY_LABELS,
    FIXED_BETA,
    NO_BETA,
    REGRET_FAMILIES,
    REGRET_TOLERANCE,
    TRUST_REGION,
    Cell,
    VariantStats,
    pair_label,
)
from benchmarks.frontier.lr_report import lr_section, plot_lr_curves
from benchmarks.frontier.plan import BUDGETS, ENTROPY_TARGET, TRUST_REGION_KL
from benchmarks.frontier.plot_style import BEST_MARK, HIGHLIGHT, error_bar
from benchmarks.frontier.records import ModelInfo, SweepSizes
from benchmarks.frontier.words import FrontierWords, gap_text, regret_text
from benchmarks.stats import RESAMPLES
from benchmarks.text import fmt, markdown_table, with_ci, yes_no

PANELS = (("reward_final", "final proxy reward"), ("gold_final", "final gold reward"))
DEFAULT_RUNS, DEFAULT_OUT = "runs/frontier", "benchmarks/results"


@dataclass(frozen=True)
class ReportMeta:
    """Where the report's numbers come from."""

    plan: str
    """A name of ``plan.PLANS``: "full", "quick" or "larger"."""
    runs_found: int
    """Records the report is computed from."""
    runs_planned: int
    runs_unplanned: tuple[str, ...]
    records_from_runs: int
    """Of ``runs_found``, read from finished run directories (the rest from the results JSON)."""
    commands: tuple[str, ...]
    sizes: SweepSizes | None
    model: ModelInfo | None
    resamples: int = RESAMPLES
    regret_tolerance: float = REGRET_TOLERANCE


def _shown(path: Path) -> str:
    """A path as a reader can retype it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def results_stem(plan: str) -> str:
    """The results files' name: ``frontier`` (the full and quick plans), ``frontier_larger``."""
    return "frontier" if plan in ("full", "quick") else f"frontier_{plan}"


def default_runs(plan: str) -> str:
    return DEFAULT_RUNS if plan in ("full", "quick") else f"{DEFAULT_RUNS}-{plan}"


def commands(runs_dir: Path, out_dir: Path, plan: str) -> tuple[str, ...]:
    args = "" if plan == "full" else " --quick" if plan == "quick" else f" --plan {plan}"
    defaults = (default_runs(plan), DEFAULT_OUT)
    for flag, path, default in zip(("--runs", "--out"), (runs_dir, out_dir), defaults, strict=True):
        if _shown(path) != default:
            args += f" {flag} {_shown(path)}"
    return (
        f"python -m benchmarks.frontier{args}",
        f"python -m benchmarks.frontier{args} --report-only",
    )


# ------------------------------------------------------------------ plots
def _point(entry: VariantStats, key: str) -> tuple[float, float] | None:
    x, y = entry.metrics["kl_final"].mean, entry.metrics[key].mean
    return None if x is None or y is None or x <= 0.0 else (x, y)


def _panel(ax: Any, cell: Cell, key: str, label: str) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    on_lines = {p.variant for fam in cell.families.values() for p in fam.frontier}
    for name, entry in cell.variants.items():
        point = _point(entry, key)
        if point is not None and name != NO_BETA and name not in on_lines:
            ax.plot(*point, "o", color="0.7", markersize=4, zorder=1)
    for family in FAMILIES:
        points = cell.families[family].frontier
        if not points:
            state = "not run" if not cell.families[family].members else "no complete member"
            ax.plot(
                [],
                [],
                "-o" if family == FIXED_BETA else "--s",
                color=HIGHLIGHT[family],
                label=f"{FAMILY_LABELS[family]}: {state}",
            )
            continue
        ax.plot(
            [p.kl_final for p in points],
            [getattr(p, key) for p in points],
            "-o" if family == FIXED_BETA else "--s",
            color=HIGHLIGHT[family],
            markersize=5,
            zorder=2,
            label=f"{FAMILY_LABELS[family]} frontier (n={min(p.n for p in points)})",
        )
        for p in points:
            ax.annotate(
                f"{p.beta:g}",
                (p.kl_final, getattr(p, key)),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=HIGHLIGHT[family],
            )
        best = cell.families[family].best
        point = None if best is None else _point(cell.variants[best], key)
        if best is not None and point is not None:
            ax.plot(
                *point,
                "o",
                markersize=14,
                markerfacecolor="none",
                markeredgewidth=2,
                color=BEST_MARK[family],
                zorder=3,
                label=f"best {FAMILY_LABELS[family]}: {best}",
            )
    default = cell.variants.get(NO_BETA)
    point = None if default is None else _point(default, key)
    if default is not None and point is not None:
        ax.errorbar(
            *point,
            xerr=error_bar(default.metrics["kl_final"]),
            yerr=error_bar(default.metrics[key]),
            fmt="*",
            markersize=12,
            color=HIGHLIGHT[NO_BETA],
            capsize=3,
            zorder=4,
            label=f"{NO_BETA} (default, n={default.n})",
        )
    ax.set_xscale("log")
    # A sweep's KLs can span less than a decade, where the default minor labels overprint each
    # other: label 1, 2, 5 × 10^k only.
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("final KL per token (k3, nats; log scale)")
    ax.set_ylabel(label)
    ax.set_title(f"{cell.task}, {cell.regime} (lr {cell.lr:g}): {label} against KL")
    ax.grid(alpha=0.3)


def plot(agg: FrontierAggregate, out_dir: Path, stem: str = "frontier") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for task, by_regime in agg.cells.items():
        for regime, cell in by_regime.items():
            fig, axes = plt.subplots(1, 2, figsize=(13, 5))
            for ax, (key, label) in zip(axes, PANELS, strict=True):
                _panel(ax, cell, key, label)
            axes[0].plot([], [], "o", color="0.7", markersize=4, label="every other variant")
            axes[0].legend(fontsize=7, loc="best")
            fig.tight_layout()
            path = out_dir / f"{stem}_{task}_{regime}.png"
            fig.savefig(path, dpi=90)
            plt.close(fig)
            written.append(path)
    if agg.lr_curves:
        path = out_dir / f"{stem}_gold_vs_lr.png"
        plot_lr_curves(agg.lr_curves, path)
        written.append(path)
    return written


# ------------------------------------------------------------------ markdown
COLUMNS = (
    "variant",
    "n",
    "KL final",
    "proxy final",
    "gold final",
    "gold regret [95% CI]",
    f"CI low ≥ −{REGRET_TOLERANCE:g}",
    "proxy gap",
    "gold gap",
    "adherence",
    "crashes proxy / gold",
    "min entropy",
    "distinct-1",
    "s / run",
)


def _row(entry: VariantStats, cell: Cell) -> list[str]:
    m, regret, best = entry.metrics, entry.gold_regret, cell.best_beta
    crash = " / ".join(
        f"{c.total} ({c.runs_with_any})" for c in (entry.proxy_crashes, entry.gold_crashes)
    )
    label = entry.name
    if entry.name == best:
        label = f"**{entry.name}** (best β)"
    elif entry.name == cell.families[TRUST_REGION].best:
        label = f"**{entry.name}** (best trust-region β)"
    wall = m["wall_seconds"].mean
    return [
        label,
        str(entry.n),
        with_ci(m["kl_final"]),
        with_ci(m["reward_final"]),
        with_ci(m["gold_final"]),
        "0 (itself)" if entry.name == best else regret_text(regret),
        yes_no(None if regret is None or entry.name == best else regret.within_tolerance),
        gap_text(entry.proxy_gap),
        gap_text(entry.gold_gap),
        fmt(m["budget_adherence"].mean, 2),
        crash,
        fmt(m["entropy_min"].mean),
        fmt(m["distinct_1_final"].mean),
        "–" if wall is None else f"{wall:.0f}",
    ]


def family_regret_table(cell: Cell) -> list[str]:
    """Every variant's gold regret against each family's best here and the task's best (β, lr)
    pair ("not run": the family has no run in this cell)."""
    header = ["variant"]
    for family in REGRET_FAMILIES:
        if family == BEST_PAIR:
            best = "no fixed β" if cell.best_pair is None else f"`{cell.best_pair}`"
            header.append(f"regret against the best {FAMILY_LABELS[family]} ({best})")
            continue
        fam = cell.families[family]
        best = (
            "not run"
            if not fam.members
            else "no complete member"
            if fam.best is None
            else f"best `{fam.best}`, seeds {len(fam.headline_seeds)}"
        )
        header.append(f"regret against {FAMILY_LABELS[family]} ({best})")
    rows = []
    for name, entry in cell.variants.items():
        row = [name]
        for family in REGRET_FAMILIES:
            itself = cell.best_pair if family == BEST_PAIR else cell.families[family].best
            if family != BEST_PAIR and not cell.families[family].members:
                row.append("not run")
            elif itself is not None and itself in (name, pair_label(name, cell.lr)):
                row.append("0 (itself)")
            else:
                regret = entry.regrets[family]
                seeds = ""
                if regret is not None and regret.estimate.ci is not None:
                    seeds = f" (n={regret.estimate.n})"
                row.append(regret_text(regret) + seeds)
        rows.append(row)
    return markdown_table(header, rows)


def _method(agg: FrontierAggregate, meta: ReportMeta) -> list[str]:
    sizes, model = meta.sizes, meta.model
    lrs = {r: c.lr for by in agg.cells.values() for r, c in by.items()}
    model_text = (
        "the prepared model's manifest was not found"
        if model is None
        else f"a {model.parameters:,}-parameter causal LM ({model.n_layer} layers, width "
        f"{model.n_embd}, vocabulary {model.vocab_size}, SFT validation perplexity "
        f"{fmt(model.val_perplexity, 4)})"
    )
    size_text = (
        "sizes unknown"
        if sizes is None
        else f"{sizes.steps} PPO iterations of {sizes.batch_size} prompts × "
        f"{sizes.max_new_tokens} new tokens, {sizes.ppo_epochs} PPO epochs"
    )
    return [
        "## Method",
        "",
        "- **Tasks** (`reference_trainer/tasks/offline.py`): the policy trains on a proxy reward "
        "and never sees the gold one. *sentiment*: proxy VADER compound of the continuation "
        "(gameable by repetition, emphasis, single letters); gold VADER of its distinct words "
        "times fluency under the frozen SFT model. *reward-model*: a gold labeller (the "
        "sentiment gold) labels SFT samples, a reward model initialised from the SFT model is "
        "trained on them and is the proxy (Gao et al. 2022). *topic*: proxy the share of words "
        "that are person nouns (WordNet `noun.person`); gold distinct person nouns (saturating "
        "at 3) times fluency.",
        f"- **Sizes**: {model_text}; {size_text}; "
        + ", ".join(f"*{r}* lr {lr:g}" for r, lr in lrs.items())
        + ".",
        "- **Variants**: `beta-<β>` PPO with fixed β per token (the fixed-β family; its grid "
        "refined at the standard lr and extended upwards at the stress lr); `tr-beta-<β>` fixed β "
        f"with the trainer's per-step KL limit of {TRUST_REGION_KL:g} nats per token (the "
        "trust-region family); `beta0-entropy` "
        f"β = 0 with an entropy controller (target {ENTROPY_TARGET:g} nats per token); every "
        "registered controller at its defaults and at per-token KL budgets "
        + ", ".join(f"{b:g}" for b in BUDGETS)
        + " (`-b<budget>`); `safe` and `safe-published` (the published code's behaviour).",
        f"- **Definitions**: *final* = mean of the last 10 iterations; KL = k3 estimate of the "
        f"per-token KL to the reference policy; mean over seeds with a 95% percentile-bootstrap "
        f"CI ({meta.resamples} resamples, fixed seed). A family's *headline seeds* are every "
        f"seed one of its members has in the cell; its *frontier* and its *best member in "
        f"hindsight* (the highest mean final gold) are taken among the members with all of them "
        f"(a member with fewer seeds is still reported in the tables, as a grey point in the "
        f"plots). *Best β*: the fixed-β family's best. *Gold regret*: final gold − the best β's "
        f"on the same seed, mean over the seeds both have, bootstrap CI over those pairs (≥ 0: "
        f"the β search was not needed); the per-family tables give it against each family's "
        f"best, and against the task's best *(β, lr) pair*: the fixed-β best of the learning "
        f"rate whose best has the highest mean final gold (a user who tunes the learning rate "
        f"with β), on the same seeds. *Proxy (gold) gap*: mean final proxy (gold) − the fixed-β "
        f"frontier interpolated linearly in log KL at the variant's mean final KL (> 0: above "
        f"the frontier; 'outside': KL beyond the frontier's range). *Adherence*: share of post-"
        f"warm-up steps with KL ≤ 1.1 × the controller's budget, in its own estimator (– for "
        f"fixed β). *Crashes*: SPEC §5, total (runs with any); the first 750 runs' results kept "
        f"these two numbers per variant and not per seed, so their records give the crashes to "
        f"the variant's first seeds (every total and count shown is exact, which seed crashed is"
        f" not). *distinct-1*: of the last 10 iterations' samples. *Gold drawdown* (best − final "
        f"gold) is not measured here: these runs hold no prompts out for evaluation, and a peak "
        f"of noisy batch gold would overstate any fall; the steering study "
        f"(`steering.md`) gives it on 512 held-out prompts at 100 and 300 iterations.",
        "",
    ]


def markdown(agg: FrontierAggregate, words: FrontierWords, meta: ReportMeta) -> str:
    source = (
        f"{meta.runs_found} finished runs of {meta.runs_planned} planned "
        f"({meta.records_from_runs} read from run directories, the rest from the records "
        "stored in `frontier.json`)"
    )
    lines = [
        "# Reward–KL frontier: KL controllers against tuned fixed β, judged by gold reward",
        "",
        f"Generated by `{meta.commands[0]}` ({meta.plan} plan) from {source}; every number "
        "comes from the runs. `n` is the number of seeds behind each point.",
        "",
        *_method(agg, meta),
        "## Answers",
        "",
        words.plain_answer,
        "",
    ]
    lines += [f"- **{t}.** {text}" for t, text in words.tasks.items()]
    lines += ["", words.overall, "", *words.goal_table, ""]
    lines += [f"- {text}" for text in words.kl_spent] + ([""] if words.kl_spent else [])
    lines += lr_section(agg, words.lr_curves, results_stem(meta.plan))
    for task, by_regime in agg.cells.items():
        for regime, cell in by_regime.items():
            best = cell.best_beta
            lines += [f"## {task} / {regime} (lr {cell.lr:g}, {cell.steps} iterations)", ""]
            lines += [
                "Best fixed β in hindsight: "
                + ("none (no β run)" if best is None else f"`{best}`")
                + ". PPO's frontier (by KL): "
                + "; ".join(
                    f"β {p.beta:g}: KL {fmt(p.kl_final)}, proxy {fmt(p.reward_final)}, "
                    f"gold {fmt(p.gold_final)}"
                    for p in cell.frontier
                )
                + ".",
                "",
                *markdown_table(COLUMNS, [_row(e, cell) for e in cell.variants.values()]),
                "",
                f"Gold regret against each baseline family's best in hindsight ({task} / "
                f"{regime}):",
                "",
                *family_regret_table(cell),
                "",
                f"![{task} {regime}]({results_stem(meta.plan)}_{task}_{regime}.png)",
                "",
            ]
    lines += ["## Reproduce", "", *[f"    {c}" for c in meta.commands], ""]
    if meta.runs_unplanned:
        lines += [f"Runs outside the plan: {', '.join(meta.runs_unplanned)}.", ""]
    return "\n".join(lines)
