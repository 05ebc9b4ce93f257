"""How re-run groups of the stability sweep differ from the committed ``stability.json``.

The stress-regime SAFE runs were re-run after the preview fix (the preview step scaling measured
k3 of KL(after ‖ before) on tokens sampled from the *before* policy: tens to hundreds of nats for
steps of about one, so SAFE's early steps were shrunk to a few percent) and the phase fix (no
spurious phase when the detector's window first fills). This compares each re-run group, seed by
seed, with the committed numbers of the same group and of PPO (paired: same seeds), and reports
how much of the first iterations' steps the preview kept.

    python -m benchmarks.stability --only 'stress/safe/*' --runs runs/rerun-issue10 --out /tmp/x
    python -m benchmarks.rerun_compare --runs runs/rerun-issue10 --group stress/safe
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stability_report import load_runs, paired

METRICS = {  # name → direction of "better" (+1 larger, −1 smaller, 0 neither)
    "reward_mean": 1,
    "reward_final": 1,
    "kl_mean": -1,
    "kl_p95": -1,
    "kl_max": -1,
    "entropy_min": 1,
    "distinct_1_final": 1,
    "crashes": -1,
    "kl_above": -1,
}
EARLY_ITERATIONS = 25
"""The stretch of the stress regime in which the old preview froze SAFE."""


def compare(runs_dir: Path, group: str, committed: dict[str, Any]) -> dict[str, Any]:
    regime, variant = group.split("/")
    runs = load_runs(runs_dir)[(regime, variant)]
    seeds = sorted(runs)
    old = committed["groups"][regime][variant]
    ppo = committed["groups"][regime]["ppo"]
    if old["seeds"] != seeds or ppo["seeds"] != seeds:
        raise ValueError(f"re-run seeds {seeds} differ from the committed {old['seeds']}")
    out: dict[str, Any] = {"group": group, "seeds": seeds, "metrics": {}}
    for name, direction in METRICS.items():
        new = np.array([float(runs[s]["summary"][name]) for s in seeds])
        before = np.array(old["metrics"][name]["values"], dtype=np.float64)
        baseline = np.array(ppo["metrics"][name]["values"], dtype=np.float64)
        out["metrics"][name] = {
            "committed_mean": float(before.mean()),
            "rerun_mean": float(new.mean()),
            "rerun_vs_committed": paired(new, before, direction),
            "ppo_mean": float(baseline.mean()),
            "rerun_vs_ppo": paired(new, baseline, direction),
        }
    early = []
    for s in seeds:
        rows = [
            json.loads(line)
            for line in (runs_dir / group / f"seed{s}" / "metrics.jsonl").read_text().splitlines()
        ][:EARLY_ITERATIONS]
        early.append(
            {
                "seed": s,
                "step_scale_mean": float(np.mean([r["step_scale"] for r in rows])),
                "step_scale_min": float(min(r["step_scale_min"] for r in rows)),
                "preview_kl_max": float(max(r.get("preview_kl", 0.0) for r in rows)),
            }
        )
    out["first_iterations"] = {"n": EARLY_ITERATIONS, "per_seed": early}
    return out


def render(result: dict[str, Any]) -> str:
    lines = [
        f"# Re-run of {result['group']} against the committed stability sweep",
        "",
        f"Seeds {result['seeds']}; paired over seeds: mean difference with its 95% bootstrap CI "
        "and the two-sided Wilcoxon p.",
        "",
        "| metric | committed | re-run | Δ [CI], p | PPO (committed) | re-run − PPO [CI], p |",
        "|---|---|---|---|---|---|",
    ]

    def cell(c: dict[str, Any]) -> str:
        ci = c["ci"]
        span = "" if ci is None else f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"
        p = "" if c["p_value"] is None else f", p = {c['p_value']:.4f}"
        return f"{c['mean_difference']:+.3f}{span}{p}"

    for name, m in result["metrics"].items():
        lines.append(
            f"| {name} | {m['committed_mean']:.3f} | {m['rerun_mean']:.3f} | "
            f"{cell(m['rerun_vs_committed'])} | {m['ppo_mean']:.3f} | {cell(m['rerun_vs_ppo'])} |"
        )
    first = result["first_iterations"]
    lines += [
        "",
        f"Preview step scaling in the first {first['n']} iterations of the re-run (share of each "
        "step kept; preview KL in nats per token):",
        "",
        "| seed | mean step scale | min step scale | max preview KL |",
        "|---|---|---|---|",
    ]
    for row in first["per_seed"]:
        lines.append(
            f"| {row['seed']} | {row['step_scale_mean']:.3f} | {row['step_scale_min']:.3f} | "
            f"{row['preview_kl_max']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", required=True, help="the re-run's --runs directory")
    parser.add_argument("--group", default="stress/safe", help="regime/variant re-run")
    parser.add_argument("--committed", default="benchmarks/results/stability.json")
    parser.add_argument("--out", default="benchmarks/results/rerun_stress_safe")
    args = parser.parse_args(argv)
    result = compare(Path(args.runs), args.group, json.loads(Path(args.committed).read_text()))
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    out.with_suffix(".md").write_text(render(result))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
