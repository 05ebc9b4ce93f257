"""The frontier study's answers in words, computed once from the aggregate (``FrontierWords``) and
stored in ``frontier.json``; ``frontier.md`` and the README show the stored text.

Per task, over every task × learning rate, one plain paragraph that says which controller to run,
how it fares against each tuned baseline family and what SAFE's published constants do, and the
goal check's table. Every number is read from the aggregate; nothing here is written by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.frontier.aggregate import FrontierAggregate
from benchmarks.frontier.cells import (
    BEST_PAIR,
    FAMILY_LABELS,
    FIXED_BETA,
    NO_BETA,
    REGRET_FAMILIES,
    REGRET_TOLERANCE,
    SAFE,
    SAFE_PUBLISHED,
    TRUST_REGION,
    Cell,
    Gap,
    Regret,
    VariantStats,
)
from benchmarks.frontier.choices import ADHERENCE_GOAL, GoalCheck, TaskAnswer
from benchmarks.frontier.lr_report import lr_sentence
from benchmarks.frontier.plan import TRUST_REGION_KL
from benchmarks.stats import Estimate
from benchmarks.text import difference_text, fmt, signed, yes_no


@dataclass(frozen=True)
class FrontierWords:
    plain_answer: str
    """The paragraph the README and ``frontier.md`` open with."""
    tasks: dict[str, str]
    """Per task: its answer paragraph."""
    overall: str
    """The pick over every task × learning rate."""
    goal_table: tuple[str, ...]
    """Markdown lines: the goal check of the controller that needs no β."""
    console: dict[str, str]
    """Per task: one line for the console."""
    lr_curves: dict[str, str]
    """Per task with a learning-rate sweep: where each curve's gold peaks."""
    kl_spent: tuple[str, ...] = ()
    """Per full-grid regime: the best fixed β and its final KL on each task beside the default
    controller's (is the useful leash a KL, or a β?)."""


def regret_text(regret: Regret | None) -> str:
    return "–" if regret is None else difference_text(regret.estimate)


def gap_text(gap: Gap) -> str:
    return signed(gap.gap) if gap.status == "inside" else gap.status


def _position(entry: VariantStats) -> str:
    gap, kl = entry.proxy_gap, entry.metrics["kl_final"].mean
    if gap.status == "outside":
        return f"outside the β grid's KL range (KL {fmt(kl)}), so off the known frontier"
    if gap.status != "inside" or gap.gap is None:
        return f"not placed against the frontier ({gap.status})"
    side = "above" if gap.gap > 0 else "below"
    return f"{fmt(abs(gap.gap))} {side} the proxy frontier at its KL ({fmt(kl)})"


def _regret_sentence(regret: Regret | None) -> str:
    if regret is None:
        return "no gold regret (no seed shared with the best β)"
    if regret.estimate.ci is None:
        return f"gold regret {signed(regret.estimate.mean)} on one paired seed (no CI)"
    verdict = "≥" if regret.within_tolerance else "<"
    return (
        f"gold regret {regret_text(regret)} over {regret.estimate.n} paired seeds "
        f"(CI lower bound {verdict} −{REGRET_TOLERANCE:g})"
    )


def answer_paragraph(answer: TaskAnswer, cells: dict[str, Cell]) -> str:
    """The plain answer for one task, over the regimes its picks were made in."""
    parts = []
    for regime, chosen in answer.per_regime.items():
        cell, pick = cells[regime], chosen.pick
        best = cell.best_beta
        if best is None:
            parts.append(f"In *{regime}* no fixed-β run has finished: no regret yet.")
            continue
        gold = cell.variants[best].metrics["gold_final"]
        text = (
            f"In *{regime}* (lr {cell.lr:g}) the best fixed β in hindsight is "
            f"{cell.variants[best].beta:g} (final gold {fmt(gold.mean)}, n = {gold.n})"
        )
        if pick is not None:
            text += f"; the controller with the highest (best) gold regret is `{pick}`: "
            text += _regret_sentence(cell.variants[pick].gold_regret)
        parts.append(text + ".")
    matching, pick = answer.match_best_beta_everywhere, answer.pick
    if matching:
        parts.append(
            f"Regret CI lower bound ≥ −{REGRET_TOLERANCE:g} in every regime: "
            + ", ".join(f"`{n}`" for n in matching)
            + "."
        )
    elif pick is None:
        parts.append("No controller has a paired gold regret in every regime yet.")
    elif answer.too_few_seeds:
        parts.append("Too few paired seeds for a regret CI: no controller can be cleared yet.")
    else:
        parts.append(
            f"No controller's regret CI lower bound is ≥ −{REGRET_TOLERANCE:g} in every regime."
        )
    if pick is not None:
        parts.append(
            f"**Pick `{pick}`** on this task (the highest mean regret in its worst regime, "
            f"{signed(answer.pick_worst_regime_regret)}" + (", among those)." if matching else ").")
        )
    for name, label in ((SAFE_PUBLISHED, "SAFE's published constants"), (SAFE, "SAFE here")):
        found = [(r, c.variants[name]) for r, c in cells.items() if name in c.variants]
        if found:
            parts.append(
                f"{label} (`{name}`): "
                + "; ".join(
                    f"in {r} {_position(e)}, {_regret_sentence(e.gold_regret)}" for r, e in found
                )
                + "."
            )
    return " ".join(parts)


def answer_line(answer: TaskAnswer) -> str:
    """One console line: the pick and the controllers that match the best β."""
    cleared = (
        "too few paired seeds for a CI"
        if answer.too_few_seeds
        else f"within −{REGRET_TOLERANCE:g} everywhere: "
        + (", ".join(answer.match_best_beta_everywhere) or "none")
    )
    return (
        "no controller with a paired regret in every regime yet"
        if answer.pick is None
        else f"pick {answer.pick} (worst-regime mean gold regret "
        f"{signed(answer.pick_worst_regime_regret)}; {cleared})"
    )


def overall_sentence(overall: TaskAnswer) -> str:
    """The pick over every task × learning rate: one default for a task the user cannot name."""
    line = answer_line(overall).replace("worst-regime", "worst-cell")
    return f"**Across every task and learning rate** (one default, the task unknown): {line}."


def _span(values: Sequence[float], digits: int = 3, sign: bool = True) -> str:
    """The range of some values as "a to b" (one value: itself)."""
    low, high = min(values), max(values)
    text = signed(low) if sign else fmt(low, digits)
    return text if low == high else f"{text} to {signed(high) if sign else fmt(high, digits)}"


def _ci_counts(estimates: Sequence[Estimate]) -> str:
    """Where the regret CIs lie relative to 0, counted (regrets without a CI are left out)."""
    with_ci = [ci for e in estimates if (ci := e.ci) is not None]
    counts = {
        "above 0": sum(low > 0 for low, _ in with_ci),
        "spanning 0": sum(low <= 0 <= high for low, high in with_ci),
        "below 0": sum(high < 0 for _, high in with_ci),
    }
    shown = ", ".join(f"{k} on {v}" for k, v in counts.items() if v)
    return f"CI {shown} of {len(with_ci)}" if with_ci else "no CI yet"


def _all_cells(agg: FrontierAggregate) -> list[Cell]:
    return [c for by in agg.cells.values() for c in by.values()]


def _means(regrets: Sequence[Regret]) -> list[float]:
    return [m for r in regrets if (m := r.estimate.mean) is not None]


def _adherence_span(entries: Sequence[VariantStats]) -> str | None:
    """The range of the entries' budget adherence (None: none of them has a budget)."""
    known = [m for e in entries if (m := e.metrics["budget_adherence"].mean) is not None]
    return _span(known, 2, sign=False) if known else None


def _pick_sentence(agg: FrontierAggregate, pick: str) -> str:
    by_regime: dict[str, list[Cell]] = {}
    for cell in _all_cells(agg):
        entry = cell.variants.get(pick)
        if entry is not None and entry.gold_regret is not None:
            by_regime.setdefault(cell.regime, []).append(cell)
    parts, entries = [], []
    for regime, cells in by_regime.items():
        entries += [c.variants[pick] for c in cells]
        regrets = [r for c in cells if (r := c.variants[pick].gold_regret) is not None]
        lrs = ", ".join(sorted({f"{c.lr:g}" for c in cells}))
        # Where a single β ran (the learning-rate sweep), its "best" was not tuned to that lr.
        grid = {m for c in cells for m in c.families[FIXED_BETA].members}
        untuned = f" against its one fixed β, `{next(iter(grid))}`," if len(grid) == 1 else ""
        parts.append(
            f"at lr {lrs} (*{regime}*){untuned} "
            f"{_span(_means(regrets))} over {len(cells)} task"
            f"{'s' if len(cells) > 1 else ''} ({_ci_counts([r.estimate for r in regrets])})"
        )
    adherence = _adherence_span(entries)
    held = (
        f" Its KL stayed within 1.1 × its budget on {adherence} of post-warm-up steps."
        if adherence
        else ""
    )
    return (
        "Its final gold minus the best fixed β's in hindsight (gold regret) is "
        + "; ".join(parts)
        + "."
        + held
    )


def _family_sentence(agg: FrontierAggregate, pick: str) -> str:
    """The pick's regret against each tuned family's best, over the cells; "not run" where a
    family has no run."""
    cells = _all_cells(agg)
    parts = []
    for family in REGRET_FAMILIES:
        label = FAMILY_LABELS[family]
        if family == TRUST_REGION:
            label += f" (fixed β with a per-step KL limit of {TRUST_REGION_KL:g} nats per token)"
        if family == BEST_PAIR:
            label = "the task's best " + label + " (across the learning rates run)"
            run = [c for c in cells if c.best_pair is not None]
        else:
            run = [c for c in cells if c.families[family].members]
        regrets = [
            r
            for c in run
            if (e := c.variants.get(pick)) is not None and (r := e.regrets[family]) is not None
        ]
        if not run:
            parts.append(f"{label} not run")
            continue
        text = (
            f"{label} {_span(_means(regrets))} over {len(regrets)} cells "
            f"({_ci_counts([r.estimate for r in regrets])})"
            if regrets
            else f"{label} no paired regret yet"
        )
        if len(run) < len(cells):
            text += f", not run in {len(cells) - len(run)} of {len(cells)} cells"
        parts.append(text)
    return (
        f" Against the best member in hindsight of each tuned baseline family, `{pick}`'s gold "
        "regret is: " + "; ".join(parts) + "."
    )


def _published_sentence(agg: FrontierAggregate) -> str:
    cells = [
        c
        for c in _all_cells(agg)
        if SAFE_PUBLISHED in c.variants and c.variants[SAFE_PUBLISHED].gold_regret is not None
    ]
    if not cells:
        return ""
    entries = [c.variants[SAFE_PUBLISHED] for c in cells]
    kl = [e.metrics["kl_final"].mean or 0.0 for e in entries]
    beyond = sum(
        bool(c.frontier) and k > max(p.kl_final for p in c.frontier)
        for c, k in zip(cells, kl, strict=True)
    )
    regrets = [r for e in entries if (r := e.gold_regret) is not None]
    adherence = _adherence_span(entries)
    held = f", KL within 1.1 × their own threshold on {adherence} of steps" if adherence else ""
    gaps = [
        g for e in entries if e.gold_gap.status == "inside" and (g := e.gold_gap.gap) is not None
    ]
    placed = (
        f"; where the grid reaches their KL ({len(gaps)} cell{'s' if len(gaps) > 1 else ''}) "
        f"their gold minus PPO's gold frontier at equal KL is {', '.join(signed(g) for g in gaps)}"
        if gaps
        else ""
    )
    return (
        f" SAFE's published constants (`{SAFE_PUBLISHED}`) end at KL {_span(kl, sign=False)} "
        f"nats per token, more than every fixed β of the grid spends in {beyond} of "
        f"{len(cells)} cells{held}{placed}; their gold regret is "
        f"{_span(_means(regrets))} ({_ci_counts([r.estimate for r in regrets])})."
    )


def plain_answer(agg: FrontierAggregate) -> str:
    """One paragraph: the controller to run whatever the task (the pick over every task ×
    learning rate), its regret per learning rate and against each baseline family, the per-task
    picks, and what SAFE's published constants do."""
    pick, matching = agg.overall.pick, agg.overall.match_best_beta_everywhere
    if pick is None:
        text = "No controller has a paired gold regret in every task × learning rate yet."
    elif pick in matching:
        text = (
            f"Run `{pick}`: one configuration for every task and learning rate, no β to choose. "
            + _pick_sentence(agg, pick)
            + _family_sentence(agg, pick)
        )
    else:
        # Nothing matches the best fixed β everywhere: say so, and report the default
        # controller (the one that needs no β) rather than crown a controller that fails too.
        worst = signed(agg.overall.pick_worst_regime_regret)
        highest = (
            f"the default, `{NO_BETA}`, has the highest worst-cell mean regret ({worst}). "
            if pick == NO_BETA
            else f"the highest worst-cell mean regret is `{pick}`'s ({worst}). The default is "
            f"`{NO_BETA}`. "
        )
        text = (
            f"No controller's gold regret stays within −{REGRET_TOLERANCE:g} of the best fixed β "
            "in hindsight (CI lower bound) in every task × learning rate; "
            + highest
            + _pick_sentence(agg, NO_BETA)
            + _family_sentence(agg, NO_BETA)
        )
    by_task = {t: a.pick for t, a in agg.answers.items() if a.pick is not None}
    if by_task:
        text += (
            " Picked per task (the highest mean regret in the task's worse learning rate, "
            f"among those within −{REGRET_TOLERANCE:g} at both where there are any): "
            + ", ".join(f"{t} `{p}`" for t, p in by_task.items())
            + "."
        )
    return "**Plain answer.** " + text + _published_sentence(agg)


def goal_table(goal: GoalCheck) -> list[str]:
    """The goal check of the controller that needs no β, one row per task × regime."""
    name, rows = goal.controller, goal.cells
    if not rows:
        return [f"`{name}` has no paired run beside a fixed β yet: its goal is not judged."]
    verdict = "met" if goal.met else "not met"
    lines = [
        f"**`{name}` against the no-β goal** ({verdict}): gold regret CI lower bound ≥ "
        f"−{REGRET_TOLERANCE:g} on every cell and > 0 on at least half ({goal.cells_above_zero} "
        f"of {len(rows)}); never more proxy or gold crashes than the best β; no entropy "
        f"collapse; KL ≤ 1.1 × budget on ≥ {ADHERENCE_GOAL:.0%} of post-warm-up steps.",
        "",
        "| task | regime | n | gold regret [95% CI] | CI low ≥ −tol | CI > 0 | crashes ≤ best β "
        "| collapse steps | adherence |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        adherence = "–" if r.adherence is None else f"{r.adherence:.2f}"
        regret = Estimate(n=r.n, mean=r.regret_mean, low=r.regret_low, high=r.regret_high)
        lines.append(
            f"| {r.task} | {r.regime} | {r.n} | {difference_text(regret)} | "
            f"{yes_no(r.ci_low_ok)} | {yes_no(r.above_zero)} | "
            f"{yes_no(r.crashes_ok)} | {fmt(r.collapse_steps)} | {adherence} |"
        )
    return lines


def kl_spent_sentence(agg: FrontierAggregate, regime: str) -> str | None:
    """The best fixed β of each task in ``regime`` and the final KL it and the default
    controller end at (None: no task has a best β there)."""
    parts = []
    for task, by_regime in agg.cells.items():
        cell = by_regime.get(regime)
        best = None if cell is None else cell.best_beta
        if cell is None or best is None:
            continue
        entry, ours = cell.variants[best], cell.variants.get(NO_BETA)
        ours_kl = "–" if ours is None else fmt(ours.metrics["kl_final"].mean, 2)
        parts.append(
            f"{task} β {entry.beta:g} at KL {fmt(entry.metrics['kl_final'].mean, 2)} "
            f"(`{NO_BETA}` {ours_kl})"
        )
    if not parts:
        return None
    lr = next(c.lr for by in agg.cells.values() if (c := by.get(regime)) is not None)
    return (
        f"*Where the KL goes* at lr {lr:g} (*{regime}*): the best fixed β and its final KL per "
        "token, per task: " + "; ".join(parts) + "."
    )


def frontier_words(agg: FrontierAggregate) -> FrontierWords:
    return FrontierWords(
        plain_answer=plain_answer(agg),
        tasks={t: answer_paragraph(a, agg.cells[t]) for t, a in agg.answers.items()},
        overall=overall_sentence(agg.overall),
        goal_table=tuple(goal_table(agg.goal)),
        console={t: answer_line(a) for t, a in agg.answers.items()},
        lr_curves={t: lr_sentence(c) for t, c in agg.lr_curves.items()},
        kl_spent=tuple(
            text
            for regime in dict.fromkeys(r for a in agg.answers.values() for r in a.per_regime)
            if (text := kl_spent_sentence(agg, regime)) is not None
        ),
    )
