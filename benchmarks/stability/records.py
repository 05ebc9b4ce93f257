"""One record per finished run of the stability sweep: what the statistics are computed from.

A record is read from a run directory (``done.json``: the spec, the resolved config and the run
summary of SPEC §5) or back from a results JSON, which stores every record, so that the committed
results can be regenerated without the runs. The per-step curves (for the plots only) are read
from the run directories' ``metrics.jsonl``; they are not stored in the results.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Measure:
    label: str
    better: int
    """+1 when higher is better, -1 when lower is better, 0 neither."""


MEASURES: dict[str, Measure] = {  # keyed by the run summary's field
    "reward_mean": Measure("training-average reward", +1),
    "reward_final": Measure("final reward (last 10)", +1),
    "volatility": Measure("volatility", -1),
    "crashes": Measure("reward crashes", -1),
    "kl_mean": Measure("KL mean", -1),
    "kl_p95": Measure("KL p95", -1),
    "kl_max": Measure("KL max", -1),
    "kl_above": Measure("fraction of steps above limit", -1),
    "entropy_min": Measure("minimum entropy", +1),
    "distinct_1_final": Measure("distinct-1 (last 10)", +1),
    "wall_seconds": Measure("wall seconds", -1),
}
CURVES = ("reward_mean", "kl_k3", "entropy", "threshold")
"""Per-step series of ``metrics.jsonl`` that the plots draw."""


@dataclass(frozen=True)
class RunRecord:
    """One finished run: where it sits in the sweep and its SPEC §5 summary measures."""

    regime: str
    variant: str
    seed: int
    lr: float
    """The policy's learning rate."""
    steps: int
    """PPO iterations."""
    measures: Mapping[str, float | None]
    """``MEASURES`` of the run summary; None where the run did not report a finite value."""


Curves = dict[str, np.ndarray]
"""``CURVES`` of one run, one value per PPO iteration (NaN where a row lacks the key)."""


def _finished(runs_dir: Path) -> list[Path]:
    return sorted(runs_dir.glob("*/*/seed*/done.json"))


def has_runs(runs_dir: Path) -> bool:
    return bool(_finished(runs_dir))


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def record_of(done: Mapping[str, Any]) -> RunRecord:
    """The record of one run from its ``done.json``."""
    spec, config, summary = done["spec"], done["config"], done["summary"]
    return RunRecord(
        regime=spec["regime"],
        variant=spec["variant"],
        seed=int(spec["seed"]),
        lr=float(config["lr"]),
        steps=int(config["steps"]),
        measures={name: _number(summary.get(name)) for name in MEASURES},
    )


def load_records(runs_dir: Path) -> list[RunRecord]:
    """Every finished run (``*/*/seed*/done.json``) under ``runs_dir``."""
    paths = _finished(runs_dir)
    if not paths:
        raise FileNotFoundError(f"no finished runs (*/*/seed*/done.json) under {runs_dir}")
    return [record_of(json.loads(path.read_text())) for path in paths]


def load_curves(runs_dir: Path) -> dict[tuple[str, str, int], Curves]:
    """{(regime, variant, seed): curves} of every finished run under ``runs_dir``."""
    out = {}
    for path in _finished(runs_dir):
        spec = json.loads(path.read_text())["spec"]
        rows = [
            json.loads(line)
            for line in (path.parent / "metrics.jsonl").read_text().splitlines()
            if line.strip()
        ]
        out[(spec["regime"], spec["variant"], int(spec["seed"]))] = {
            key: np.array([row.get(key, np.nan) for row in rows], dtype=np.float64)
            for key in CURVES
        }
    return out
