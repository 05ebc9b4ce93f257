"""Issue 13's goal for the controller that needs no β, judged on the frontier sweep.

Per task × regime: gold regret against the best fixed β in hindsight with its CI lower bound
≥ −tolerance, and > 0 on at least half the cells; never more proxy or gold crashes than the best
β; no entropy collapse; KL ≤ 1.1 × budget on ≥ 95% of post-warm-up steps (SPEC §7).
``frontier_report.aggregate`` stores ``goal_check``'s verdict as ``results["goal"]``;
``goal_table`` renders it for ``frontier.md`` and the README.
"""

from __future__ import annotations

from typing import Any

from benchmarks.frontier_answer import regret_text, yes_no
from benchmarks.stability_render import fmt

NO_BETA = "kl-budget"
"""Issue 13's controller that needs no β."""
ADHERENCE_GOAL = 0.95
"""Issue 13: KL within 1.1 × the budget on at least this share of post-warm-up steps."""


def goal_check(cells: dict[str, dict[str, Any]], name: str = NO_BETA) -> dict[str, Any]:
    """Issue 13's goal for ``name``, per task × regime and overall: gold regret CI lower bound
    ≥ −tolerance everywhere and > 0 on at least half the cells; never more proxy or gold crashes
    than the best β; no entropy collapse; mean adherence ≥ ``ADHERENCE_GOAL``."""
    rows = []
    for task, by_regime in cells.items():
        for regime, cell in by_regime.items():
            entry, best = cell["variants"].get(name), cell["best_beta"]
            if entry is None or best is None or entry["gold_regret"] is None:
                continue
            regret, theirs = entry["gold_regret"], cell["variants"][best]["crashes"]
            adherence = entry["metrics"]["budget_adherence"]["mean"]
            collapse = entry["metrics"]["entropy_collapse_steps"]["mean"]
            rows.append(
                {
                    "task": task,
                    "regime": regime,
                    "n": regret["n"],
                    "regret": regret["mean"],
                    "ci": regret["ci"],
                    "ci_low_ok": regret["lower_at_least_minus_tolerance"],
                    "above_zero": regret["above_zero"],
                    "crashes_ok": all(
                        entry["crashes"][k]["total"] <= theirs[k]["total"] for k in theirs
                    ),
                    "collapse_steps": collapse,
                    "adherence": adherence,
                    "adherence_ok": None if adherence is None else adherence >= ADHERENCE_GOAL,
                }
            )
    above = sum(bool(r["above_zero"]) for r in rows)
    met = bool(rows) and all(
        r["ci_low_ok"] and r["crashes_ok"] and not r["collapse_steps"] and r["adherence_ok"]
        for r in rows
    )
    return {
        "controller": name,
        "cells": rows,
        "cells_above_zero": above,
        "met": met and 2 * above >= len(rows),
    }


def goal_table(goal: dict[str, Any], tolerance: float) -> list[str]:
    """Issue 13's goal for the controller that needs no β, one row per task × regime."""
    name, rows = goal["controller"], goal["cells"]
    if not rows:
        return [f"`{name}` has no paired run beside a fixed β yet: its goal is not judged."]
    verdict = "met" if goal["met"] else "not met"
    lines = [
        f"**`{name}` against issue 13's goal** ({verdict}): gold regret CI lower bound ≥ "
        f"−{tolerance:g} on every cell and > 0 on at least half ({goal['cells_above_zero']} of "
        f"{len(rows)}); never more proxy or gold crashes than the best β; no entropy collapse; "
        f"KL ≤ 1.1 × budget on ≥ {ADHERENCE_GOAL:.0%} of post-warm-up steps.",
        "",
        "| task | regime | n | gold regret [95% CI] | CI low ≥ −tol | CI > 0 | crashes ≤ best β "
        "| collapse steps | adherence |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        adherence = "–" if r["adherence"] is None else f"{r['adherence']:.2f}"
        lines.append(
            f"| {r['task']} | {r['regime']} | {r['n']} | "
            f"{regret_text({'mean': r['regret'], 'ci': r['ci'], 'n': r['n']})} | "
            f"{yes_no(r['ci_low_ok'])} | {yes_no(r['above_zero'])} | "
            f"{yes_no(r['crashes_ok'])} | {fmt(r['collapse_steps'])} | {adherence} |"
        )
    return lines
