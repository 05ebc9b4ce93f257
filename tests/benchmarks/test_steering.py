"""The steering study: its statistics on hand-made runs, the report regenerated from its own
JSON, and ``--quick`` end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks.steering.__main__ import write_report
from benchmarks.steering.aggregate import (
    RunResult,
    aggregate,
    cell,
    cells,
    drawdown,
    runs_from_results,
)
from benchmarks.steering.plan import FULL, QUICK, VARIANTS, run_specs, steering_fields
from benchmarks.steering.render import page, readme_section


def run(variant: str, seed: int, gold: dict[int, float], task: str = "topic") -> RunResult:
    return RunResult(task, "standard", variant, seed, gold, dict.fromkeys(gold, 1.0), 0, 0)


def test_the_drawdown_is_the_best_evaluation_up_to_the_horizon_minus_the_gold_at_it():
    gold = {50: 0.2, 100: 0.5, 150: 0.4, 200: 0.45, 300: 0.3}
    assert drawdown(gold, 100) == 0.0
    assert drawdown(gold, 150) == pytest.approx(0.1)
    assert drawdown(gold, 300) == pytest.approx(0.2)


RUNS = [
    # beta-0.3 is best at 100, beta-0.1 at 300 (its KL keeps paying)
    run("beta-0.3", 0, {100: 0.40, 300: 0.38}),
    run("beta-0.3", 1, {100: 0.42, 300: 0.36}),
    run("beta-0.1", 0, {100: 0.30, 300: 0.45}),
    run("beta-0.1", 1, {100: 0.34, 300: 0.47}),
    run("steer", 0, {100: 0.41, 300: 0.50}),
    run("steer", 1, {100: 0.45, 300: 0.46}),
    run("alone", 5, {100: 0.41, 300: 0.50}),  # no seed paired with a fixed β
]


def test_the_best_beta_is_chosen_per_horizon_and_regret_is_paired_by_seed():
    early, late = cell(RUNS, "topic", "standard", 100), cell(RUNS, "topic", "standard", 300)
    assert early is not None and late is not None
    assert early.best_beta == "beta-0.3" and late.best_beta == "beta-0.1"
    rows = {row.variant: row for row in late.rows}
    regret = rows["steer"].regret
    assert regret is not None and regret.n == 2
    assert regret.mean == pytest.approx(((0.50 - 0.45) + (0.46 - 0.47)) / 2)
    assert regret.ci is not None and regret.ci[0] <= regret.mean <= regret.ci[1]
    assert rows["alone"].regret is None and rows["alone"].n == 1
    assert rows["beta-0.3"].drawdown.mean == pytest.approx(0.04)
    assert rows["beta-0.3"].drawdown.ci is not None
    assert cell(RUNS, "sentiment", "standard", 100) is None  # no runs of that cell
    assert len(cells(RUNS, (100, 300))) == 2
    text = page(cells(RUNS, (100, 300)), quick=False)
    assert "best fixed β `beta-0.1` (at its best evaluation: `beta-0.1`)" in text
    assert "| alone | 1 | 0.500 | 1.000 | – | 0.000 | 0.500 | – |" in text


def test_at_the_best_evaluation_a_beta_that_peaked_early_and_fell_can_be_the_best():
    runs = [
        run("beta-0.1", 0, {100: 0.60, 300: 0.20}),
        run("beta-0.1", 1, {100: 0.56, 300: 0.24}),
        run("beta-0.3", 0, {100: 0.40, 300: 0.42}),
        run("beta-0.3", 1, {100: 0.38, 300: 0.40}),
        run("steer", 0, {100: 0.50, 300: 0.45}),
        run("steer", 1, {100: 0.52, 300: 0.47}),
    ]
    late = cell(runs, "topic", "standard", 300)
    assert late is not None
    assert late.best_beta == "beta-0.3" and late.best_beta_at_best_eval == "beta-0.1"
    rows = {row.variant: row for row in late.rows}
    assert rows["beta-0.1"].best_eval_gold == pytest.approx(0.58)
    assert rows["steer"].regret is not None and rows["steer"].regret.mean == pytest.approx(0.05)
    stopped = rows["steer"].best_eval_regret
    assert stopped is not None and stopped.n == 2
    # Stopped at their best evaluations, the early-peaking β keeps more than the steered run.
    assert stopped.mean == pytest.approx(((0.50 - 0.60) + (0.52 - 0.56)) / 2)


def test_the_readme_section_gives_the_default_beside_the_best_beta_and_every_other_variant():
    runs = [
        run("beta-0.3", 0, {100: 0.40, 300: 0.38}),
        run("beta-0.3", 1, {100: 0.42, 300: 0.36}),
        run("kl-budget", 0, {100: 0.45, 300: 0.30}),
        run("kl-budget", 1, {100: 0.47, 300: 0.32}),
        run("kl-budget-floor-0.3", 0, {100: 0.41, 300: 0.40}),
    ]
    lines = readme_section(aggregate(runs, (100, 300)))
    text = "\n".join(lines)
    # At 300: regret ((0.30 - 0.38) + (0.32 - 0.36)) / 2, drawdown 0.15 against beta-0.3's 0.04;
    # both stopped at their best evaluation (0.45, 0.47 against 0.40, 0.42): +0.05.
    assert "| topic / standard / 300 | beta-0.3 (0.370) | -0.060 [" in text
    row = next(line for line in lines if line.startswith("| topic / standard / 300 | beta"))
    # kl-budget fell 0.15 on both seeds (an interval of one point), beta-0.3 0.02 and 0.06.
    assert "| 0.150 [0.150, 0.150] | 0.040 [0.020, 0.060] | +0.050 [" in row
    assert "| cell | `kl-budget-floor-0.3` |" in text
    assert "| topic / standard / 100 | +0.010 (1 seed, no CI) |" in text


def test_the_stored_run_records_give_back_the_same_results(tmp_path: Path) -> None:
    results = aggregate(RUNS, (100, 300))
    stored = json.loads(json.dumps(asdict(results)))  # JSON turns the iterations into strings
    assert runs_from_results(stored) == list(results.runs)
    assert aggregate(runs_from_results(stored), (100, 300)) == results
    (tmp_path / "steering.json").write_text(json.dumps(stored))
    (tmp_path / "runs").mkdir()
    write_report(tmp_path / "runs", tmp_path, (100, 300), quick=False)  # no run: the JSON's
    assert json.loads((tmp_path / "steering.json").read_text()) == stored
    with pytest.raises(FileNotFoundError, match="no finished run"):
        write_report(tmp_path / "runs", tmp_path / "empty", (100, 300), quick=False)


def finished_run(runs_dir: Path, result: RunResult) -> None:
    """A run directory as the trainer leaves it: ``done.json`` and the evaluation rows."""
    run_dir = runs_dir / result.task / result.regime / result.variant / f"seed{result.seed}"
    run_dir.mkdir(parents=True)
    spec = {"task": result.task, "regime": result.regime, "variant": result.variant}
    done = {"spec": {**spec, "seed": result.seed}, "summary": {"crashes": result.crashes}}
    (run_dir / "done.json").write_text(json.dumps(done))
    rows = [{"step": s, "eval_gold": g, "eval_kl": result.kl[s]} for s, g in result.gold.items()]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_report_joins_the_recorded_runs_with_new_ones_a_run_replacing_its_record(
    tmp_path: Path,
) -> None:
    # A new machine has none of the recorded runs' directories: the report keeps their records,
    # adds the runs it finds and takes a run over the record of the same name.
    (tmp_path / "steering.json").write_text(json.dumps(asdict(aggregate(RUNS, (100, 300)))))
    rerun = run("steer", 1, {100: 0.30, 300: 0.20})
    added = run("steer", 2, {100: 0.50, 300: 0.40})
    for result in (rerun, added):
        finished_run(tmp_path / "runs", result)
    write_report(tmp_path / "runs", tmp_path, (100, 300), quick=False)
    stored = runs_from_results(json.loads((tmp_path / "steering.json").read_text()))
    expected = [r for r in RUNS if (r.variant, r.seed) != ("steer", 1)] + [rerun, added]
    assert sorted(stored, key=repr) == sorted(expected, key=repr)


def test_every_run_evaluates_on_held_out_prompts_and_runs_seed_major():
    for plan in (FULL, QUICK):
        specs = run_specs(plan)
        assert len(specs) == plan.seeds * 3 * 2 * len(VARIANTS)
        assert [s.seed for s in specs] == sorted(s.seed for s in specs)
        fields = steering_fields(specs[0], plan, Path("runs"), ".data", "")
        assert fields["eval_every"] == plan.eval_every
        assert fields["eval_prompts"] == plan.eval_prompts
        assert fields["steps"] == max(plan.horizons)
        assert fields["run_dir"] == str(Path("runs") / specs[0].name)
    steer = next(s for s in run_specs(FULL) if s.variant == "kl-budget-steer-0.5")
    steered = steering_fields(steer, FULL, Path("r"), ".data", "")
    assert steered["controller_settings"]["budget_growth"] == 0.02


def test_quick_sweep_trains_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "benchmarks.steering", "--quick", "--runs"]
    command += [str(tmp_path / "runs"), "--out", str(out), "--data-dir", str(tmp_path / "data")]
    command += ["--only", "sentiment/standard/*"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    stored = json.loads((out / "steering_quick.json").read_text())
    table = stored["cells"]
    assert [(c["task"], c["horizon"]) for c in table] == [("sentiment", 3), ("sentiment", 6)]
    variants = {row["variant"] for row in table[0]["rows"]}
    assert {"kl-budget", "kl-budget-steer-0.5", "beta-0.1"} <= variants
    assert len(stored["runs"]) == len(VARIANTS) and all(
        set(r["gold"]) == {"3", "6"} for r in stored["runs"]
    )
    # On a machine without the run directories the recorded runs are not trained again and the
    # report keeps their records.
    shutil.rmtree(tmp_path / "runs")
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{len(VARIANTS)} of {len(VARIANTS)} runs are in the committed results" in again.stdout
    assert not (tmp_path / "runs").exists()
    assert json.loads((out / "steering_quick.json").read_text()) == stored
