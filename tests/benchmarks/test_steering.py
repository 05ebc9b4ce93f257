"""The steering study: its statistics on hand-made runs, and ``--quick`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.steering_report import RunResult, cell, cells, drawdown, render


def run(variant: str, seed: int, gold: dict[int, float], task: str = "topic") -> RunResult:
    return RunResult(task, "standard", variant, seed, gold, dict.fromkeys(gold, 1.0), 0, 0)


def test_the_drawdown_is_the_best_evaluation_up_to_the_horizon_minus_the_gold_at_it():
    gold = {50: 0.2, 100: 0.5, 150: 0.4, 200: 0.45, 300: 0.3}
    assert drawdown(gold, 100) == 0.0
    assert drawdown(gold, 150) == pytest.approx(0.1)
    assert drawdown(gold, 300) == pytest.approx(0.2)


def test_the_best_beta_is_chosen_per_horizon_and_regret_is_paired_by_seed():
    results = [
        # beta-0.3 is best at 100, beta-0.1 at 300 (its KL keeps paying)
        run("beta-0.3", 0, {100: 0.40, 300: 0.38}),
        run("beta-0.3", 1, {100: 0.42, 300: 0.36}),
        run("beta-0.1", 0, {100: 0.30, 300: 0.45}),
        run("beta-0.1", 1, {100: 0.34, 300: 0.47}),
        run("steer", 0, {100: 0.41, 300: 0.50}),
        run("steer", 1, {100: 0.45, 300: 0.46}),
    ]
    early, late = cell(results, "topic", "standard", 100), cell(results, "topic", "standard", 300)
    assert early is not None and late is not None
    assert early.best_beta == "beta-0.3" and late.best_beta == "beta-0.1"
    steer = {row.variant: row for row in late.rows}["steer"]
    assert steer.regret == pytest.approx(((0.50 - 0.45) + (0.46 - 0.47)) / 2)
    assert steer.regret_ci is not None and steer.regret_ci[0] <= steer.regret <= steer.regret_ci[1]
    assert {row.variant: row for row in late.rows}["beta-0.3"].drawdown == pytest.approx(0.04)
    assert cell(results, "sentiment", "standard", 100) is None  # no runs of that cell
    assert len(cells(results, (100, 300))) == 2
    assert "best fixed β `beta-0.1`" in render(cells(results, (100, 300)), quick=False)


def test_quick_sweep_trains_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "benchmarks.steering", "--quick", "--runs"]
    command += [str(tmp_path / "runs"), "--out", str(out), "--data-dir", str(tmp_path / "data")]
    command += ["--only", "sentiment/standard/*"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    table = json.loads((out / "steering_quick.json").read_text())["cells"]
    assert [(c["task"], c["horizon"]) for c in table] == [("sentiment", 3), ("sentiment", 6)]
    variants = {row["variant"] for row in table[0]["rows"]}
    assert {"kl-budget", "kl-budget-steer-0.5", "beta-0.1"} <= variants


def test_the_plant_comparison_pairs_both_modes_on_every_preset(capsys) -> None:
    from benchmarks import plant_steering

    result = plant_steering.compare(seeds=1, steps=40)
    assert set(result["presets"]) == {
        "reward_hacking",
        "kl_runaway",
        "entropy_collapse",
        "late_crash",
    }
    for preset in result["presets"].values():
        assert preset["runs"] == 9  # one seed on each of the 9 settings
        steered, fixed = preset["kl-budget-steer-0.5_kl_p95"], preset["kl-budget_kl_p95"]
        assert steered >= 0.0 and fixed >= 0.0
    assert "| late_crash | 9 |" in plant_steering.render(result)
