"""Aggregate the frontier sweep (``frontier.py``) into ``frontier.{json,md}`` and plots (SPEC §7).

Per task × regime, from whatever runs have finished (a partial sweep is reported as it is, each
point with its number of seeds):

- per variant, mean and 95% percentile-bootstrap CI over seeds of the final proxy reward, final
  gold reward and final per-token KL (k3; "final" = mean of the last 10 iterations), the frontier
  coordinates, plus KL mean / p95, budget adherence, crashes, entropy, distinct-1 and wall time;
- PPO's frontier: the fixed-β grid's mean (KL, proxy) and (KL, gold) points, sorted by KL;
- the best fixed β in hindsight: the β with the highest mean final gold;
- gold regret: final gold − the best β's, paired by seed (seeds both have), with a 95% bootstrap
  CI of the mean over those pairs;
- frontier gaps: a variant's mean proxy (gold) minus the frontier's, interpolated linearly in
  log KL at the variant's mean KL; None outside the frontier's KL range (no extrapolation).

``frontier_render.py`` writes the markdown and the plots.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.frontier import (
    BETAS,
    FULL,
    QUICK,
    REGIMES,
    TASKS,
    VARIANTS,
    beta_name,
    run_specs,
)
from benchmarks.stats import bootstrap_mean_ci

N_RESAMPLES = 10_000
RESAMPLE_SEED = 0
"""Fixed so that the report is reproducible from the same runs."""
REGRET_TOLERANCE = 0.02
"""Gold units: a controller "matches the best β" when its regret CI's lower bound is ≥ −this."""
FIXED_BETA = {beta_name(b): b for b in BETAS}
COORDINATES = ("kl_final", "reward_final", "gold_final")
MEASURES = (
    *COORDINATES,
    "kl_mean",
    "kl_p95",
    "budget_adherence",
    "entropy_min",
    "entropy_collapse_steps",
    "distinct_1_final",
    "wall_seconds",
)
SAFE_PUBLISHED, SAFE = "safe-published", "safe"

Runs = dict[tuple[str, str], dict[str, dict[int, dict[str, Any]]]]
"""{(task, regime): {variant: {seed: {"summary", "config"}}}}."""


# ------------------------------------------------------------------ loading
def load_runs(runs_dir: Path) -> Runs:
    """Every finished run (``<task>/<regime>/<variant>/seed<k>/done.json``) under ``runs_dir``."""
    runs: Runs = {}
    for done_path in sorted(runs_dir.glob("*/*/*/seed*/done.json")):
        done = json.loads(done_path.read_text())
        spec = done["spec"]
        cell = runs.setdefault((spec["task"], spec["regime"]), {})
        cell.setdefault(spec["variant"], {})[int(spec["seed"])] = {
            "summary": done["summary"],
            "config": done["config"],
        }
    if not runs:
        raise FileNotFoundError(f"no finished runs (*/*/*/seed*/done.json) under {runs_dir}")
    return runs


def any_config(runs: Runs) -> dict[str, Any]:
    """The config of one run: the sizes every run of a sweep shares."""
    cell = next(iter(runs.values()))
    return dict(next(iter(next(iter(cell.values())).values()))["config"])


def _value(summary: dict[str, Any], name: str) -> float:
    value = summary.get(name)
    return math.nan if value is None else float(value)


def _column(seeds: dict[int, dict[str, Any]], name: str, order: list[int]) -> np.ndarray:
    return np.array([_value(seeds[s]["summary"], name) for s in order], dtype=np.float64)


# ------------------------------------------------------------------ statistics
def mean_ci(values: np.ndarray) -> dict[str, Any]:
    """Mean and 95% bootstrap CI over the finite values (None below 2 values)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    return {
        "n": int(x.size),
        "mean": float(x.mean()) if x.size else None,
        "ci": bootstrap_mean_ci(x, N_RESAMPLES, RESAMPLE_SEED),
        "values": [float(v) for v in x],
    }


def _has_budget(config: dict[str, Any]) -> bool:
    # A fixed β (β = 0 + entropy control too) is given no KL budget: the summary's adherence of
    # such a run is against a default it never saw, not a property of the method.
    return config.get("algo") != "fixed-kl"


def variant_stats(variant: str, seeds: dict[int, dict[str, Any]]) -> dict[str, Any]:
    order = sorted(seeds)
    config = seeds[order[0]]["config"]
    metrics = {name: mean_ci(_column(seeds, name, order)) for name in MEASURES}
    if not _has_budget(config):
        metrics["budget_adherence"] = mean_ci(np.array([]))
    crashes = {}
    for label, name in (("proxy", "crashes"), ("gold", "gold_crashes")):
        counts = _column(seeds, name, order)
        counts = counts[np.isfinite(counts)]
        crashes[label] = {"total": int(counts.sum()), "runs_with_any": int((counts > 0).sum())}
    return {
        "seeds": order,
        "n": len(order),
        "algo": config.get("algo"),
        "beta": FIXED_BETA.get(variant),
        "metrics": metrics,
        "crashes": crashes,
    }


def frontier_points(variants: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The fixed-β grid's mean points with a finite, positive KL (log axis), sorted by KL."""
    points = []
    for name, beta in FIXED_BETA.items():
        if name not in variants:
            continue
        m = variants[name]["metrics"]
        kl = m["kl_final"]["mean"]
        if kl is None or kl <= 0.0:
            continue
        points.append(
            {
                "variant": name,
                "beta": beta,
                "n": variants[name]["n"],
                "kl_final": kl,
                "reward_final": m["reward_final"]["mean"],
                "gold_final": m["gold_final"]["mean"],
            }
        )
    return sorted(points, key=lambda p: p["kl_final"])


def frontier_gap(
    points: list[dict[str, Any]], key: str, kl: float | None, value: float | None
) -> dict[str, Any]:
    """``value`` − the frontier's ``key`` interpolated linearly in log KL at ``kl``.

    Returns {"gap", "status"}: status "inside", "outside" (KL beyond the grid's range, where the
    frontier is not known), "no frontier" (< 2 β points) or "no value"."""
    usable = [p for p in points if p[key] is not None]
    if value is None or kl is None:
        return {"gap": None, "status": "no value"}
    if len(usable) < 2:
        return {"gap": None, "status": "no frontier"}
    log_kl = np.log([p["kl_final"] for p in usable])
    if kl <= 0.0 or not log_kl[0] <= math.log(kl) <= log_kl[-1]:
        return {"gap": None, "status": "outside"}
    on_frontier = float(np.interp(math.log(kl), log_kl, [p[key] for p in usable]))
    return {"gap": value - on_frontier, "status": "inside"}


def best_beta(variants: dict[str, dict[str, Any]]) -> str | None:
    """The β with the highest mean final gold (the first in grid order on a tie)."""
    candidates = [
        (variants[name]["metrics"]["gold_final"]["mean"], -i, name)
        for i, name in enumerate(FIXED_BETA)
        if name in variants and variants[name]["metrics"]["gold_final"]["mean"] is not None
    ]
    return max(candidates)[2] if candidates else None


def paired_regret(
    seeds: dict[int, dict[str, Any]], best: dict[int, dict[str, Any]]
) -> dict[str, Any] | None:
    """Mean of gold_final(variant, s) − gold_final(best β, s) over the seeds both have, with a
    95% bootstrap CI over those pairs; None without a common seed."""
    common = sorted(set(seeds) & set(best))
    diff = _column(seeds, "gold_final", common) - _column(best, "gold_final", common)
    keep = np.isfinite(diff)
    if not keep.any():
        return None
    diff = diff[keep]
    ci = bootstrap_mean_ci(diff, N_RESAMPLES, RESAMPLE_SEED)
    return {
        "seeds": [s for s, k in zip(common, keep, strict=True) if k],
        "n": int(diff.size),
        "mean": float(diff.mean()),
        "ci": ci,
        "lower_at_least_minus_tolerance": None if ci is None else ci[0] >= -REGRET_TOLERANCE,
        "above_zero": None if ci is None else ci[0] > 0.0,
    }


# ------------------------------------------------------------------ aggregation
def _ordered(names: set[str]) -> list[str]:
    known = [v for v in VARIANTS if v in names]
    return known + sorted(names - set(known))


def cell_results(cell: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Everything the report says about one task × regime."""
    variants = {v: variant_stats(v, cell[v]) for v in _ordered(set(cell))}
    points = frontier_points(variants)
    best = best_beta(variants)
    for name, entry in variants.items():
        m = entry["metrics"]
        kl = m["kl_final"]["mean"]
        entry["proxy_gap"] = frontier_gap(points, "reward_final", kl, m["reward_final"]["mean"])
        entry["gold_gap"] = frontier_gap(points, "gold_final", kl, m["gold_final"]["mean"])
        entry["gold_regret"] = None if best is None else paired_regret(cell[name], cell[best])
    config = next(iter(next(iter(cell.values())).values()))["config"]
    return {
        "lr": config.get("lr"),
        "steps": config.get("steps"),
        "frontier": points,
        "best_beta": best,
        "variants": variants,
    }


def _controllers(cell: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        n: e
        for n, e in cell["variants"].items()
        if n not in FIXED_BETA and e["gold_regret"] is not None
    }


def task_answer(by_regime: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Which controller a user should pick on this task: per regime the non-β variant with the
    highest mean gold regret; across regimes the one whose worst regime's mean regret is highest,
    preferring those whose regret CI's lower bound is ≥ −tolerance in every regime."""
    per_regime = {}
    for regime, cell in by_regime.items():
        controllers = _controllers(cell)
        pick = max(controllers, key=lambda n: controllers[n]["gold_regret"]["mean"], default=None)
        per_regime[regime] = {"best_beta": cell["best_beta"], "pick": pick}
    everywhere = set.intersection(*(set(_controllers(c)) for c in by_regime.values()))
    worst = {
        n: min(c["variants"][n]["gold_regret"]["mean"] for c in by_regime.values())
        for n in everywhere
    }
    matching = sorted(
        n
        for n in everywhere
        if all(
            c["variants"][n]["gold_regret"]["lower_at_least_minus_tolerance"]
            for c in by_regime.values()
        )
    )
    pick = max(matching or sorted(everywhere), key=lambda n: worst[n], default=None)
    return {
        "per_regime": per_regime,
        "match_best_beta_everywhere": matching,
        # With one paired seed there is no CI, so "no match" would be a statement about nothing.
        "too_few_seeds": not any(
            all(c["variants"][n]["gold_regret"]["ci"] is not None for c in by_regime.values())
            for n in everywhere
        ),
        "pick": pick,
        "pick_worst_regime_regret": None if pick is None else worst[pick],
    }


def _rank(name: str, known: tuple[str, ...]) -> tuple[int, str]:
    return (known.index(name), "") if name in known else (len(known), name)


def aggregate(runs: Runs) -> dict[str, Any]:
    """{"cells": {task: {regime: cell_results}}, "answers": {task: task_answer}, "overall":
    task_answer over every task × regime, "goal": goal_check}, tasks and regimes in the sweep's
    order (any others after them)."""

    cells: dict[str, dict[str, Any]] = {}
    for task, regime in sorted(
        runs, key=lambda k: (_rank(k[0], TASKS), _rank(k[1], tuple(REGIMES)))
    ):
        cells.setdefault(task, {})[regime] = cell_results(runs[(task, regime)])
    from benchmarks.frontier_goal import goal_check

    answers = {task: task_answer(by_regime) for task, by_regime in cells.items()}
    # One default for a user who does not know their task: the same rule over every cell.
    overall = task_answer({f"{t}/{r}": c for t, by in cells.items() for r, c in by.items()})
    return {"cells": cells, "answers": answers, "overall": overall, "goal": goal_check(cells)}


# ------------------------------------------------------------------ writing
def strict(value: Any) -> Any:
    """``value`` with every non-finite float as None (strict JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def _model(runs: Runs) -> dict[str, Any] | None:
    """The prepared model's manifest (size, vocabulary, SFT perplexity), where it can be found."""
    config = any_config(runs)
    directory = Path(config.get("model") or "")
    if not config.get("model"):
        from reference_trainer.config import PrepareConfig

        directory = PrepareConfig(data_dir=config.get("data_dir", ".data")).directory()
    manifest = directory / "prepare.json"
    if not manifest.is_file():
        return None
    record = json.loads(manifest.read_text())
    keys = ("n_layer", "n_embd", "n_head")
    return {
        "parameters": record.get("parameters"),
        "vocab_size": record.get("vocab_size"),
        "val_perplexity": record.get("val_perplexity"),
        **{k: record.get("config", {}).get(k) for k in keys},
    }


def write_report(runs_dir: Path, out_dir: Path, quick: bool) -> str:
    """Aggregate ``runs_dir`` into ``out_dir`` (frontier.json, frontier.md, one PNG per task ×
    regime); returns a few lines for the console."""
    from benchmarks import frontier_answer as answers
    from benchmarks import frontier_render as render

    out_dir.mkdir(parents=True, exist_ok=True)
    runs = load_runs(runs_dir)
    results = aggregate(runs)
    plan = QUICK if quick else FULL
    planned = {s.name for s in run_specs(plan)}
    found = {
        f"{t}/{r}/{v}/seed{s}"
        for (t, r), cell in runs.items()
        for v, seeds in cell.items()
        for s in seeds
    }
    first = any_config(runs)
    results["meta"] = {
        "plan": "quick" if quick else "full",
        "runs_found": len(found),
        "runs_planned": len(planned),
        "runs_unplanned": sorted(found - planned),
        "commands": render.commands(runs_dir, out_dir, quick),
        "sizes": {k: first.get(k) for k in ("steps", "batch_size", "max_new_tokens", "ppo_epochs")},
        "model": _model(runs),
        "resamples": N_RESAMPLES,
        "regret_tolerance": REGRET_TOLERANCE,
    }
    results["plots"] = [p.name for p in render.plot(results, out_dir)]
    for task, answer in results["answers"].items():
        answer["text"] = answers.answer_paragraph(task, results)
    # Keys stay in the sweep's order (tasks, regimes, variants), which readers display as is.
    results = strict(results)
    (out_dir / "frontier.json").write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    (out_dir / "frontier.md").write_text(render.markdown(results))
    lines = [f"frontier: {len(found)} of {len(planned)} planned runs → {out_dir}/frontier.md"]
    lines += [f"  {task}: {text}" for task, text in answers.answer_lines(results).items()]
    return "\n".join(lines)
