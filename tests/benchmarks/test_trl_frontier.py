"""The TRL frontier's aggregate: the best fixed β in hindsight and the paired gold regret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import trl_frontier


def write_run(root: Path, regime: str, variant: str, seed: int, gold: float) -> None:
    logs = [
        {"rewards/gold/mean": gold, "rewards/vader/mean": 0.5, "kl": 1.0, "loss": 0.0}
        for _ in range(trl_frontier.FINAL_WINDOW)
    ]
    path = root / regime / variant / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"logs": logs, "seconds": [0.5, 0.6, 0.7]}))


def test_regret_is_paired_against_the_best_beta_of_each_regime(tmp_path, monkeypatch):
    monkeypatch.setattr(trl_frontier, "RUNS", tmp_path)
    monkeypatch.setattr(trl_frontier, "SEEDS", (0, 1, 2))
    for seed in (0, 1, 2):
        write_run(tmp_path, "stress", "beta-0.1", seed, 0.2 + 0.01 * seed)
        write_run(tmp_path, "stress", "beta-1", seed, 0.1)
        write_run(tmp_path, "stress", "kl-budget", seed, 0.3 + 0.02 * seed)
    results = trl_frontier.aggregate()
    assert set(results) == {"stress"}  # a regime without runs is left out
    stress = results["stress"]
    assert stress["best_beta"] == "beta-0.1"
    regret = stress["regret"]["kl-budget"]
    assert regret["n"] == 3
    assert regret["mean"] == pytest.approx(0.1 + 0.01)  # paired: (0.1, 0.11, 0.12)
    assert regret["ci"][0] > 0.09
    text = trl_frontier.render(results, "####")
    assert "#### stress (lr 0.01); best fixed β in hindsight: beta-0.1" in text
    assert "gold regret of kl-budget against beta-0.1: +0.110" in text
