"""Benchmark: how often KL runs away, entropy collapses and reward crashes under each controller,
on the surrogate RLHF plant (``safecontrol.testing``), over hundreds of seeds and plant settings.

    .venv/bin/python benchmarks/plant.py [--quick] [--out benchmarks/results] [--seeds N]

Controllers: ``safecontrol.demo.CONTROLLERS`` (no penalty, FixedKL(0.05), AdaptiveKL,
PPOAdaptiveKL, PIDLagrangianKL, SafeController), with demo's KL budget of 0.3 nats per token where
they take one (the classic targets and SAFE's base threshold).

Settings: each preset of ``safecontrol.testing.PATHOLOGIES`` (reward_hacking, kl_runaway,
entropy_collapse, late_crash) on a 3 × 3 grid of two knobs, 36 settings in all:

- ``lr`` × {0.5, 1, 2}: how far the policy moves per batch, against how fast a controller reacts.
  It is what turns a small fixed β into a KL runaway (the kl_runaway preset is lr 10).
- "pull" × {0.5, 1, 2}: the strength of the reward that drives the preset's pathology: the
  spike's proxy reward (reward-hacking strength) where the preset has an exploit, the honest
  reward in entropy_collapse (which has none: its collapse onto one honest token per context is
  driven by the honest reward). It sets the KL at which the reward gradient balances a penalty.

A pilot (6 seeds per cell) showed both knobs moving outcomes across the thresholds below (e.g.
AdaptiveKL runs away at pull 2 on three presets and holds 0.35 nats at pull 0.5); halving or
doubling the batch size (gradient and k1 noise) changed little, so it is not a knob here.

Seeds: ``--seeds N`` per setting (default 25); the k-th setting of a preset (k = 0..8) uses seeds
k·N … k·N + N − 1, so each preset sees 9·N distinct seeds (225). Every controller runs on the same
(setting, seed) pairs, which makes the comparisons paired. Full run: 36 settings × 25 seeds × 6
controllers = 5400 plant runs of 300 steps, 450–640 s (0.08–0.12 s a run) in one process on a 2-core
machine busy with another sweep (the json's ``meta`` has the measured times). ``--quick``: 2 seeds
per setting and 60 steps (a smoke test of the pipeline, ~10 s; its numbers say nothing about the
pathologies). Deterministic: the plant is deterministic per seed and the bootstrap uses a fixed
generator, so the same arguments give the same numbers (only times and dates differ).

Per-run events (on the plant's exact per-token KL and entropy, nats):

- KL runaway: the run's KL p95 exceeds 3 × the budget (0.9 nats), i.e. KL was more than three
  times the budget for more than ~5% of the steps. 3× is beyond every controller's own tolerance
  band (PPO's rule reacts at 1.5× its target; SAFE's threshold never exceeds 0.6 = 2× budget), far
  above the ±noise of a controller tracking 0.3, and well below the ~3–3.9 nats of an uncontrolled
  run, whose policy has put almost all its mass on one token. The same budget is used for the
  controllers without a target (no penalty, FixedKL): it is what the user asked for. Its
  sensitivity to the factor (1.5, 2, 3, 5, 10) is reported beside it.
- Entropy collapse: at least one step with entropy below 10% of the first step's (SPEC §5,
  ``metrics.entropy_collapse_steps``).
- Reward crash: at least one crash of the batch-mean proxy reward (SPEC §5,
  ``metrics.count_crashes``), the reward the learner and the trainer's logs see.
- True-reward crash (secondary): the same on the true reward, which catches reward hacking that
  the proxy hides (proxy rising while the true reward falls).

Per-run measures: training-average proxy reward (SPEC §5), final true reward (mean of the last 10
steps), KL p95 (nats per token), minimum entropy (nats per token).

Statistics (95%): event rates with Wilson score intervals; means with percentile bootstrap
intervals (``scipy.stats.bootstrap``, 9999 resamples, generator seeded with 0); SafeController
against each other controller on the same (setting, seed) pairs: the difference of event rates
with Newcombe's (1998) paired square-and-add interval, and McNemar's exact test (a two-sided
binomial test on the discordant pairs), Holm-adjusted over the 20 overall comparisons (the
per-preset comparisons in the json report raw p-values). The intervals
count seed-to-seed variation only: the settings are a fixed grid, and rates "over all settings"
weigh the 36 settings equally.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from intervals import (
    CONFIDENCE,
    bootstrap_mean_ci,
    holm,
    newcombe_paired_interval,
    wilson_interval,
)
from scipy import stats

from safecontrol.demo import CONTROLLERS, KL_BUDGET, settings_changed
from safecontrol.testing import PATHOLOGIES, PlantConfig, Trajectory, run
from safecontrol.testing.metrics import CRASH_WINDOW, count_crashes, entropy_collapse_steps

RESULTS = Path(__file__).resolve().parent / "results"
SAFE = "SafeController"
RUNAWAY_FACTOR = 3.0
"""KL runaway: KL p95 above RUNAWAY_FACTOR × KL_BUDGET."""
RUNAWAY_FACTORS = (1.5, 2.0, 3.0, 5.0, 10.0)
"""Factors of the sensitivity table."""
LR_FACTORS = (0.5, 1.0, 2.0)
PULL_FACTORS = (0.5, 1.0, 2.0)

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


# ---------------------------------------------------------------------------------------------
# Settings and runs


@dataclass(frozen=True)
class Setting:
    name: str
    preset: str
    lr_factor: float
    pull_factor: float
    pull_field: str
    """The PlantConfig field the pull factor scales."""
    config: PlantConfig
    seeds: tuple[int, ...]


def pull_field(config: PlantConfig) -> str:
    """The reward that drives the preset's pathology: the spike's, or the honest one without it."""
    return "spike_reward" if config.spike_reward > 0.0 else "honest_reward"


def make_settings(seeds: int, steps: int | None = None) -> list[Setting]:
    """The 36 settings: every preset on the lr × pull grid, each cell with its own seeds."""
    settings = []
    for preset, pathology in PATHOLOGIES.items():
        base = pathology.config if steps is None else pathology.config.replace(steps=steps)
        field = pull_field(base)
        cells = [(lr, pull) for lr in LR_FACTORS for pull in PULL_FACTORS]
        for k, (lr, pull) in enumerate(cells):
            config = base.replace(lr=base.lr * lr, **{field: getattr(base, field) * pull})
            name = f"{preset} lr={lr:g}x pull={pull:g}x"
            first = k * seeds
            seed_range = tuple(range(first, first + seeds))
            settings.append(Setting(name, preset, lr, pull, field, config, seed_range))
    return settings


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


Runs = dict[str, dict[str, dict[str, np.ndarray]]]
"""setting → controller → field → one value per seed (the setting's seeds, in order)."""


def sweep(
    settings: Sequence[Setting],
    controllers: dict[str, Callable[[], Any]],
    progress: Callable[[str], None] | None = None,
) -> Runs:
    """Every controller on every (setting, seed)."""
    runs: Runs = {}
    for setting in settings:
        per_controller: dict[str, list[dict[str, float]]] = {name: [] for name in controllers}
        for seed in setting.seeds:
            config = setting.config.replace(seed=seed)
            for name, make in controllers.items():
                per_controller[name].append(measure(run(make(), config)))
        runs[setting.name] = {
            name: {key: np.array([r[key] for r in rows]) for key in rows[0]}
            for name, rows in per_controller.items()
        }
        if progress is not None:
            progress(setting.name)
    return runs


# ---------------------------------------------------------------------------------------------
# Statistics


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
    """SafeController's event flags against another controller's on the same runs."""
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


def analyse(runs: Runs, settings: Sequence[Setting], resamples: int) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------------------------
# Reports


def _rate(summary: dict[str, Any]) -> str:
    lo, hi = summary["ci"]
    return f"{summary['rate']:.2f} [{lo:.2f}, {hi:.2f}]"


def _mean(summary: dict[str, Any], digits: int = 3) -> str:
    lo, hi = summary["ci"]
    return f"{summary['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(report: dict[str, Any]) -> str:
    meta, config, results = report["meta"], report["config"], report["results"]
    overall = results["overall"]
    controllers = list(overall)
    n_settings = len(report["settings"])
    lines = [
        "# Every controller on the surrogate plant: event rates over seeds and settings",
        "",
        "Generated by `benchmarks/plant.py` (its docstring has the design). Command:",
        "",
        f"    {meta['command']}",
        "",
        f"{meta['runs']} plant runs ({n_settings} settings × {config['seeds_per_setting']} seeds "
        f"× {len(controllers)} controllers, {config['steps']} steps each) in "
        f"{meta['wall_time_s']:.0f} s wall time on {meta['machine']['description']} "
        f"(one process; load average {meta['machine']['load_average_at_start']} at the start)."
        f" {meta['date']}.",
        "",
        "## Design",
        "",
        f"- Controllers: `safecontrol.demo.CONTROLLERS`, KL budget {config['kl_budget']:g} nats "
        "per token (the classic targets, SAFE's base threshold).",
        "- Settings: each preset of `safecontrol.testing.PATHOLOGIES` on a 3 × 3 grid: "
        f"lr × {{{', '.join(f'{f:g}' for f in config['lr_factors'])}}} (how far the policy "
        "moves per batch) and pull × "
        f"{{{', '.join(f'{f:g}' for f in config['pull_factors'])}}} (the reward driving the "
        "pathology: the spike's proxy reward, or the honest reward in entropy_collapse, which has "
        "no exploit).",
        f"- Seeds: {config['seeds_per_setting']} per setting, distinct across a preset's cells "
        f"({config['seeds_per_setting'] * 9} per preset); every controller runs on the same "
        "(setting, seed) pairs.",
        "",
        "## Definitions",
        "",
        *(f"- **{EVENTS.get(k, MEASURES.get(k))}** (`{k}`): {v}." for k, v in DEFINITIONS.items()),
        "- Rates: 95% Wilson score intervals. Means: 95% percentile bootstrap intervals "
        f"({config['bootstrap']['n_resamples']} resamples, seed {config['bootstrap']['seed']}). "
        "Paired comparisons: difference of rates (SAFE − other) on the same runs with Newcombe's "
        "paired square-and-add interval, McNemar's exact test on discordant pairs, Holm-adjusted "
        f"over the {len(EVENTS) * (len(controllers) - 1)} overall comparisons.",
        "- The intervals count seed-to-seed variation only. The settings are a fixed grid and "
        "the plant varies little across seeds, so outcomes cluster by setting: a rate over all "
        "settings is an equally weighted average over this grid, not a property of controllers "
        "in general. The second table counts the settings where the event happened in more "
        "than half the seeds.",
        "",
        "## Event rates over all settings",
        "",
    ]
    header = ["controller", *EVENTS.values()]
    rows = [[c, *(_rate(overall[c]["events"][e]) for e in EVENTS)] for c in controllers]
    lines += _table(header, rows)
    lines += ["", f"Settings (of {n_settings}) where the event happened in > 50% of the seeds:", ""]
    rows = [
        [c, *(str(overall[c]["settings_with_majority"][e]) for e in EVENTS)] for c in controllers
    ]
    lines += _table(header, rows)
    lines += ["", "## Measures over all settings (mean [95% CI])", ""]
    rows = [
        [c, *(_mean(overall[c]["measures"][m], 2 if m == "kl_p95" else 3) for m in MEASURES)]
        for c in controllers
    ]
    lines += _table(["controller", *MEASURES.values()], rows)
    lines += [
        "",
        "## KL runaway: sensitivity to the factor (KL p95 > factor × budget)",
        "",
    ]
    sens = results["runaway_sensitivity"]
    factors = list(next(iter(sens.values())))
    rows = [[c, *(_rate(sens[c][f]) for f in factors)] for c in controllers]
    lines += _table(
        ["controller", *(f"> {f}× ({float(f) * config['kl_budget']:g} nats)" for f in factors)],
        rows,
    )
    paired = results["paired_vs_safe"]["overall"]
    if paired:
        lines += [
            "",
            "## SafeController against each controller (same settings and seeds)",
            "",
            "Difference = SAFE's rate − the other's; negative: fewer events under SAFE. "
            "Discordant: runs where only SAFE / only the other had the event. The verdict "
            "follows the Holm-adjusted exact test; with few discordant pairs the interval (an "
            "approximation) can exclude 0 while the exact test cannot conclude.",
            "",
        ]
        rows = [
            [
                c,
                EVENTS[e],
                f"{item['difference']:+.3f} [{item['ci'][0]:+.3f}, {item['ci'][1]:+.3f}]",
                f"{item['safe_only']} / {item['other_only']}",
                f"{item['p_value']:.2g}",
                f"{item['p_holm']:.2g}",
                item["conclusion"],
            ]
            for c, events in paired.items()
            for e, item in events.items()
        ]
        lines += _table(
            ["other", "event", "difference [95% CI]", "discordant", "p", "p Holm", "verdict"],
            rows,
        )
    lines += ["", "## Event rates per preset (over its 9 grid cells)", ""]
    rows = [
        [p, c, *(_rate(group[c]["events"][e]) for e in EVENTS)]
        for p, group in results["by_preset"].items()
        for c in controllers
    ]
    lines += _table(["preset", "controller", *EVENTS.values()], rows)
    lines += [
        "",
        "## Every setting",
        "",
        "Events: runs with the event, of the setting's seeds. Measures: means over the seeds "
        "(intervals in plant.json).",
        "",
    ]
    rows = [
        [
            s,
            c,
            *(f"{group[c]['events'][e]['count']}/{group[c]['n']}" for e in EVENTS),
            *(f"{group[c]['measures'][m]['mean']:.3f}" for m in MEASURES),
        ]
        for s, group in results["by_setting"].items()
        for c in controllers
    ]
    lines += _table(["setting", "controller", *EVENTS.values(), *MEASURES.values()], rows)
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    controllers = list(results["overall"])
    presets = list(results["by_preset"])
    x = np.arange(len(controllers))
    fig, axes = plt.subplots(1, len(EVENTS), figsize=(4.2 * len(EVENTS), 4.4), sharey=True)
    markers = "osD^v<>"
    for ax, (event, title) in zip(axes, EVENTS.items(), strict=True):
        summaries = [results["overall"][c]["events"][event] for c in controllers]
        rates = np.array([s["rate"] for s in summaries])
        lows = np.array([s["ci"][0] for s in summaries])
        highs = np.array([s["ci"][1] for s in summaries])
        ax.bar(x, rates, color="0.75", label="all settings")
        ax.errorbar(x, rates, yerr=[rates - lows, highs - rates], fmt="none", ecolor="k", capsize=4)
        for i, preset in enumerate(presets):
            offset = (i - (len(presets) - 1) / 2) * 0.12
            preset_rates = [
                results["by_preset"][preset][c]["events"][event]["rate"] for c in controllers
            ]
            ax.plot(x + offset, preset_rates, markers[i], ms=4, ls="none", label=preset)
        ax.set_title(title)
        ax.set_xticks(x, controllers, rotation=40, ha="right", fontsize=8)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("fraction of runs (95% Wilson CI)")
    axes[-1].legend(fontsize=7, loc="best")
    config = report["config"]
    fig.suptitle(
        f"Surrogate plant: {report['meta']['runs']} runs, {len(report['settings'])} settings × "
        f"{config['seeds_per_setting']} seeds × {len(controllers)} controllers",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Main


def _machine() -> dict[str, Any]:
    cores = os.cpu_count()
    return {
        "description": f"{platform.machine()}, {cores} cores, Python {platform.python_version()}",
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": cores,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def dumps(report: dict[str, Any]) -> str:
    """Indented JSON, floats to 6 significant digits, every list of scalars and every innermost
    object on one line (so the per-run columns and the summaries stay compact)."""
    text = json.dumps(_rounded(report), indent=1, ensure_ascii=False)
    text = re.sub(r"\[[^\[\]{}]*\]", lambda m: " ".join(m.group(0).split()), text)
    return re.sub(r"\{[^{}]*\}", lambda m: " ".join(m.group(0).split()), text) + "\n"


def _compact(key: str, value: float) -> float | int:
    return int(value) if key in EVENTS else round(float(value), 4)


def _jsonable(runs: Runs) -> dict[str, Any]:
    return {
        s: {
            c: {k: [_compact(k, v) for v in col] for k, col in cols.items()}
            for c, cols in g.items()
        }
        for s, g in runs.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/plant.py",
        description="Event rates of every KL controller on the surrogate plant.",
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds, 60 steps: a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per setting (default 25)")
    args = parser.parse_args(argv)
    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 25)
    if seeds < 1:
        parser.error(f"--seeds must be >= 1, got {seeds}")
    steps = 60 if args.quick else None
    resamples = 999 if args.quick else BOOTSTRAP_RESAMPLES
    argv_used = list(sys.argv[1:] if argv is None else argv)

    machine = _machine()
    settings = make_settings(seeds, steps)
    start = time.perf_counter()
    done = [0]

    def progress(name: str) -> None:
        done[0] += 1
        elapsed = time.perf_counter() - start
        print(f"[{done[0]}/{len(settings)}] {name} ({elapsed:.0f} s)", file=sys.stderr, flush=True)

    runs = sweep(settings, CONTROLLERS, progress)
    run_time = time.perf_counter() - start
    results = analyse(runs, settings, resamples)
    n_runs = len(settings) * seeds * len(CONTROLLERS)
    report: dict[str, Any] = {
        "meta": {
            "command": " ".join([".venv/bin/python", "benchmarks/plant.py", *argv_used]),
            "date": time.strftime("%Y-%m-%d"),
            "machine": machine,
            "runs": n_runs,
            "sweep_time_s": run_time,
            "mean_run_time_s": run_time / n_runs,
            "wall_time_s": time.perf_counter() - start,
        },
        "config": {
            "quick": args.quick,
            "seeds_per_setting": seeds,
            "steps": settings[0].config.steps,
            "controllers": list(CONTROLLERS),
            "kl_budget": KL_BUDGET,
            "runaway_factor": RUNAWAY_FACTOR,
            "runaway_sensitivity_factors": list(RUNAWAY_FACTORS),
            "lr_factors": list(LR_FACTORS),
            "pull_factors": list(PULL_FACTORS),
            "presets": {
                name: {
                    "config": settings_changed(p.config),
                    "description": p.description,
                    "pull_field": pull_field(p.config),
                }
                for name, p in PATHOLOGIES.items()
            },
            "confidence": CONFIDENCE,
            "bootstrap": {
                "method": "percentile",
                "n_resamples": resamples,
                "seed": BOOTSTRAP_SEED,
            },
        },
        "definitions": DEFINITIONS,
        "settings": {
            s.name: {
                "preset": s.preset,
                "lr_factor": s.lr_factor,
                "pull_factor": s.pull_factor,
                "pull_field": s.pull_field,
                "config": settings_changed(s.config),
                "seeds": [s.seeds[0], s.seeds[-1]],
            }
            for s in settings
        },
        "results": results,
        "runs": _jsonable(runs),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "plant.json").write_text(dumps(report))
    (args.out / "plant.md").write_text(markdown(report))
    plot(report, args.out / "plant_rates.png")
    print(markdown(report).split("## Measures")[0], end="")
    print(f"({n_runs} runs in {report['meta']['wall_time_s']:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
