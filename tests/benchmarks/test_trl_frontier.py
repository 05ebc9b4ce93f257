"""The TRL frontier's aggregate (the best fixed β in hindsight, the paired gold regret, the step
limit's cost), its stored words, and the report regenerated from its own JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks.runner import RunSpec
from benchmarks.trl_frontier.aggregate import (
    aggregate,
    records_from_runs,
    step_limit_cost,
)
from benchmarks.trl_frontier.plan import FINAL_WINDOW, grpo_beta, run_path, run_specs
from benchmarks.trl_frontier.render import block
from benchmarks.trl_frontier.words import TrlFrontierResults, with_words


def write_run(
    root: Path, regime: str, variant: str, seed: int, gold: float, seconds: float = 0.6
) -> None:
    early = [{"rewards/gold/mean": -9.0, "rewards/vader/mean": 0.0, "kl": 0.0, "loss": 0.0}]
    logs = early + [
        {"rewards/gold/mean": gold, "rewards/vader/mean": 0.5, "kl": 1.0, "loss": 0.0}
        for _ in range(FINAL_WINDOW)
    ]
    path = run_path(root, RunSpec(regime, variant, seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"logs": logs, "seconds": [seconds - 0.1, seconds, 9.0]}))


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for seed in (0, 1, 2):
        write_run(root, "stress", "beta-0.1", seed, 0.2 + 0.01 * seed)
        write_run(root, "stress", "beta-1", seed, 0.1)
        write_run(root, "stress", "kl-budget", seed, 0.3 + 0.02 * seed, seconds=0.9)
        write_run(root, "stress", "kl-budget-no-limit", seed, 0.25, seconds=0.6)
    return root


def test_regret_is_paired_against_the_best_beta_of_each_regime(runs: Path) -> None:
    frontier = aggregate(records_from_runs(runs), cost=None)
    assert [r.regime for r in frontier.regimes] == ["stress"]  # no runs: regime left out
    stress = frontier.regimes[0]
    assert stress.best_beta == "beta-0.1"
    regret = {g.variant: g for g in stress.regrets}["kl-budget"]
    assert regret.against == "beta-0.1" and regret.gold.n == 3
    assert regret.gold.mean == pytest.approx(0.1 + 0.01)  # paired: (0.1, 0.11, 0.12)
    assert regret.gold.low is not None and regret.gold.low > 0.09
    variants = {v.variant: v for v in stress.variants}
    assert variants["beta-1"].mean("gold") == pytest.approx(0.1)  # the last steps only
    assert variants["beta-1"].runs[0].seconds_per_step == pytest.approx(0.6)  # the median
    assert stress.limit_cost_ratio == pytest.approx(0.9 / 0.6)
    text = block(with_words(frontier), "####")
    assert "#### stress (lr 0.01); best fixed β in hindsight: beta-0.1" in text
    assert "- gold regret of kl-budget against beta-0.1: +0.110 [" in text
    assert "paired by seed: stress 1.50×" in text
    assert "measured apart" not in text  # never measured


def test_the_words_and_the_step_limit_cost_are_stored_and_read_back(runs: Path) -> None:
    cost = step_limit_cost(
        {"beta-0.1": [0.2, 0.3], "kl-budget-no-limit": [0.3], "kl-budget": [0.36]}
    )
    assert cost.limit_over_no_limit == pytest.approx(1.2)
    assert cost.limit_over_plain_trl == pytest.approx(0.36 / 0.25)
    results = with_words(aggregate(records_from_runs(runs), cost))
    stored = json.loads(json.dumps(results.to_json()))
    assert TrlFrontierResults.from_json(stored) == results
    assert (
        "**1.44× plain TRL**, 1.20× kl-budget without the limit"
        in stored["words"]["limit_cost_measured"]
    )
    assert stored["words"]["regrets"]["stress"][1].startswith(
        "gold regret of kl-budget-no-limit against beta-0.1: +0.040 ["
    )


def test_report_only_regenerates_from_the_runs_and_then_from_its_own_json(
    runs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "benchmarks.trl_frontier", "--report-only", "--out", str(out)]
    first = subprocess.run([*command, "--runs", str(runs)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    stored, page = (out / "trl_frontier.json").read_text(), (out / "trl_frontier.md").read_text()
    assert page.startswith("# kl-budget in TRL's GRPOTrainer")
    empty = tmp_path / "no-runs"
    again = subprocess.run([*command, "--runs", str(empty)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "trl_frontier.json").read_text() == stored
    assert (out / "trl_frontier.md").read_text() == page
    nothing = subprocess.run(
        [*command[:-1], str(tmp_path / "x"), "--runs", str(empty)], capture_output=True, text=True
    )
    assert nothing.returncode == 2 and "no run under" in nothing.stderr


def test_the_plan_is_seed_major_and_kl_budget_starts_from_a_small_beta() -> None:
    specs = run_specs()
    assert len(specs) == 8 * 2 * 7
    assert [s.seed for s in specs] == sorted(s.seed for s in specs)
    assert run_path(Path("r"), specs[0]) == Path("r/standard/beta-0.01/seed0.json")
    assert grpo_beta("beta-0.3") == 0.3 and grpo_beta("kl-budget-no-limit") == 0.001
    with pytest.raises(ValueError, match="unknown variant 'ppo'"):
        grpo_beta("ppo")


def test_the_readme_block_is_read_from_the_stored_results(runs: Path, tmp_path: Path) -> None:
    from benchmarks.readme_results import TRL_BEGIN, TRL_END, with_trl_block

    results = with_words(aggregate(records_from_runs(runs), cost=None))
    (tmp_path / "trl_frontier.json").write_text(json.dumps(asdict(results)))
    readme = f"intro\n{TRL_BEGIN}\nSTALE BLOCK\n{TRL_END}\ntail\n"
    wanted = with_trl_block(readme, tmp_path)
    assert block(results, "####") in wanted and "STALE BLOCK" not in wanted
