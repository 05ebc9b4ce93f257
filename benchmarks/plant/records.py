"""One record per plant run: its events (0/1) and measures, from a ``Trajectory`` or read back from
a results JSON, so that a committed ``plant.json`` regenerates its statistics exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from benchmarks.plant.plan import (
    EVENTS,
    MEASURES,
    RUNAWAY_FACTOR,
    ControllerFactory,
    Setting,
)
from safecontrol.testing import Trajectory, run
from safecontrol.testing.demo import KL_BUDGET
from safecontrol.testing.metrics import CRASH_WINDOW, count_crashes, entropy_collapse_steps

Columns = dict[str, np.ndarray]
"""Record field (``EVENTS`` and ``MEASURES``) → one value per run, in seed order."""
Runs = dict[str, dict[str, Columns]]
"""Setting name → controller → the columns of its runs (the setting's seeds, in order)."""


def kl_runaway(kl: Sequence[float] | np.ndarray, factor: float = RUNAWAY_FACTOR) -> bool:
    """True when the run's KL p95 exceeds ``factor`` × ``KL_BUDGET``."""
    return bool(np.percentile(np.asarray(kl, dtype=np.float64), 95) > factor * KL_BUDGET)


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


def sweep(
    settings: Sequence[Setting],
    factories: Mapping[str, ControllerFactory],
    progress: Callable[[str], None] | None = None,
) -> Runs:
    """Every controller (name → factory) on every (setting, seed)."""
    runs: Runs = {}
    for setting in settings:
        per_controller: dict[str, list[dict[str, float]]] = {name: [] for name in factories}
        for seed in setting.seeds:
            config = setting.config.replace(seed=seed)
            for name, make in factories.items():
                per_controller[name].append(measure(run(make(), config)))
        runs[setting.name] = {
            name: {key: np.array([r[key] for r in rows]) for key in rows[0]}
            for name, rows in per_controller.items()
        }
        if progress is not None:
            progress(setting.name)
    return runs


def concat(runs: Runs, setting_names: Sequence[str], controller: str) -> Columns:
    """One controller's columns over several settings, in the settings' order."""
    fields = runs[setting_names[0]][controller]
    return {k: np.concatenate([runs[s][controller][k] for s in setting_names]) for k in fields}


def runs_to_json(runs: Runs) -> dict[str, Any]:
    """The columns as lists: events as 0/1, measures exactly (a float's shortest repr), so that
    ``runs_from_json`` gives back the very values the statistics were computed from."""
    return {
        s: {
            c: {
                k: [int(v) for v in col] if k in EVENTS else [float(v) for v in col]
                for k, col in cols.items()
            }
            for c, cols in group.items()
        }
        for s, group in runs.items()
    }


def runs_from_json(data: Mapping[str, Any]) -> Runs:
    """``runs_to_json``'s inverse (also reads the older files, whose measures have 4 decimals)."""
    fields = [*EVENTS, *MEASURES]
    return {
        s: {
            c: {k: np.asarray(cols[k], dtype=np.float64) for k in fields}
            for c, cols in group.items()
        }
        for s, group in data.items()
    }
