"""Render the frontier aggregate (``frontier_report.py``): ``frontier.md`` and one PNG per task ×
regime (proxy–KL and gold–KL panels: PPO's fixed-β frontier and every controller's mean point with
95% bootstrap CIs over seeds in both axes).

Every number in the text is read from the aggregate; the answers in words are generated from it
(``frontier_answer.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.frontier import BUDGETS, ENTROPY_TARGET
from benchmarks.frontier_answer import (
    answer_paragraph,
    gap_text,
    overall_sentence,
    plain_answer,
    regret_text,
    yes_no,
)
from benchmarks.frontier_goal import goal_table
from benchmarks.frontier_report import REGRET_TOLERANCE
from benchmarks.stability_render import fmt, with_ci

PANELS = (("reward_final", "final proxy reward"), ("gold_final", "final gold reward"))


def _shown(path: Path) -> str:
    """A path as a reader can retype it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def commands(runs_dir: Path, out_dir: Path, quick: bool) -> list[str]:
    defaults = ("runs/frontier", "benchmarks/results")
    args = " --quick" if quick else ""
    for flag, path, default in zip(("--runs", "--out"), (runs_dir, out_dir), defaults, strict=True):
        if _shown(path) != default:
            args += f" {flag} {_shown(path)}"
    return [
        f"python -m benchmarks.frontier{args}",
        f"python -m benchmarks.frontier{args} --report-only",
    ]


# ------------------------------------------------------------------ plots
def _error(stats: dict[str, Any]) -> list[list[float]] | None:
    """Matplotlib's asymmetric error bar of a mean and its CI (None without a CI)."""
    ci, mean = stats["ci"], stats["mean"]
    return None if ci is None else [[mean - ci[0]], [ci[1] - mean]]


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    written = []
    for task, by_regime in results["cells"].items():
        for regime, cell in by_regime.items():
            fig, axes = plt.subplots(1, 2, figsize=(15, 5))
            points = cell["frontier"]
            for ax, (key, label) in zip(axes, PANELS, strict=True):
                kl = [p["kl_final"] for p in points]
                if points:
                    ax.plot(kl, [p[key] for p in points], "-o", color="black", label="fixed β")
                for p in points:
                    ax.annotate(
                        f"β={p['beta']:g} (n={p['n']})",
                        (p["kl_final"], p[key]),
                        textcoords="offset points",
                        xytext=(4, 4),
                        fontsize=7,
                    )
                markers = "sD^v<>pP*Xh"
                controllers = [(n, e) for n, e in cell["variants"].items() if e["beta"] is None]
                for i, (name, entry) in enumerate(controllers):
                    x, y = entry["metrics"]["kl_final"], entry["metrics"][key]
                    if x["mean"] is None or y["mean"] is None or x["mean"] <= 0.0:
                        continue  # no point on a log axis
                    ax.errorbar(
                        x["mean"],
                        y["mean"],
                        xerr=_error(x),
                        yerr=_error(y),
                        fmt=markers[i % len(markers)],
                        color=f"C{i % 10}",
                        capsize=3,
                        label=f"{name} (n={entry['n']})",
                    )
                ax.set_xscale("log")
                # A sweep's KLs can span less than a decade, where the default minor labels
                # overprint each other: label 1, 2, 5 × 10^k only.
                ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_xlabel("final KL per token (k3, nats; log scale)")
                ax.set_ylabel(label)
                ax.set_title(f"{task}, {regime} (lr {cell['lr']:g}): {label} against KL")
                ax.grid(alpha=0.3)
            # Outside the panels: with 18 variants a legend inside hides the frontier's top.
            axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
            fig.tight_layout()
            path = out_dir / f"frontier_{task}_{regime}.png"
            fig.savefig(path, dpi=90)
            plt.close(fig)
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


def _row(name: str, entry: dict[str, Any], best: str | None) -> str:
    m, crashes, regret = entry["metrics"], entry["crashes"], entry["gold_regret"]
    crash = " / ".join(
        f"{crashes[k]['total']} ({crashes[k]['runs_with_any']})" for k in ("proxy", "gold")
    )
    label = f"**{name}** (best β)" if name == best else name
    cells = (
        label,
        str(entry["n"]),
        with_ci(m["kl_final"]),
        with_ci(m["reward_final"]),
        with_ci(m["gold_final"]),
        "0 (itself)" if name == best else regret_text(regret),
        yes_no(
            None if regret is None or name == best else regret["lower_at_least_minus_tolerance"]
        ),
        gap_text(entry["proxy_gap"]),
        gap_text(entry["gold_gap"]),
        fmt(m["budget_adherence"]["mean"], 2),
        crash,
        fmt(m["entropy_min"]["mean"]),
        fmt(m["distinct_1_final"]["mean"]),
        "–" if m["wall_seconds"]["mean"] is None else f"{m['wall_seconds']['mean']:.0f}",
    )
    return "| " + " | ".join(cells) + " |"


def _method(results: dict[str, Any]) -> list[str]:
    meta = results["meta"]
    sizes, model = meta["sizes"], meta["model"]
    lrs = {r: c["lr"] for by in results["cells"].values() for r, c in by.items()}
    model_text = (
        "the prepared model's manifest was not found"
        if model is None
        else f"a {model['parameters']:,}-parameter causal LM ({model['n_layer']} layers, width "
        f"{model['n_embd']}, vocabulary {model['vocab_size']}, SFT validation perplexity "
        f"{fmt(model['val_perplexity'], 4)})"
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
        f"- **Sizes**: {model_text}; {sizes['steps']} PPO iterations of {sizes['batch_size']} "
        f"prompts × {sizes['max_new_tokens']} new tokens, {sizes['ppo_epochs']} PPO epochs; "
        + ", ".join(f"*{r}* lr {lr:g}" for r, lr in lrs.items())
        + ".",
        "- **Variants**: `beta-<β>` PPO with fixed β per token (the frontier); `beta0-entropy` "
        f"β = 0 with an entropy controller (target {ENTROPY_TARGET:g} nats per token); every "
        "registered controller at its defaults and at per-token KL budgets "
        + ", ".join(f"{b:g}" for b in BUDGETS)
        + " (`-b<budget>`); `safe` and `safe-published` (the published code's behaviour).",
        "- **Definitions**: *final* = mean of the last 10 iterations; KL = k3 estimate of the "
        "per-token KL to the reference policy; mean over seeds with a 95% percentile-bootstrap "
        f"CI ({meta['resamples']} resamples, fixed seed). *Best β*: the β with the highest mean "
        "final gold. *Gold regret*: final gold − the best β's on the same seed, mean over the "
        "seeds both have, bootstrap CI over those pairs (≥ 0: the β search was not needed). "
        "*Proxy (gold) gap*: mean final proxy (gold) − PPO's frontier interpolated linearly in "
        "log KL at the variant's mean final KL (> 0: above the frontier; 'outside': KL beyond "
        "the β grid's range). *Adherence*: share of post-warm-up steps with KL ≤ 1.1 × the "
        "controller's budget, in its own estimator (– for fixed β). *Crashes*: SPEC §5, total "
        "(runs with any). *distinct-1*: of the last 10 iterations' samples.",
        "",
    ]


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        "# Reward–KL frontier: KL controllers against tuned fixed β, judged by gold reward",
        "",
        f"Generated by `{meta['commands'][0]}` ({meta['plan']} plan) from "
        f"{meta['runs_found']} finished runs of {meta['runs_planned']} planned; every number "
        "comes from the runs. `n` is the number of seeds behind each point.",
        "",
        *_method(results),
        "## Answers",
        "",
        plain_answer(results),
        "",
    ]
    lines += [f"- **{t}.** {answer_paragraph(t, results)}" for t in results["cells"]]
    lines += ["", overall_sentence(results["overall"]), ""]
    lines += [*goal_table(results["goal"], results["meta"]["regret_tolerance"]), ""]
    for task, by_regime in results["cells"].items():
        for regime, cell in by_regime.items():
            best = cell["best_beta"]
            lines += [f"## {task} / {regime} (lr {cell['lr']:g}, {cell['steps']} iterations)", ""]
            lines += [
                "Best fixed β in hindsight: "
                + ("none (no β run)" if best is None else f"`{best}`")
                + ". PPO's frontier (by KL): "
                + "; ".join(
                    f"β {p['beta']:g}: KL {fmt(p['kl_final'])}, proxy {fmt(p['reward_final'])}, "
                    f"gold {fmt(p['gold_final'])}"
                    for p in cell["frontier"]
                )
                + ".",
                "",
                "| " + " | ".join(COLUMNS) + " |",
                "|---" * len(COLUMNS) + "|",
            ]
            lines += [_row(name, e, best) for name, e in cell["variants"].items()]
            lines += ["", f"![{task} {regime}](frontier_{task}_{regime}.png)", ""]
    lines += ["## Reproduce", "", *[f"    {c}" for c in meta["commands"]], ""]
    if meta["runs_unplanned"]:
        lines += [f"Runs outside the plan: {', '.join(meta['runs_unplanned'])}.", ""]
    return "\n".join(lines)
