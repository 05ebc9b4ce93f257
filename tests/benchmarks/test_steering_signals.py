"""The gold-free signals study (``benchmarks/steering/signals.py``) on runs built to order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.steering import signals


def write_run(root: Path, name: str, distinct_then_gold: list[tuple[float, float]]) -> None:
    """A 300-iteration run evaluated every 50: before evaluation i its batches' distinct-1 is
    ``distinct_then_gold[i][0]``, and the evaluation's gold is ``[i][1]``."""
    run = root / name
    run.mkdir(parents=True)
    rows = []
    for step in range(1, 301):
        i = min((step - 1) // 50, len(distinct_then_gold) - 1)
        distinct, gold = distinct_then_gold[i]
        row = {
            "step": step,
            "distinct_1": 1.0 if step <= 5 else distinct,
            "entropy": 5.0,
            "kl_k3": step / 100,
            "reward_mean": step / 300,
            "explained_variance": 0.5,
        }
        if step % 50 == 0:
            row |= {"eval_gold": gold, "eval_distinct_1": distinct, "eval_entropy": 5.0}
        rows.append(row)
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (run / "done.json").write_text("{}")


def test_a_signal_that_drops_before_every_fall_separates_perfectly(tmp_path: Path) -> None:
    # Gold alternates rise / fall; distinct-1 is low (0.3) exactly before a fall.
    pattern = [(0.8, 0.2), (0.3, 0.4), (0.8, 0.1), (0.3, 0.5), (0.8, 0.2), (0.8, 0.3)]
    for seed in range(3):
        write_run(tmp_path, f"topic/standard/beta-0.1/seed{seed}", pattern)
    write_run(tmp_path, "topic/standard/beta-0.1/seed9/unfinished", pattern)
    (tmp_path / "topic/standard/beta-0.1/seed9/unfinished/done.json").unlink()
    windows = signals.read_windows(tmp_path)
    assert len(windows) == 3 * 5  # evaluations 50..250, each with one 50 iterations later
    assert {w.step for w in windows} == {50, 100, 150, 200, 250}
    first = next(w for w in windows if w.step == 100)
    assert first.change == pytest.approx(0.1 - 0.4)
    assert first.signals["distinct_ratio"] == pytest.approx(0.3)
    assert signals.auc_of(windows, "distinct_ratio") == pytest.approx(0.0)
    assert signals.auc_of(windows, "eval_distinct") == pytest.approx(0.0)
    # A signal that is the same in every window says nothing.
    assert signals.auc_of(windows, "entropy_ratio") == pytest.approx(0.5)


def test_the_command_writes_its_table_and_refuses_an_empty_runs_dir(tmp_path: Path) -> None:
    pattern = [(0.8, 0.2), (0.3, 0.4), (0.8, 0.1), (0.3, 0.5), (0.8, 0.2), (0.8, 0.3)]
    for seed in range(2):
        write_run(tmp_path / "runs", f"sentiment/standard/kl-budget/seed{seed}", pattern)
    out = tmp_path / "out"
    argv = ["--runs", str(tmp_path / "runs"), "--out", str(out), "--resamples", "20"]
    assert signals.main(argv) == 0
    saved = json.loads((out / "steering_signals.json").read_text())
    by_name = {a["name"]: a for a in saved["aucs"]}
    assert by_name["distinct_ratio"]["auc"] == pytest.approx(0.0)
    assert "| `distinct_ratio` |" in (out / "steering_signals.md").read_text()
    assert signals.main(["--runs", str(tmp_path / "nothing"), "--out", str(out)]) == 2
