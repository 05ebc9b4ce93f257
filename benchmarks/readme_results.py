"""Write the README's "Results" section from the committed results files (no hand-typed numbers).

Reads ``benchmarks/results/{stability,frontier,frontier_larger,steering,plant,overhead}.json``
and replaces the text between the ``<!-- results:begin -->`` and ``<!-- results:end -->``
markers of README.md, and ``trl_frontier.json`` between the TRL section's
``<!-- trl-results:begin/end -->`` markers.

    python -m benchmarks.readme_results            # rewrite README.md
    python -m benchmarks.readme_results --check    # exit 1 when README.md is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.frontier.plan import LR_SWEEP_REGIMES
from benchmarks.speed.overhead import Overhead
from benchmarks.stability import render as stability_render
from benchmarks.stability import rerun as stability_rerun
from benchmarks.stability.results import read_results as read_stability
from benchmarks.stats import Estimate
from benchmarks.steering.aggregate import read_results as read_steering
from benchmarks.steering.render import readme_section as steering_readme_section
from benchmarks.text import difference_with_n, fmt, with_ci
from benchmarks.trl_frontier.render import block as trl_block
from benchmarks.trl_frontier.words import TrlFrontierResults

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
TRL_BEGIN, TRL_END = "<!-- trl-results:begin -->", "<!-- trl-results:end -->"


def _rate(event: dict[str, Any]) -> str:
    """A ``benchmarks.plant.aggregate.Rate`` as read from plant.json: "0.42 [0.36, 0.48]"."""
    return f"{event['rate']:.2f} [{event['low']:.2f}, {event['high']:.2f}]"


def plant_section(plant: dict[str, Any]) -> list[str]:
    meta, config, definitions = plant["meta"], plant["config"], plant["definitions"]
    overall = plant["results"]["overall"]
    events = list(next(iter(overall.values()))["events"])
    lines = [
        "### Every controller on the surrogate plant",
        "",
        f"`{meta['command']}`: {meta['runs']} runs ({len(plant['settings'])} settings × "
        f"{config['seeds_per_setting']} seeds × {len(config['controllers'])} controllers, "
        f"{config['steps']} steps). Fraction of runs with each event, 95% Wilson CI; "
        "details and paired tests in "
        "[`benchmarks/results/plant.md`](benchmarks/results/plant.md).",
        "",
        "| controller | "
        + " | ".join(e.replace("_", " ") for e in events)
        + " | KL p95 | true reward (final) |",
        "|---" * (len(events) + 3) + "|",
    ]
    for controller, group in overall.items():
        rates = " | ".join(_rate(group["events"][e]) for e in events)
        measures = group["measures"]
        lines.append(
            f"| {controller} | {rates} | {with_ci(Estimate(**measures['kl_p95']))} | "
            f"{with_ci(Estimate(**measures['true_reward_final']))} |"
        )
    lines += [""] + [f"- {e.replace('_', ' ')}: {definitions[e]}." for e in events] + [""]
    return lines


def overhead_section(overhead: Overhead) -> list[str]:
    meta = overhead.meta
    load = ", ".join(f"{x:.2f}" for x in meta.load_average_at_start)
    lines = [
        "### Controller overhead",
        "",
        f"`{meta.command}` on {meta.machine} (load average {load}): median µs per "
        f"`update` over {meta.repeats} blocks of {meta.block}, and the share of one "
        f"reference-trainer PPO iteration ({fmt(meta.trainer_step_seconds)} s).",
        "",
        "| controller | µs per update | share of a trainer step |",
        "|---|---|---|",
    ]
    for name, row in overhead.controllers.items():
        share = "–" if row.share_of_step is None else f"{100 * row.share_of_step:.4f}%"
        lines.append(f"| {name} | {row.median_us:.1f} | {share} |")
    lines.append("")
    for name, goal in overhead.goals.items():
        verdict = "met" if goal.met else "**not met**"
        lines.append(f"- goal {name} ≤ {goal.goal:g}: {fmt(goal.measured)}, {verdict}.")
    return [*lines, ""]


def frontier_section(
    frontier: dict[str, Any], stem: str = "frontier", heading: str | None = None
) -> list[str]:
    """Gold regret of every controller against the best fixed β, per task × regime (the
    regimes that run every variant; the learning-rate sweep's are told as gold against lr), and
    the stored answers (``python -m benchmarks.frontier``; ``stem``: its results' file name)."""
    cells, meta, words = frontier["cells"], frontier["meta"], frontier["words"]
    columns = [
        (task, regime)
        for task, by in cells.items()
        for regime in by
        if regime not in LR_SWEEP_REGIMES
    ]
    controllers = list(
        dict.fromkeys(
            name
            for task, regime in columns
            for name, entry in cells[task][regime]["variants"].items()
            if entry["family"] is None
        )
    )

    def best_beta(cell: dict[str, Any]) -> str:
        best = cell["families"]["fixed-beta"]["best"]
        return "–" if best is None else f"{cell['variants'][best]['beta']:g}"

    lines = [
        heading or "### Every controller against PPO's reward–KL frontier, judged by gold reward",
        "",
        f"`{meta['commands'][0]}`: {meta['runs_found']} of the {meta['runs_planned']} runs of "
        f"the {meta['plan']} plan (`n`: the seeds behind each number). Gold "
        "regret = final gold − the best fixed β's in hindsight on the same seed, mean with a 95% "
        "bootstrap CI over paired seeds (≥ 0: no β search needed); frontier plots, proxy gaps, "
        "the regret against each baseline family (fixed β, trust-region β) and all measures in "
        f"[`benchmarks/results/{stem}.md`](benchmarks/results/{stem}.md).",
        "",
        words["plain_answer"],
        "",
        "| controller | " + " | ".join(f"{t} / {r}" for t, r in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
        "| *best fixed β* | " + " | ".join(best_beta(cells[t][r]) for t, r in columns) + " |",
    ]
    for name in controllers:
        row = []
        for t, r in columns:
            entry = cells[t][r]["variants"].get(name)
            regret = None if entry is None else entry["regrets"]["fixed-beta"]
            if regret is None:
                row.append("–")
            else:
                row.append(difference_with_n(Estimate(**regret["estimate"])))
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines.append("")
    lines += [f"- **{task}.** {text}" for task, text in words["tasks"].items()]
    lines += ["", words["overall"], "", *words["goal_table"]]
    if words.get("kl_spent"):
        lines += ["", *(f"- {text}" for text in words["kl_spent"])]
    if words.get("lr_curves"):
        lines += [
            "",
            "Gold against the learning rate (the learning-rate sweep; tables and plot "
            f"`{stem}_gold_vs_lr.png` in `{stem}.md`):",
            "",
        ]
        lines += [f"- **{task}.** {text}" for task, text in words["lr_curves"].items()]
    return [*lines, ""]


def build(results_dir: Path) -> str:
    lines = [
        "## Results",
        "",
        "Generated by `python -m benchmarks.readme_results` from `benchmarks/results/*.json`; "
        "reproduce each with the command named in its section (`.venv/bin/python` after "
        "`bash scripts/test.sh` has created the environment).",
        "",
    ]
    stability = results_dir / "stability.json"
    if stability.is_file():
        lines += [
            "Reproduce: `python -m benchmarks.stability` (resumable; `--only 'stress/*'` runs a "
            "part), `python -m benchmarks.plant`, `python -m benchmarks.speed.overhead`.",
            "",
        ]
        lines += stability_render.readme_section(read_stability(stability))
    rerun = results_dir / "rerun_stress_safe.json"
    if rerun.is_file():
        lines += stability_rerun.readme_section(stability_rerun.read_rerun(rerun))
    overhead = results_dir / "overhead.json"
    if overhead.is_file():
        lines += overhead_section(Overhead.from_json(json.loads(overhead.read_text())))
    frontier = results_dir / "frontier.json"
    if frontier.is_file():
        lines += frontier_section(json.loads(frontier.read_text()))
    larger = results_dir / "frontier_larger.json"
    if larger.is_file():
        results = json.loads(larger.read_text())
        model, sizes = results["meta"]["model"], results["meta"]["sizes"]
        heading = (
            f"### The same comparison at a larger scale: {model['parameters']:,} parameters, "
            f"{sizes['max_new_tokens']}-token answers"
        )
        lines += frontier_section(results, "frontier_larger", heading)
    steering = results_dir / "steering.json"
    if steering.is_file():
        lines += steering_readme_section(read_steering(steering))
    plant = results_dir / "plant.json"
    if plant.is_file():
        lines += plant_section(json.loads(plant.read_text()))
    return "\n".join(lines).rstrip() + "\n"


def replace_block(readme: str, block: str, begin: str = BEGIN, end: str = END) -> str:
    if begin not in readme or end not in readme:
        raise ValueError(f"README.md has no {begin} ... {end} block")
    head, rest = readme.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{block}{end}{tail}"


def with_trl_block(readme: str, results_dir: Path) -> str:
    """The TRL section's table of ``trl_frontier.json``, where the README has its markers."""
    path = results_dir / "trl_frontier.json"
    if TRL_BEGIN not in readme or not path.is_file():
        return readme
    results = TrlFrontierResults.from_json(json.loads(path.read_text()))
    block = trl_block(results, "####")
    return replace_block(readme, block, TRL_BEGIN, TRL_END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.readme_results", description=__doc__
    )
    parser.add_argument("--check", action="store_true", help="fail if README.md is stale")
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    readme_path = Path(args.readme)
    current = readme_path.read_text()
    wanted = with_trl_block(replace_block(current, build(Path(args.results))), Path(args.results))
    if args.check:
        if wanted != current:
            print(
                "README.md Results are stale: run python -m benchmarks.readme_results",
                file=sys.stderr,
            )
            return 1
        return 0
    readme_path.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
