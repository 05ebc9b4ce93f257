"""The frontier sweep's answers in words (``frontier_report.py`` stores them, ``frontier.md`` and
the README show them): per task, over every task × learning rate, and one plain paragraph that
says which controller to run and what SAFE's published constants do.

Every number is read from the aggregate; nothing here is written by hand.
"""

from __future__ import annotations

from typing import Any

from benchmarks.frontier_report import REGRET_TOLERANCE, SAFE, SAFE_PUBLISHED
from benchmarks.stability_render import fmt


def signed(value: float | None) -> str:
    return "–" if value is None else ("+" if value >= 0 else "") + fmt(value)


def regret_text(regret: dict[str, Any] | None) -> str:
    if regret is None:
        return "–"
    ci = regret["ci"]
    bounds = " (1 seed, no CI)" if ci is None else f" [{signed(ci[0])}, {signed(ci[1])}]"
    return f"{signed(regret['mean'])}{bounds}"


def gap_text(gap: dict[str, Any]) -> str:
    return signed(gap["gap"]) if gap["status"] == "inside" else gap["status"]


def yes_no(value: bool | None) -> str:
    return "–" if value is None else "yes" if value else "no"


def _position(entry: dict[str, Any]) -> str:
    gap, kl = entry["proxy_gap"], entry["metrics"]["kl_final"]["mean"]
    if gap["status"] == "outside":
        return f"outside the β grid's KL range (KL {fmt(kl)}), so off the known frontier"
    if gap["status"] != "inside":
        return f"not placed against the frontier ({gap['status']})"
    side = "above" if gap["gap"] > 0 else "below"
    return f"{fmt(abs(gap['gap']))} {side} the proxy frontier at its KL ({fmt(kl)})"


def _regret_sentence(regret: dict[str, Any] | None) -> str:
    if regret is None:
        return "no gold regret (no seed shared with the best β)"
    if regret["ci"] is None:
        return f"gold regret {signed(regret['mean'])} on one paired seed (no CI)"
    verdict = "≥" if regret["lower_at_least_minus_tolerance"] else "<"
    return (
        f"gold regret {regret_text(regret)} over {regret['n']} paired seeds "
        f"(CI lower bound {verdict} −{REGRET_TOLERANCE:g})"
    )


def answer_paragraph(task: str, results: dict[str, Any]) -> str:
    """The plain answer for one task, generated from the aggregate."""
    answer, cells = results["answers"][task], results["cells"][task]
    parts = []
    for regime, cell in cells.items():
        best, pick = cell["best_beta"], answer["per_regime"][regime]["pick"]
        if best is None:
            parts.append(f"In *{regime}* no fixed-β run has finished: no regret yet.")
            continue
        gold = cell["variants"][best]["metrics"]["gold_final"]
        text = (
            f"In *{regime}* (lr {cell['lr']:g}) the best fixed β in hindsight is "
            f"{cell['variants'][best]['beta']:g} (final gold {fmt(gold['mean'])}, "
            f"n = {gold['n']})"
        )
        if pick is not None:
            regret = cell["variants"][pick]["gold_regret"]
            text += f"; the controller with the highest (best) gold regret is `{pick}`: "
            text += _regret_sentence(regret)
        parts.append(text + ".")
    matching, pick = answer["match_best_beta_everywhere"], answer["pick"]
    if matching:
        parts.append(
            f"Regret CI lower bound ≥ −{REGRET_TOLERANCE:g} in every regime: "
            + ", ".join(f"`{n}`" for n in matching)
            + "."
        )
    elif pick is None:
        parts.append("No controller has a paired gold regret in every regime yet.")
    elif answer["too_few_seeds"]:
        parts.append("Too few paired seeds for a regret CI: no controller can be cleared yet.")
    else:
        parts.append(
            f"No controller's regret CI lower bound is ≥ −{REGRET_TOLERANCE:g} in every regime."
        )
    if pick is not None:
        parts.append(
            f"**Pick `{pick}`** on this task (the highest mean regret in its worst regime, "
            f"{signed(answer['pick_worst_regime_regret'])}"
            + (", among those)." if matching else ").")
        )
    for name, label in ((SAFE_PUBLISHED, "SAFE's published constants"), (SAFE, "SAFE here")):
        found = [(r, c["variants"][name]) for r, c in cells.items() if name in c["variants"]]
        if found:
            parts.append(
                f"{label} (`{name}`): "
                + "; ".join(
                    f"in {r} {_position(e)}, {_regret_sentence(e['gold_regret'])}" for r, e in found
                )
                + "."
            )
    return " ".join(parts)


def overall_sentence(overall: dict[str, Any]) -> str:
    """The pick over every task × learning rate: one default for a task the user cannot name."""
    line = answer_lines({"answers": {"": overall}})[""].replace("worst-regime", "worst-cell")
    return f"**Across every task and learning rate** (one default, the task unknown): {line}."


def answer_lines(results: dict[str, Any]) -> dict[str, str]:
    """One console line per task."""
    out = {}
    for task, answer in results["answers"].items():
        pick, matching = answer["pick"], answer["match_best_beta_everywhere"]
        cleared = (
            "too few paired seeds for a CI"
            if answer["too_few_seeds"]
            else f"within −{REGRET_TOLERANCE:g} everywhere: {', '.join(matching) or 'none'}"
        )
        out[task] = (
            "no controller with a paired regret in every regime yet"
            if pick is None
            else f"pick {pick} (worst-regime mean gold regret "
            f"{signed(answer['pick_worst_regime_regret'])}; {cleared})"
        )
    return out


def _span(values: list[float], digits: int = 3, sign: bool = True) -> str:
    """The range of some values as "a to b" (one value: itself)."""
    text = signed if sign else (lambda v: fmt(v, digits))
    low, high = min(values), max(values)
    return text(low) if low == high else f"{text(low)} to {text(high)}"


def _ci_counts(regrets: list[dict[str, Any]]) -> str:
    """Where the regret CIs lie relative to 0, counted (regrets without a CI are left out)."""
    with_ci = [r["ci"] for r in regrets if r["ci"] is not None]
    counts = {
        "above 0": sum(low > 0 for low, _ in with_ci),
        "spanning 0": sum(low <= 0 <= high for low, high in with_ci),
        "below 0": sum(high < 0 for _, high in with_ci),
    }
    shown = ", ".join(f"{k} on {v}" for k, v in counts.items() if v)
    return f"CI {shown} of {len(with_ci)}" if with_ci else "no CI yet"


def _by_regime(results: dict[str, Any], name: str) -> dict[str, list[dict[str, Any]]]:
    """{regime: [cell, ...]} of the cells where ``name`` has a paired regret."""
    out: dict[str, list[dict[str, Any]]] = {}
    for by_regime in results["cells"].values():
        for regime, cell in by_regime.items():
            entry = cell["variants"].get(name)
            if entry is not None and entry["gold_regret"] is not None:
                out.setdefault(regime, []).append(cell)
    return out


def _adherence_span(entries: list[dict[str, Any]]) -> str | None:
    """The range of the entries' budget adherence (None: none of them has a budget)."""
    known = [m for e in entries if (m := e["metrics"]["budget_adherence"]["mean"]) is not None]
    return _span(known, 2, sign=False) if known else None


def _pick_sentence(results: dict[str, Any], pick: str) -> str:
    parts, entries = [], []
    for regime, cells in _by_regime(results, pick).items():
        entries += [c["variants"][pick] for c in cells]
        regrets = [c["variants"][pick]["gold_regret"] for c in cells]
        lrs = ", ".join(sorted({f"{c['lr']:g}" for c in cells}))
        parts.append(
            f"at the {regime} learning rate (lr {lrs}) "
            f"{_span([r['mean'] for r in regrets])} over {len(cells)} task"
            f"{'s' if len(cells) > 1 else ''} ({_ci_counts(regrets)})"
        )
    adherence = _adherence_span(entries)
    held = (
        f" Its KL stayed within 1.1 × its budget on {adherence} of post-warm-up steps."
        if adherence
        else ""
    )
    return (
        f"Run `{pick}`: one configuration for every task and learning rate, no β to choose. Its "
        "final gold minus the best fixed β's in hindsight (gold regret) is "
        + "; ".join(parts)
        + "."
        + held
    )


def _published_sentence(results: dict[str, Any]) -> str:
    cells = [
        c
        for by in results["cells"].values()
        for c in by.values()
        if SAFE_PUBLISHED in c["variants"] and c["variants"][SAFE_PUBLISHED]["gold_regret"]
    ]
    if not cells:
        return ""
    entries = [c["variants"][SAFE_PUBLISHED] for c in cells]
    kl = [e["metrics"]["kl_final"]["mean"] for e in entries]
    beyond = sum(
        bool(c["frontier"]) and k > max(p["kl_final"] for p in c["frontier"])
        for c, k in zip(cells, kl, strict=True)
    )
    regrets = [e["gold_regret"] for e in entries]
    adherence = _adherence_span(entries)
    held = f", KL within 1.1 × their own threshold on {adherence} of steps" if adherence else ""
    gaps = [e["gold_gap"]["gap"] for e in entries if e["gold_gap"]["status"] == "inside"]
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
        f"{_span([r['mean'] for r in regrets])} ({_ci_counts(regrets)})."
    )


def plain_answer(results: dict[str, Any]) -> str:
    """One paragraph: the controller to run whatever the task (the pick over every task ×
    learning rate), its regret per learning rate, the per-task picks, and what SAFE's published
    constants do."""
    pick = results["overall"]["pick"]
    if pick is None:
        text = "No controller has a paired gold regret in every task × learning rate yet."
    else:
        text = _pick_sentence(results, pick)
    by_task = {t: a["pick"] for t, a in results["answers"].items() if a["pick"] is not None}
    if by_task:
        text += (
            " Picked per task (the highest mean regret in the task's worse learning rate, "
            f"among those within −{REGRET_TOLERANCE:g} at both where there are any): "
            + ", ".join(f"{t} `{p}`" for t, p in by_task.items())
            + "."
        )
    return "**Plain answer.** " + text + _published_sentence(results)
