"""The main job: every KL controller on the surrogate RLHF plant, side by side.

    python -m safecontrol.testing.demo [--seeds 5] [--steps 300] [--markdown]

Each setting is one of ``safecontrol.testing.PATHOLOGIES`` (the plant settings that reproduce
SPEC §6's pathologies); each controller runs on it with seeds 0..seeds−1, and the table reports
SPEC §5's measures averaged over the seeds (crashes: the total over the seeds). Rewards are the
proxy reward the learner optimises, except "true fin", the true reward of the last 10 steps, which
shows reward hacking. KL and entropy are per token, in nats. Deterministic: the same arguments
print the same table.

Controllers: "no penalty", then every name of ``safecontrol.registry`` (a controller registered
at run time appears with no other edit), each made with ``registry.make(name,
**DEMO_SETTINGS.get(name, {}))``. The demo's settings give a KL budget of 0.3 nats per token where
a controller takes one (SAFE's base threshold; the plant's completions are one token long, so
per-token and per-sequence KL coincide): ``fixed-kl`` β = 0.05 (SPEC §6's coefficient);
``adaptive-kl`` init 0.2, target 0.3 (Ziegler's horizon 10000, ``n_steps`` = batch size);
``schulman-kl`` init 0.2, target 0.3 (the PPO paper's ×2/÷2 rule applied to the KL to the
reference); ``pid-lagrangian-kl`` target 0.3; ``kl-budget`` budget 0.3 (its own default, 0.35 ×
the initial entropy, is a budget the plant's runaway measure never sees); ``safe`` with the
published defaults.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .. import registry
from ..contract import Controller
from .config import PlantConfig
from .metrics import summarize_trajectory
from .pathologies import PATHOLOGIES
from .plant import run

KL_BUDGET = 0.3
"""Nats per token: the classic controllers' target, SAFE's base threshold."""

NO_PENALTY = "no penalty"
"""The baseline without a KL penalty (listed first)."""

DEMO_SETTINGS: dict[str, dict[str, Any]] = {
    "fixed-kl": {"coef": 0.05},
    "adaptive-kl": {"init_coef": 0.2, "target": KL_BUDGET},
    "schulman-kl": {"init_coef": 0.2, "target": KL_BUDGET},
    "pid-lagrangian-kl": {"target": KL_BUDGET},
    "kl-budget": {"budget": KL_BUDGET},
}
"""Settings that differ from a registered controller's defaults, by registry name (optional:
a controller without an entry runs with its registered defaults)."""


def controllers() -> dict[str, Callable[[], Controller | None]]:
    """Name → factory: "no penalty", then every registered controller (read at call time)."""
    out: dict[str, Callable[[], Controller | None]] = {NO_PENALTY: lambda: None}
    for name in registry.names():
        out[name] = functools.partial(registry.make, name, **DEMO_SETTINGS.get(name, {}))
    return out


COLUMNS = (
    ("reward avg", "reward_mean", "{:.3f}"),
    ("reward fin", "reward_final", "{:.3f}"),
    ("true fin", "true_final", "{:.3f}"),
    ("crashes", "crashes", "{:d}"),
    ("KL mean", "kl_mean", "{:.2f}"),
    ("KL p95", "kl_p95", "{:.2f}"),
    ("KL max", "kl_max", "{:.2f}"),
    ("H min", "entropy_min", "{:.2f}"),
    ("collapse", "entropy_collapse_steps", "{:.0f}"),
    ("spike", "spike_final", "{:.2f}"),
)


@dataclass(frozen=True)
class Row:
    setting: str
    controller: str
    values: dict[str, Any]
    """Column key → value averaged over seeds (``crashes``: summed)."""


def evaluate(setting: str, controller: str, seeds: int, steps: int | None = None) -> dict[str, Any]:
    """SPEC §5's measures of one controller (a name of ``controllers()``) on one setting, over
    seeds 0..seeds−1."""
    pathology = PATHOLOGIES[setting]
    factories = controllers()
    if controller not in factories:
        raise ValueError(f"unknown controller {controller!r}; choose from {list(factories)}")
    make = factories[controller]
    per_seed: list[dict[str, Any]] = []
    for seed in range(seeds):
        changes: dict[str, Any] = {"seed": seed}
        if steps is not None:
            changes["steps"] = steps
        trajectory = run(make(), pathology.config.replace(**changes))
        metrics = summarize_trajectory(trajectory, kl_limit=KL_BUDGET).as_dict()
        metrics["true_final"] = float(trajectory.true_reward[-10:].mean())
        metrics["spike_final"] = float(trajectory.spike_fraction[-10:].mean())
        per_seed.append(metrics)
    out: dict[str, Any] = {}
    for _, key, _ in COLUMNS:
        values = [m[key] for m in per_seed]
        out[key] = int(sum(values)) if key == "crashes" else float(np.mean(values))
    return out


def table(
    seeds: int = 5, steps: int | None = None, settings: Sequence[str] | None = None
) -> list[Row]:
    """Every controller on every setting (default: all of ``PATHOLOGIES``)."""
    names = list(PATHOLOGIES) if settings is None else list(settings)
    unknown = [s for s in names if s not in PATHOLOGIES]
    if unknown:
        raise ValueError(f"unknown settings {unknown}; choose from {list(PATHOLOGIES)}")
    return [
        Row(setting, controller, evaluate(setting, controller, seeds, steps))
        for setting in names
        for controller in controllers()
    ]


def format_table(rows: Sequence[Row], markdown: bool = False) -> str:
    """The rows as an aligned text table (or a Markdown table)."""
    header = ["setting", "controller", *(title for title, _, _ in COLUMNS)]
    cells = [
        [row.setting, row.controller, *(fmt.format(row.values[key]) for _, key, fmt in COLUMNS)]
        for row in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        text = [
            v.ljust(w) if i < 2 else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(text).rstrip()

    out, previous = [line(header), line(["-" * w for w in widths])], None
    for row, cell in zip(rows, cells, strict=True):
        if previous is not None and row.setting != previous:
            out.append("")
        out.append(line(cell))
        previous = row.setting
    return "\n".join(out)


def settings_changed(config: PlantConfig) -> str:
    """The plant settings that differ from ``PlantConfig()``, e.g. "lr=10.0"."""
    default = PlantConfig()
    changed = [
        f"{f.name}={getattr(config, f.name)!r}"
        for f in fields(config)
        if f.name != "seed" and getattr(config, f.name) != getattr(default, f.name)
    ]
    return ", ".join(changed) or "defaults"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m safecontrol.testing.demo",
        description="Every KL controller on the surrogate RLHF plant (safecontrol.testing).",
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds per run (default 5)")
    parser.add_argument(
        "--steps", type=int, default=None, help="rollout batches per run (default: the preset's)"
    )
    parser.add_argument(
        "--settings",
        default=",".join(PATHOLOGIES),
        help=f"comma-separated subset of {','.join(PATHOLOGIES)}",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in settings if s not in PATHOLOGIES]
    if unknown or not settings:
        parser.error(f"unknown settings {unknown}; choose from {','.join(PATHOLOGIES)}")

    start = time.perf_counter()
    rows = table(args.seeds, args.steps, settings)
    print("Surrogate RLHF plant (safecontrol.testing): every controller on each setting,")
    print(f"seeds 0..{args.seeds - 1}, means over seeds (crashes: total). KL, H: nats per token.")
    for name in settings:
        pathology = PATHOLOGIES[name]
        print(f"  {name} ({settings_changed(pathology.config)}): {pathology.description}")
    print()
    print(format_table(rows, args.markdown))
    print(
        f"\n({len(rows) * args.seeds} runs in {time.perf_counter() - start:.1f} s)", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
