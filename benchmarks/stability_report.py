"""Aggregate the stability sweep (``stability.py``) into results, plots and verdicts.

Per (regime, variant): mean and 95% bootstrap CI over seeds of each SPEC §5 measure. Paired on
the same seeds: each variant against PPO (and each ablation against full SAFE): the mean
difference with a 95% bootstrap CI and a two-sided Wilcoxon signed-rank test. With n non-zero
paired differences the smallest attainable p is 2/2^n, so fewer than 6 seeds can never reach
p < 0.05: such comparisons are reported as "too few seeds to conclude" whatever their CI says.

``stability_render.py`` turns these into the results files and plots.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stats import bootstrap_mean_ci

ALPHA = 0.05
N_RESAMPLES = 10_000
METRICS: dict[str, tuple[str, int]] = {
    # name in the run summary: (label, +1 when higher is better / -1 when lower / 0 neutral)
    "reward_mean": ("training-average reward", +1),
    "reward_final": ("final reward (last 10)", +1),
    "volatility": ("volatility", -1),
    "crashes": ("reward crashes", -1),
    "kl_mean": ("KL mean", -1),
    "kl_p95": ("KL p95", -1),
    "kl_max": ("KL max", -1),
    "kl_above": ("fraction of steps above limit", -1),
    "entropy_min": ("minimum entropy", +1),
    "distinct_1_final": ("distinct-1 (last 10)", +1),
    "wall_seconds": ("wall seconds", -1),
}
CURVES = ("reward_mean", "kl_k3", "entropy", "threshold")
NEGLIGIBLE_CRASHES = 0.5
"""A method's crashes are "negligible" when the upper CI of its crashes per run is below this."""
BASELINE = "ppo"
FULL_SAFE = "safe"


# ------------------------------------------------------------------ statistics
def bootstrap_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile bootstrap CI of the mean over seeds."""
    return bootstrap_mean_ci(values, N_RESAMPLES, seed, 1 - ALPHA)


def min_attainable_p(n_nonzero: int) -> float:
    """The smallest two-sided exact Wilcoxon p with n non-zero differences: 2 / 2^n."""
    return 2.0 / 2.0**n_nonzero if n_nonzero > 0 else 1.0


def paired(values: np.ndarray, baseline: np.ndarray, direction: int) -> dict[str, Any]:
    """Paired comparison of ``values`` against ``baseline`` (same seeds, same order).

    ``verdict``: "better" / "worse" (p < 0.05 and the CI of the mean difference excludes 0,
    in the sense of ``direction``), "no significant difference", or "too few seeds to conclude"
    when even a unanimous sign could not reach p < 0.05.
    """
    diff = np.asarray(values, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    nonzero = int(np.count_nonzero(diff))
    result: dict[str, Any] = {
        "n": int(diff.size),
        "mean_difference": float(diff.mean()),
        "ci": bootstrap_ci(diff),
        "relative": _relative(values, baseline),
        "p_value": None,
        "min_attainable_p": min_attainable_p(nonzero),
    }
    if nonzero:
        from scipy.stats import wilcoxon

        result["p_value"] = float(wilcoxon(diff, zero_method="wilcox").pvalue)
    ci = result["ci"]
    if result["min_attainable_p"] >= ALPHA:
        verdict = "too few seeds to conclude" if nonzero else "no difference on any seed"
    elif result["p_value"] is not None and result["p_value"] < ALPHA and ci is not None:
        if ci[0] > 0 or ci[1] < 0:
            sign = 1 if result["mean_difference"] > 0 else -1
            verdict = "better" if sign * direction > 0 else "worse" if direction else "different"
        else:
            verdict = "no significant difference"
    else:
        verdict = "no significant difference"
    result["verdict"] = verdict
    return result


def _relative(values: np.ndarray, baseline: np.ndarray) -> float | None:
    base = float(np.mean(baseline))
    return None if base == 0.0 else float(np.mean(values)) / base - 1.0


# ------------------------------------------------------------------ loading
def load_runs(runs_dir: Path) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    """{(regime, variant): {seed: {"summary", "config", "curves"}}} of every finished run."""
    runs: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for done_path in sorted(runs_dir.glob("*/*/seed*/done.json")):
        done = json.loads(done_path.read_text())
        spec = done["spec"]
        rows = [
            json.loads(line)
            for line in (done_path.parent / "metrics.jsonl").read_text().splitlines()
            if line.strip()
        ]
        curves = {
            key: np.array([row.get(key, np.nan) for row in rows], dtype=np.float64)
            for key in CURVES
        }
        key = (spec["regime"], spec["variant"])
        runs.setdefault(key, {})[int(spec["seed"])] = {
            "summary": done["summary"],
            "config": done["config"],
            "curves": curves,
        }
    if not runs:
        raise FileNotFoundError(f"no finished runs (*/*/seed*/done.json) under {runs_dir}")
    return runs


def _metric(seeds: dict[int, dict[str, Any]], name: str, order: list[int]) -> np.ndarray:
    return np.array([_value(seeds[s]["summary"].get(name)) for s in order], dtype=np.float64)


def _value(value: Any) -> float:
    return math.nan if value is None else float(value)


# ------------------------------------------------------------------ aggregation
def aggregate(runs: dict[tuple[str, str], dict[int, dict[str, Any]]]) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    for (regime, variant), seeds in sorted(runs.items()):
        order = sorted(seeds)
        stats = {}
        for name in METRICS:
            x = _metric(seeds, name, order)
            x = x[np.isfinite(x)]
            stats[name] = {
                "mean": float(x.mean()) if x.size else None,
                "ci": bootstrap_ci(x),
                "values": [float(v) for v in x],
            }
        config = seeds[order[0]]["config"]
        groups.setdefault(regime, {})[variant] = {
            "seeds": order,
            "lr": config["lr"],
            "steps": config["steps"],
            "metrics": stats,
        }
    comparisons: dict[str, Any] = {}
    for regime, variants in groups.items():
        for variant in variants:
            for baseline in (BASELINE, FULL_SAFE):
                if variant in (baseline, BASELINE) or baseline not in variants:
                    continue
                if baseline == FULL_SAFE and not variant.startswith(FULL_SAFE + "-"):
                    continue
                comparisons.setdefault(regime, {}).setdefault(variant, {})[baseline] = _compare(
                    runs[(regime, variant)], runs[(regime, baseline)]
                )
    return {"groups": groups, "comparisons": comparisons}


def _compare(runs: dict[int, Any], baseline: dict[int, Any]) -> dict[str, Any]:
    common = sorted(set(runs) & set(baseline))
    out = {"seeds": common}
    for name, (_, direction) in METRICS.items():
        a, b = _metric(runs, name, common), _metric(baseline, name, common)
        keep = np.isfinite(a) & np.isfinite(b)
        out[name] = paired(a[keep], b[keep], direction) if keep.sum() else None
    return out


# ------------------------------------------------------------------ the paper's claims
def claims(
    results: dict[str, Any],
    overhead: dict[str, Any] | None = None,
    trainer_speed: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One plain verdict per claim of the paper (SPEC §1.5), regime by regime."""
    comparisons, groups = results["comparisons"], results["groups"]
    out = []

    def per_regime(metric: str) -> dict[str, dict[str, Any]]:
        return {
            regime: comparisons[regime][FULL_SAFE][BASELINE][metric]
            for regime in comparisons
            if FULL_SAFE in comparisons[regime]
        }

    def combine(verdicts: dict[str, str]) -> str:
        values = set(verdicts.values())
        if not values:
            return "not measured (no SAFE and PPO runs on common seeds)"
        if len(values) == 1:
            return values.pop()
        return "mixed" if any(v.startswith("confirmed") for v in values) else "not confirmed"

    def judge(comparison: dict[str, Any]) -> str:
        return {"better": "confirmed", "worse": "refuted"}.get(
            comparison["verdict"], "not confirmed"
        )

    def paired_claim(
        claim: str, metric: str, context: dict[str, tuple[str, str]]
    ) -> dict[str, Any]:
        """A claim read off SAFE against PPO on one metric; ``context``: {detail: (variant,
        metric)} whose seed mean is shown beside the verdict."""
        found = per_regime(metric)
        verdicts = {regime: judge(c) for regime, c in found.items()}
        detail = {
            r: {
                "verdict": verdicts[r],
                **{
                    key: groups[r][variant]["metrics"][m]["mean"]
                    for key, (variant, m) in context.items()
                },
                **_brief(c),
            }
            for r, c in found.items()
        }
        return {"claim": claim, "per_regime": detail, "verdict": combine(verdicts)}

    out.append(
        paired_claim(
            "higher training-average reward than PPO (paper: +5.15%)",
            "reward_mean",
            # VADER can be gamed: a higher reward with fewer distinct words is hacking.
            {
                "safe_distinct_1": (FULL_SAFE, "distinct_1_final"),
                "ppo_distinct_1": (BASELINE, "distinct_1_final"),
            },
        )
    )

    crash_verdicts, crash_detail = {}, {}
    for regime, c in per_regime("crashes").items():
        safe = groups[regime][FULL_SAFE]["metrics"]["crashes"]
        ppo = groups[regime][BASELINE]["metrics"]["crashes"]
        if c["verdict"] == "worse" or not _negligible(safe):
            crash_verdicts[regime] = "refuted"
        elif _negligible(ppo):
            crash_verdicts[regime] = "confirmed, but no advantage: PPO's crashes are negligible too"
        else:
            crash_verdicts[regime] = "confirmed"
        crash_detail[regime] = {
            "verdict": crash_verdicts[regime],
            "safe_crashes_per_run": safe["mean"],
            "safe_ci": safe["ci"],
            "ppo_crashes_per_run": ppo["mean"],
            **_brief(c),
        }
    out.append(
        {
            "claim": (
                "negligible reward crashes (here: the upper 95% CI of SAFE's crashes per run "
                f"is below {NEGLIGIBLE_CRASHES}, and not significantly more than PPO)"
            ),
            "per_regime": crash_detail,
            "verdict": combine(crash_verdicts),
        }
    )

    out.append(
        paired_claim(
            "superior KL control (here: lower per-token KL p95 than PPO, paired)",
            "kl_p95",
            {"safe_steps_above_own_threshold": (FULL_SAFE, "kl_above")},
        )
    )
    out.append(overhead_claim(per_regime("wall_seconds"), overhead, trainer_speed))
    return out


def _negligible(crashes: dict[str, Any]) -> bool:
    """The upper CI bound (the mean with too few seeds) of crashes per run is below the bar."""
    upper = crashes["ci"][1] if crashes["ci"] else crashes["mean"]
    return upper is not None and upper < NEGLIGIBLE_CRASHES


OVERHEAD_CLAIM = "minimal computational overhead"


def refreshed_overhead_claim(
    stored: dict[str, Any],
    overhead: dict[str, Any] | None,
    trainer_speed: dict[str, Any] | None,
) -> dict[str, Any]:
    """``stored`` (a report's overhead claim) recomputed from newer overhead and trainer-speed
    results, keeping its sweep wall times (per regime, as the report stored them)."""
    wall = {r: {**c, "verdict": c["test"]} for r, c in stored["per_regime"].items()}
    return overhead_claim(wall, overhead, trainer_speed)


def overhead_claim(
    wall: dict[str, dict[str, Any]],
    overhead: dict[str, Any] | None,
    trainer_speed: dict[str, Any] | None,
) -> dict[str, Any]:
    """The controller's share of a trainer step (overhead.json) and SAFE's whole iteration against
    PPO's (trainer_speed.json, measured on a quiet machine: the sweep's wall times share two
    cores between two runs and are only indicative)."""
    entry: dict[str, Any] = {
        "claim": OVERHEAD_CLAIM,
        "per_regime": {
            r: {"wall_relative_to_ppo": c["relative"], **_brief(c)} for r, c in wall.items()
        },
    }
    if overhead is None or trainer_speed is None:
        entry["verdict"] = "not measured (run benchmarks/overhead.py and trainer_speed.py)"
        return entry
    safe = overhead["controllers"]["safe"]  # the registry name (overhead.json's label)
    iteration = {algo: trainer_speed["results"][algo]["total"] for algo in ("ppo", "safe")}
    entry["controller_us_per_update"] = safe["median_us"]
    entry["controller_share_of_step"] = safe["share_of_step"]
    entry["iteration_seconds"] = iteration
    entry["method_overhead"] = iteration["safe"] / iteration["ppo"] - 1.0
    negligible = safe["share_of_step"] < 0.001
    entry["verdict"] = (
        "refuted" if not negligible else "mixed" if entry["method_overhead"] > 0.05 else "confirmed"
    )
    entry["note"] = (
        "the controller's update is below 0.1% of a trainer step; a SAFE iteration costs "
        f"{100 * entry['method_overhead']:+.0f}% against PPO's (the preview forward of step "
        "scaling and the second value head)"
    )
    return entry


ABLATION_METRICS = ("reward_mean", "kl_p95", "entropy_min", "crashes")


def ablation_readings(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What removing each part of SAFE did, against full SAFE on the same seeds: per measure
    "higher" / "lower" where the bootstrap CI of the paired difference excludes 0, else
    "no clear change"; the Wilcoxon verdict says whether the seeds suffice for p < 0.05."""
    readings = {}
    for variants in results["comparisons"].values():
        for variant, by_baseline in variants.items():
            if FULL_SAFE not in by_baseline:
                continue
            entry = {}
            for name in ABLATION_METRICS:
                c = by_baseline[FULL_SAFE][name]
                ci = c["ci"]
                direction = (
                    "no clear change"
                    if ci is None or ci[0] <= 0.0 <= ci[1]
                    else "higher"
                    if ci[0] > 0
                    else "lower"
                )
                entry[name] = {
                    "reading": direction,
                    "relative": c["relative"],
                    "test": c["verdict"],
                }
            readings[variant] = entry
    return readings


def _brief(comparison: dict[str, Any]) -> dict[str, Any]:
    keys = ("mean_difference", "ci", "relative", "p_value", "n")
    return {k: comparison[k] for k in keys} | {"test": comparison["verdict"]}
