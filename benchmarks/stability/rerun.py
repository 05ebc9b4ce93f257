"""How a re-run group of the stability sweep differs from the stored results.

The stress-regime SAFE runs were re-run after the preview fix (the preview step scaling measured
k3 of KL(after ‖ before) on tokens sampled from the *before* policy: tens to hundreds of nats for
steps of about one, so SAFE's early steps were shrunk to a few percent) and the phase fix (no
spurious phase when the detector's window first fills). This compares each re-run group, seed by
seed, with the stored records of the same group and of PPO (paired: same seeds), and reports how
much of the first iterations' steps the preview kept.

    python -m benchmarks.stability --only 'stress/safe/*' --runs runs/rerun-stress-safe --out /tmp/x
    python -m benchmarks.stability.rerun --runs runs/rerun-stress-safe --group stress/safe
    python -m benchmarks.stability.rerun          # again from the records stored in --out's JSON

The re-run's records and first-iteration step scales are stored in its JSON, so a report without
``--runs`` recomputes every number from them (a file written before records were stored is only
re-rendered).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.codec import decode
from benchmarks.stability.aggregate import PairedTest, paired
from benchmarks.stability.plan import BASELINE
from benchmarks.stability.records import MEASURES, RunRecord, load_records
from benchmarks.stability.results import read_records
from benchmarks.stability.words import difference_words
from benchmarks.text import fmt

COMPARED = (
    "reward_mean",
    "reward_final",
    "kl_mean",
    "kl_p95",
    "kl_max",
    "entropy_min",
    "distinct_1_final",
    "crashes",
    "kl_above",
)
EARLY_ITERATIONS = 25
"""The stretch of the stress regime in which the old preview froze SAFE."""


@dataclass(frozen=True)
class MeasureRerun:
    committed_mean: float
    rerun_mean: float
    ppo_mean: float
    """PPO's stored mean on the same seeds."""
    rerun_vs_committed: PairedTest
    rerun_vs_ppo: PairedTest


@dataclass(frozen=True)
class EarlySteps:
    """The preview step scaling of one re-run seed over its first ``EARLY_ITERATIONS``."""

    seed: int
    step_scale_mean: float
    """Mean share of each step kept."""
    step_scale_min: float
    preview_kl_max: float
    """Nats per token."""


@dataclass(frozen=True)
class RerunComparison:
    group: str
    """``regime/variant``."""
    seeds: tuple[int, ...]
    measures: Mapping[str, MeasureRerun]
    first_iterations: int
    early: tuple[EarlySteps, ...]
    runs: tuple[RunRecord, ...] = ()
    """The re-run's records (empty in a file written before records were stored)."""


def _values(records: Sequence[RunRecord], name: str) -> np.ndarray:
    return np.array([r.measures[name] for r in sorted(records, key=lambda r: r.seed)], dtype=float)


def compare(
    rerun: Sequence[RunRecord],
    early: Sequence[EarlySteps],
    group: str,
    stored: Sequence[RunRecord],
) -> RerunComparison:
    """The re-run ``group``'s records against the ``stored`` records of that group and of PPO."""
    regime, variant = group.split("/")
    runs = [r for r in rerun if (r.regime, r.variant) == (regime, variant)]
    before = [r for r in stored if (r.regime, r.variant) == (regime, variant)]
    ppo = [r for r in stored if (r.regime, r.variant) == (regime, BASELINE)]
    seeds = sorted(r.seed for r in runs)
    for name, records in (("stored", before), ("PPO", ppo)):
        if sorted(r.seed for r in records) != seeds:
            raise ValueError(
                f"re-run seeds {seeds} differ from the {name} seeds "
                f"{sorted(r.seed for r in records)}"
            )
    measures = {}
    for name in COMPARED:
        new, old, base = (_values(x, name) for x in (runs, before, ppo))
        better = MEASURES[name].better
        measures[name] = MeasureRerun(
            committed_mean=float(old.mean()),
            rerun_mean=float(new.mean()),
            ppo_mean=float(base.mean()),
            rerun_vs_committed=paired(new, old, better),
            rerun_vs_ppo=paired(new, base, better),
        )
    return RerunComparison(
        group, tuple(seeds), measures, EARLY_ITERATIONS, tuple(early), tuple(runs)
    )


def early_steps(runs_dir: Path, group: str, seeds: Sequence[int]) -> list[EarlySteps]:
    out = []
    for seed in seeds:
        lines = (runs_dir / group / f"seed{seed}" / "metrics.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines if line.strip()][:EARLY_ITERATIONS]
        out.append(
            EarlySteps(
                seed=seed,
                step_scale_mean=float(np.mean([r["step_scale"] for r in rows])),
                step_scale_min=float(min(r["step_scale_min"] for r in rows)),
                preview_kl_max=float(max(r.get("preview_kl", 0.0) for r in rows)),
            )
        )
    return out


def render(result: RerunComparison) -> str:
    lines = [
        f"# Re-run of {result.group} against the committed stability sweep",
        "",
        f"Seeds {list(result.seeds)}; paired over seeds: mean difference with its 95% bootstrap "
        "CI and the two-sided Wilcoxon p.",
        "",
        "| metric | committed | re-run | Δ [CI], p | PPO (committed) | re-run − PPO [CI], p |",
        "|---|---|---|---|---|---|",
    ]

    def cell(test: PairedTest) -> str:
        d = test.difference
        span = "" if d.ci is None else f" [{d.ci[0]:+.3f}, {d.ci[1]:+.3f}]"
        p = "" if test.p_value is None else f", p = {test.p_value:.4f}"
        return f"{d.mean or 0.0:+.3f}{span}{p}"

    for name in (n for n in COMPARED if n in result.measures):
        m = result.measures[name]
        lines.append(
            f"| {name} | {m.committed_mean:.3f} | {m.rerun_mean:.3f} | "
            f"{cell(m.rerun_vs_committed)} | {m.ppo_mean:.3f} | {cell(m.rerun_vs_ppo)} |"
        )
    lines += [
        "",
        f"Preview step scaling in the first {result.first_iterations} iterations of the re-run "
        "(share of each step kept; preview KL in nats per token):",
        "",
        "| seed | mean step scale | min step scale | max preview KL |",
        "|---|---|---|---|",
    ]
    for row in result.early:
        lines.append(
            f"| {row.seed} | {row.step_scale_mean:.3f} | {row.step_scale_min:.3f} | "
            f"{row.preview_kl_max:.3f} |"
        )
    return "\n".join(lines) + "\n"


def readme_section(result: RerunComparison) -> list[str]:
    """The README's lines on the re-run (``benchmarks.readme_results``)."""
    m = result.measures
    claim = {"better": "confirmed", "worse": "refuted"}

    def verdict(name: str) -> str:
        return claim.get(m[name].rerun_vs_ppo.verdict, "not significant")

    steps = [row.step_scale_mean for row in result.early]
    reward, kl = m["reward_mean"], m["kl_p95"]
    return [
        f"**{result.group} re-run after the preview fix** (SAFE's preview step scaling read k3 "
        "of KL(after ‖ before) on tokens sampled from *before*, tens to hundreds of nats for "
        "one-nat steps, and froze SAFE's first stress iterations; the numbers above predate the "
        f"fix). {len(result.seeds)} paired seeds, `python -m benchmarks.stability.rerun` "
        "([`rerun_stress_safe.md`](benchmarks/results/rerun_stress_safe.md)):",
        "",
        f"- training-average reward {fmt(reward.committed_mean)} → {fmt(reward.rerun_mean)} "
        f"({difference_words(reward.rerun_vs_committed)}); against PPO "
        f"{difference_words(reward.rerun_vs_ppo)}: higher reward than PPO "
        f"{verdict('reward_mean')};",
        f"- KL p95 {fmt(kl.committed_mean)} → {fmt(kl.rerun_mean)}; against PPO "
        f"{difference_words(kl.rerun_vs_ppo)}: lower KL p95 than PPO {verdict('kl_p95')};",
        f"- share of each step kept in the first {result.first_iterations} iterations: "
        f"{min(steps):.2f}–{max(steps):.2f} on average per seed.",
        "",
    ]


def read_rerun(path: Path) -> RerunComparison:
    return decode(RerunComparison, json.loads(path.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.stability.rerun",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--runs",
        default="",
        help="the re-run's --runs directory (default: the re-run records stored in --out's JSON)",
    )
    parser.add_argument("--group", default="stress/safe", help="regime/variant re-run")
    parser.add_argument("--committed", default="benchmarks/results/stability.json")
    parser.add_argument("--out", default="benchmarks/results/rerun_stress_safe")
    args = parser.parse_args(argv)
    out = Path(args.out)
    stored = read_records(Path(args.committed)).runs
    if args.runs:
        runs_dir = Path(args.runs)
        rerun = [r for r in load_records(runs_dir) if f"{r.regime}/{r.variant}" == args.group]
        early = early_steps(runs_dir, args.group, sorted(r.seed for r in rerun))
        result = compare(rerun, early, args.group, stored)
    else:
        previous = read_rerun(out.with_suffix(".json"))
        result = (
            compare(previous.runs, previous.early, previous.group, stored)
            if previous.runs
            else previous
        )
    out.with_suffix(".json").write_text(
        json.dumps(dataclasses.asdict(result), indent=1, sort_keys=True) + "\n"
    )
    out.with_suffix(".md").write_text(render(result))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
