"""The plant benchmark's events and statistics (``plant.py`` runs the sweep; ``plant_render.py``
writes its results files).

Per run: the events (KL runaway, entropy collapse, reward crash, true-reward crash) as 0/1 and
four measures (``measure``). Per group of runs: event rates with Wilson score intervals and means
with percentile bootstrap intervals (``summarize_group``). SAFE against each other controller on
the same (setting, seed) pairs: the difference of event rates with Newcombe's paired interval and
McNemar's exact test, Holm-adjusted over the overall comparisons (``analyse``). ``plant.py``'s
docstring has the design and the reasons for each threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from benchmarks.stats import (
    CONFIDENCE,
    bootstrap_mean_ci,
    holm,
    newcombe_paired_interval,
    wilson_interval,
)
from safecontrol.testing import PATHOLOGIES, Trajectory
from safecontrol.testing.demo import KL_BUDGET
from safecontrol.testing.metrics import CRASH_WINDOW, count_crashes, entropy_collapse_steps

SAFE = "safe"
"""The registry name of SAFE, which every other controller is compared against."""
RUNAWAY_FACTOR = 3.0
"""KL runaway: KL p95 above RUNAWAY_FACTOR × KL_BUDGET."""
RUNAWAY_FACTORS = (1.5, 2.0, 3.0, 5.0, 10.0)
"""Factors of the sensitivity table."""
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0

EVENTS = {
    "kl_runaway": "KL runaway",
    "entropy_collapse": "entropy collapse",
    "reward_crash": "reward crash",
    "true_reward_crash": "true-reward crash",
}
MEASURES = {
    "reward_mean": "reward avg",
    "true_reward_final": "true final",
    "kl_p95": "KL p95",
    "entropy_min": "H min",
}
DEFINITIONS = {
    "kl_runaway": f"KL p95 over the run > {RUNAWAY_FACTOR:g} x budget "
    f"({RUNAWAY_FACTOR * KL_BUDGET:g} nats per token; exact KL to the reference)",
    "entropy_collapse": ">= 1 step with entropy below 10% of the first step's "
    "(SPEC 5, metrics.entropy_collapse_steps)",
    "reward_crash": ">= 1 crash of the batch-mean proxy reward (SPEC 5, metrics.count_crashes)",
    "true_reward_crash": ">= 1 crash of the batch-mean true reward (same definition)",
    "reward_mean": "training-average batch-mean proxy reward (SPEC 5)",
    "true_reward_final": f"mean true reward of the last {CRASH_WINDOW} steps",
    "kl_p95": "95th percentile over steps of the exact per-token KL to the reference, nats",
    "entropy_min": "minimum over steps of the per-token policy entropy, nats",
}


def measure(trajectory: Trajectory) -> dict[str, float]:
    """The events (as 0/1) and measures of one run."""
    return {
        "kl_runaway": float(kl_runaway(trajectory.kl)),
        "entropy_collapse": float(entropy_collapse_steps(trajectory.entropy) > 0),
        "reward_crash": float(count_crashes(trajectory.reward) > 0),
        "true_reward_crash": float(count_crashes(trajectory.true_reward) > 0),
        "reward_mean": float(trajectory.reward.mean()),
        "true_reward_final": float(trajectory.true_reward[-CRASH_WINDOW:].mean()),
        "kl_p95": float(np.percentile(trajectory.kl, 95)),
        "entropy_min": float(trajectory.entropy.min()),
    }


def kl_runaway(kl: Sequence[float] | np.ndarray, factor: float = RUNAWAY_FACTOR) -> bool:
    """True when the run's KL p95 exceeds ``factor`` × ``KL_BUDGET``."""
    return bool(np.percentile(np.asarray(kl, dtype=np.float64), 95) > factor * KL_BUDGET)


Runs = dict[str, dict[str, dict[str, np.ndarray]]]
"""setting → controller → field → one value per seed (the setting's seeds, in order)."""


def rate_summary(flags: np.ndarray) -> dict[str, Any]:
    count, n = int(flags.sum()), int(flags.size)
    lo, hi = wilson_interval(count, n)
    return {"count": count, "n": n, "rate": count / n, "ci": [lo, hi]}


def mean_summary(values: np.ndarray, resamples: int) -> dict[str, Any]:
    mean = float(values.mean())
    ci = bootstrap_mean_ci(values, resamples, BOOTSTRAP_SEED, CONFIDENCE) or (mean, mean)
    return {"mean": mean, "ci": list(ci)}


def summarize_group(columns: dict[str, np.ndarray], resamples: int) -> dict[str, Any]:
    return {
        "n": int(columns["kl_p95"].size),
        "events": {key: rate_summary(columns[key]) for key in EVENTS},
        "measures": {key: mean_summary(columns[key], resamples) for key in MEASURES},
    }


def paired_comparison(safe: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """SAFE's event flags against another controller's on the same runs."""
    safe, other = safe.astype(bool), other.astype(bool)
    both, neither = int(np.sum(safe & other)), int(np.sum(~safe & ~other))
    safe_only, other_only = int(np.sum(safe & ~other)), int(np.sum(~safe & other))
    n = safe.size
    discordant = safe_only + other_only
    p_value = 1.0 if discordant == 0 else float(stats.binomtest(safe_only, discordant).pvalue)
    return {
        "n": n,
        "both": both,
        "safe_only": safe_only,
        "other_only": other_only,
        "neither": neither,
        "safe_rate": (both + safe_only) / n,
        "other_rate": (both + other_only) / n,
        "difference": (safe_only - other_only) / n,
        "ci": list(newcombe_paired_interval(both, safe_only, other_only, neither)),
        "p_value": p_value,
    }


def conclusion(comparison: dict[str, Any], p_key: str = "p_holm") -> str:
    if comparison["safe_only"] + comparison["other_only"] == 0:
        return "cannot conclude: no discordant pairs (identical outcomes on every pair)"
    if comparison[p_key] >= 1 - CONFIDENCE:
        return f"cannot conclude ({p_key.replace('_', ' ')} = {comparison[p_key]:.2g})"
    return "fewer under SAFE" if comparison["difference"] < 0 else "more under SAFE"


def concat(runs: Runs, setting_names: Sequence[str], controller: str) -> dict[str, np.ndarray]:
    keys = runs[setting_names[0]][controller]
    return {k: np.concatenate([runs[s][controller][k] for s in setting_names]) for k in keys}


def analyse(runs: Runs, settings: Sequence[Any], resamples: int) -> dict[str, Any]:
    """Every summary of the report: per setting, per preset, overall, the runaway factor's
    sensitivity, and SAFE paired against each other controller (``settings``: ``plant.Setting``s,
    read for their ``name`` and ``preset``)."""
    controllers = list(next(iter(runs.values())))
    names = [s.name for s in settings]
    presets = {p: [s.name for s in settings if s.preset == p] for p in PATHOLOGIES}
    by_setting = {
        s: {c: summarize_group(runs[s][c], resamples) for c in controllers} for s in names
    }
    by_preset = {
        p: {c: summarize_group(concat(runs, members, c), resamples) for c in controllers}
        for p, members in presets.items()
    }
    overall: dict[str, Any] = {}
    sensitivity: dict[str, Any] = {}
    for c in controllers:
        columns = concat(runs, names, c)
        overall[c] = summarize_group(columns, resamples)
        overall[c]["settings_with_majority"] = {
            key: sum(by_setting[s][c]["events"][key]["rate"] > 0.5 for s in names) for key in EVENTS
        }
        sensitivity[c] = {
            f"{factor:g}": rate_summary(columns["kl_p95"] > factor * KL_BUDGET)
            for factor in RUNAWAY_FACTORS
        }
    paired: dict[str, Any] = {"overall": {}, "by_preset": {}}
    others = [c for c in controllers if c != SAFE]
    if SAFE in controllers:
        safe_all = concat(runs, names, SAFE)
        for c in others:
            other_all = concat(runs, names, c)
            paired["overall"][c] = {e: paired_comparison(safe_all[e], other_all[e]) for e in EVENTS}
        family = [paired["overall"][c][e] for c in others for e in EVENTS]
        for item, p_holm in zip(family, holm([f["p_value"] for f in family]), strict=True):
            item["p_holm"] = p_holm
            item["conclusion"] = conclusion(item)
        for p, members in presets.items():
            safe_p = concat(runs, members, SAFE)
            paired["by_preset"][p] = {}
            for c in others:
                other_p = concat(runs, members, c)
                cells = {e: paired_comparison(safe_p[e], other_p[e]) for e in EVENTS}
                for item in cells.values():
                    item["conclusion"] = conclusion(item, "p_value")
                paired["by_preset"][p][c] = cells
    return {
        "overall": overall,
        "by_preset": by_preset,
        "by_setting": by_setting,
        "runaway_sensitivity": sensitivity,
        "paired_vs_safe": paired,
    }
