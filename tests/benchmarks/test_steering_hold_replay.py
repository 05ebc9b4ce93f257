"""The proxy hold's replay on logged runs (``benchmarks/steering/hold_replay.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.steering import hold_replay


def write_run(root: Path, task: str, variant: str, seed: int, rewards: list[float], gold) -> None:
    """A finished 300-iteration run: batch-mean proxy ``rewards`` and held-out ``gold`` per
    evaluation (every 50)."""
    run = root / task / "standard" / variant / f"seed{seed}"
    run.mkdir(parents=True)
    rows = []
    for step, reward in enumerate(rewards, start=1):
        row = {"step": step, "reward_mean": reward}
        if step % 50 == 0:
            row |= {"eval_gold": gold[step], "eval_kl": 1.0}
        rows.append(row)
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = {"task": task, "regime": "standard", "variant": variant, "seed": seed}
    (run / "done.json").write_text(json.dumps({"spec": spec, "summary": {}}))


def test_the_hold_fires_where_the_controller_would_and_the_run_keeps_its_last_evaluation():
    flat_from_121 = [min(t, 120) / 300 for t in range(300)]  # batch t + 1's reward
    # A rising-then-flat proxy fires once a whole window is flat: batches 121-160.
    assert hold_replay.held_at(flat_from_121, 40) == 160
    assert hold_replay.held_at([t / 300 for t in range(300)], 40) == 0
    gold = {50: 0.1, 100: 0.4, 150: 0.5, 200: 0.3, 250: 0.2, 300: 0.1}
    assert hold_replay.kept_gold(gold, 0, 300) == 0.1  # never fired
    assert hold_replay.kept_gold(gold, 170, 100) == 0.4  # fired after the horizon
    assert hold_replay.kept_gold(gold, 170, 300) == 0.5  # the evaluation at 150
    assert hold_replay.kept_gold(gold, 150, 300) == 0.5


def test_the_replay_compares_the_frozen_run_with_the_best_fixed_beta_by_seed(tmp_path: Path):
    peak = {50: 0.2, 100: 0.5, 150: 0.6, 200: 0.4, 250: 0.3, 300: 0.2}
    steady = {50: 0.2, 100: 0.4, 150: 0.45, 200: 0.45, 250: 0.45, 300: 0.45}
    plateau = [min(t, 100) / 300 for t in range(300)]  # flat from batch 101
    for seed in (0, 1):
        write_run(tmp_path, "sentiment", "kl-budget", seed, plateau, peak)
        write_run(tmp_path, "sentiment", "beta-0.3", seed, [t / 300 for t in range(300)], steady)
    runs, rewards = hold_replay.read(tmp_path, seeds=2)
    cells = hold_replay.replay(runs, rewards)
    late = {c.window: c for c in cells if c.variant == "kl-budget" and c.horizon == 300}
    assert set(late) == set(hold_replay.WINDOWS) and late[40].best_beta == "beta-0.3"
    # Frozen at 140 (window 40) it keeps the evaluation at 100; at 180 (80), that at 150.
    assert late[40].fired == (140, 140) and late[40].regret.mean == pytest.approx(0.5 - 0.45)
    assert late[80].fired == (180, 180) and late[80].regret.mean == pytest.approx(0.6 - 0.45)
    assert late[80].unheld_regret.mean == pytest.approx(0.2 - 0.45)
    text = hold_replay.markdown(cells, 2, "cmd")
    assert "| sentiment / standard / 300 | beta-0.3 | -0.250 [" in text
    assert hold_replay.main(["--runs", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "steering_hold_replay.md").read_text().startswith("# The proxy")
