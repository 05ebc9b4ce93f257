"""How the proxy hold's window was chosen: the hold replayed on finished runs' logged proxy.

``kl-budget``'s ``hold_window`` (``safecontrol/proxy_hold.py``) reads nothing but the proxy's
batch-mean reward, which every run logs (``reward_mean``). Before any held run was trained, this
replays the rule (``ProxyHold`` itself) on the steering study's finished runs of ``kl-budget`` and
its 0.1 floor, and asks what a run frozen where the rule fires would have kept.

- **Kept gold** at a horizon h: the held-out gold at h when the rule has not fired by h, else
  the gold of the last evaluation at or before the update it fired at (evaluations are 50
  iterations apart). A frozen policy keeps its gold, up to evaluation noise; taking the
  evaluation before the hold leaves out what the policy gained between it and the hold.
- **Regret**: kept gold − the best fixed β's gold at h on the same seed (the β best by mean gold
  at h, as in ``aggregate.py``), mean with its bootstrap CI over the paired seeds; per task,
  learning rate and horizon, for each window of ``WINDOWS``.
- **Seeds**: ``--seeds`` (default 4: seeds 0-3, the runs the window was chosen on).

``python -m benchmarks.steering.hold_replay`` writes
``benchmarks/results/steering_hold_replay.{json,md}`` from the runs under ``--runs``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.stats import Estimate, paired_difference
from benchmarks.steering.aggregate import RunResult, best_fixed_beta, load_runs, variant_runs
from benchmarks.steering.plan import HORIZONS
from benchmarks.text import difference_text, markdown_table, signed
from reference_trainer.run_dir.files import read_step_records
from safecontrol.atomic_files import write_json_atomic, write_text_atomic
from safecontrol.proxy_hold import ProxyHold, ProxyHoldState

WINDOWS = (40, 60, 80)
"""The hold windows replayed (batches)."""
REPLAYED = ("kl-budget", "kl-budget-floor-0.1")
"""The variants the hold was meant for: the default and the floor with the best mean regret."""
SEEDS = 4
DEFAULT_RUNS, DEFAULT_OUT = "runs/steering", "benchmarks/results"


def held_at(rewards: Sequence[float], window: int) -> int:
    """The update the hold fires at on this proxy (0: never), by ``ProxyHold`` itself."""
    hold, state = ProxyHold(window), ProxyHoldState()
    for step, reward in enumerate(rewards, start=1):
        state = hold.step(state, reward, step)
        if state.held_at:
            return state.held_at
    return 0


def kept_gold(gold: Mapping[int, float], fired: int, horizon: int) -> float:
    """The gold a run frozen at update ``fired`` (0: never) keeps at ``horizon``."""
    if not fired or fired > horizon:
        return gold[horizon]
    return gold[max(step for step in gold if step <= fired)]


@dataclass(frozen=True)
class ReplayCell:
    task: str
    regime: str
    horizon: int
    best_beta: str
    variant: str
    window: int
    regret: Estimate
    """Kept gold − the best fixed β's, paired by seed."""
    unheld_regret: Estimate
    """The same run's gold at the horizon (no hold) − the best fixed β's."""
    fired: tuple[int, ...]
    """The update the hold fired at, per seed (0: never)."""


Rewards = dict[tuple[str, str, str, int], list[float]]
"""Each replayed run's batch-mean proxy rewards in order, by (task, regime, variant, seed)."""


def replay(runs: Sequence[RunResult], rewards: Rewards) -> list[ReplayCell]:
    """Every (task, regime, horizon, replayed variant, window) with a fixed β on its seeds."""
    cells = []
    keys = sorted({(r.task, r.regime) for r in runs})
    for (task, regime), horizon in ((k, h) for k in keys for h in HORIZONS):
        by_variant = variant_runs(runs, task, regime, horizon)
        best = best_fixed_beta(by_variant, lambda r, h=horizon: r.gold[h])
        if best is None:
            continue
        for variant in REPLAYED:
            seeds = by_variant.get(variant, {})
            own = [seeds[s] for s in sorted(seeds) if s in by_variant[best]]
            if not own:
                continue
            baseline = [by_variant[best][r.seed].gold[horizon] for r in own]
            for window in WINDOWS:
                fired = tuple(
                    held_at(rewards[(task, regime, variant, r.seed)], window) for r in own
                )
                kept = [kept_gold(r.gold, f, horizon) for r, f in zip(own, fired, strict=True)]
                cells.append(
                    ReplayCell(
                        task=task,
                        regime=regime,
                        horizon=horizon,
                        best_beta=best,
                        variant=variant,
                        window=window,
                        regret=paired_difference(kept, baseline),
                        unheld_regret=paired_difference([r.gold[horizon] for r in own], baseline),
                        fired=fired,
                    )
                )
    return cells


def read(runs_dir: Path, seeds: int) -> tuple[list[RunResult], Rewards]:
    """The finished runs of seeds below ``seeds`` and, for the replayed variants, each batch's
    mean proxy reward in order."""
    runs = [r for r in load_runs(runs_dir) if r.seed < seeds]
    rewards: Rewards = {}
    for r in runs:
        if r.variant in REPLAYED:
            rows = read_step_records(
                runs_dir / r.task / r.regime / r.variant / f"seed{r.seed}" / "metrics.jsonl"
            )
            rewards[(r.task, r.regime, r.variant, r.seed)] = [
                float(row["reward_mean"]) for row in rows if "reward_mean" in row
            ]
    return runs, rewards


def worst(cells: Sequence[ReplayCell], variant: str, window: int) -> float:
    """The lowest mean regret over a variant's cells at ``window``."""
    chosen = [c.regret.mean for c in cells if c.variant == variant and c.window == window]
    return min(m for m in chosen if m is not None)


def markdown(cells: Sequence[ReplayCell], seeds: int, command: str) -> str:
    places = sorted({(c.task, c.regime, c.horizon) for c in cells})
    lines = [
        "# The proxy hold replayed on logged runs: which window",
        "",
        f"Generated by `{command}` from the steering study's runs of seeds 0–{seeds - 1}: the hold "
        "(`safecontrol.proxy_hold`) replayed on each run's logged batch-mean proxy. *Regret*: the "
        "gold a run frozen where the hold fires keeps (the last evaluation at or before it; the "
        "gold at the horizon when it has not fired) − the best fixed β's on the same seed, mean "
        "and 95% bootstrap CI; *no hold*: the run's own gold at the horizon. *fired*: the update "
        "the hold fires at per seed (0: never). The method is in "
        "`benchmarks/steering/hold_replay.py`.",
        "",
    ]
    for variant in REPLAYED:
        mine = [c for c in cells if c.variant == variant]
        if not mine:
            continue
        rows = []
        for task, regime, horizon in places:
            here = {
                c.window: c
                for c in mine
                if (c.task, c.regime, c.horizon) == (task, regime, horizon)
            }
            if not here:
                continue
            first = next(iter(here.values()))
            rows.append(
                [
                    f"{task} / {regime} / {horizon}",
                    first.best_beta,
                    difference_text(first.unheld_regret),
                    *(
                        f"{difference_text(here[w].regret)}, fired {list(here[w].fired)}"
                        if w in here
                        else "–"
                        for w in WINDOWS
                    ),
                ]
            )
        rows.append(
            [
                "worst cell",
                "",
                "",
                *(signed(worst(mine, variant, w)) for w in WINDOWS),
            ]
        )
        lines += [
            f"## `{variant}`",
            "",
            *markdown_table(
                ["cell", "best fixed β", "no hold", *(f"window {w}" for w in WINDOWS)], rows
            ),
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.steering.hold_replay", description=__doc__
    )
    parser.add_argument("--runs", default=DEFAULT_RUNS)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--seeds", type=int, default=SEEDS, help="replay seeds below this")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    runs, rewards = read(Path(args.runs), args.seeds)
    cells = replay(runs, rewards)
    if not cells:
        print(f"error: no replayable steering run under {args.runs}", file=sys.stderr)
        return 2
    command = "python -m benchmarks.steering.hold_replay"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        out / "steering_hold_replay.json",
        {
            "command": command,
            "seeds": args.seeds,
            "windows": list(WINDOWS),
            "cells": [asdict(c) for c in cells],
        },
    )
    text = markdown(cells, args.seeds, command)
    write_text_atomic(out / "steering_hold_replay.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
