"""kl-budget in the reference trainer: its step limit shrinks steps, its budget is judged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import build_tiny

from reference_trainer.config import TrainConfig
from reference_trainer.config_cli import build
from reference_trainer.run import train
from reference_trainer.run_dir.report import budget_adherence, summary
from reference_trainer.train import Trainer

SMALL = {"steps": "4", "batch_size": "4", "max_new_tokens": "6", "min_new_tokens": "1"}


def run(tiny: Path, run_dir: Path, **changes) -> list[dict]:
    values = build(TrainConfig, {**SMALL, "threads": "1"}, strings=True).__dict__
    config = TrainConfig(**{**values, "model": str(tiny), "run_dir": str(run_dir), **changes})
    train(config, progress=False)
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_budget_controller_shrinks_steps_that_would_exceed_its_step_limit(tmp_path):
    tiny = build_tiny(tmp_path / "tiny")
    settings = {"budget": 0.2, "step_ratio": 0.0005}  # at most ~0.003 nats per step
    rows = run(tiny, tmp_path / "limited", algo="kl-budget", lr=0.05, controller_settings=settings)
    assert all(r["budget"] == 0.2 for r in rows)
    assert min(r["step_scale_min"] for r in rows) < 1.0  # some steps were shrunk
    unlimited = run(
        tiny,
        tmp_path / "free",
        algo="kl-budget",
        lr=0.05,
        preview_steps=False,
        controller_settings=settings,
    )
    assert all(r["step_scale_min"] == 1.0 for r in unlimited)
    assert rows[-1]["kl_k3"] < unlimited[-1]["kl_k3"]  # smaller steps, less KL

    assert summary(tmp_path / "limited")["budget_adherence"] is None  # no post-warm-up step


def test_budget_adherence_counts_post_warm_up_steps_within_the_slack():
    kl = np.array([9.0, 9.0, 0.1, 0.2, 0.21, 0.23, 0.5])
    assert budget_adherence(kl, 0.2, warmup=2) == pytest.approx(3 / 5)  # 0.23 > 1.1 × 0.2
    per_step = np.array([1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 1.0])
    assert budget_adherence(kl, per_step, warmup=2) == pytest.approx(2 / 5)
    assert budget_adherence(kl, 0.2, warmup=7) is None


def test_reusing_the_preview_forward_as_the_next_epoch_forward_changes_nothing(
    tmp_path, monkeypatch
):
    """A whole previewed step's forward is the next epoch's: reused, the run is bit-identical
    to one that runs that forward again (and one forward per epoch cheaper)."""
    tiny = build_tiny(tmp_path / "tiny")
    # small steps: kept whole; every step previewed (a predicted one has no forward to reuse)
    changes = {"algo": "kl-budget", "step_limit": "preview", "ppo_epochs": 3, "lr": 1e-4}
    reused = run(tiny, tmp_path / "reused", **changes)
    assert any(r["step_scale_min"] == 1.0 for r in reused)
    calls = {"forward": 0}
    original_step, original_forward = Trainer._policy_step, Trainer._forward

    def never_reuse(self, rollout, before, keep_forward, check_later):
        return original_step(self, rollout, before, False, check_later)

    def counted(self, model, rollout):
        calls["forward"] += 1
        return original_forward(self, model, rollout)

    monkeypatch.setattr(Trainer, "_policy_step", never_reuse)
    monkeypatch.setattr(Trainer, "_forward", counted)
    recomputed = run(tiny, tmp_path / "recomputed", **changes)
    untimed = [
        [{k: v for k, v in r.items() if not k.startswith(("seconds", "tokens_per"))} for r in rows]
        for rows in (reused, recomputed)
    ]
    assert untimed[0] == untimed[1]
    monkeypatch.setattr(Trainer, "_policy_step", original_step)
    recomputing = calls["forward"]
    calls["forward"] = 0
    run(tiny, tmp_path / "reused-again", **changes)
    assert calls["forward"] < recomputing


def test_a_held_policy_stops_moving_once_the_proxy_stops_rising(tmp_path):
    """``hold_window`` 2 holds from the first batch whose mean reward is no higher than the last
    one's: from then on every step is shrunk to a KL of 1e-8 × the budget, where the same run
    without the hold takes its steps whole."""
    tiny = build_tiny(tmp_path / "tiny")
    held_rows = run(
        tiny, tmp_path / "held", algo="kl-budget", steps=6, controller_settings={"hold_window": 2}
    )
    free_rows = run(tiny, tmp_path / "free", algo="kl-budget", steps=6)
    rewards = [r["reward_mean"] for r in held_rows]
    held = next(t for t in range(1, len(rewards)) if not rewards[t] > rewards[t - 1])
    assert held < len(held_rows) - 1  # the test needs steps after the hold
    assert all(r["step_scale_min"] == 1.0 for r in free_rows)
    assert all(r["step_scale_min"] == 1.0 for r in held_rows[:held])
    assert all(r["step_scale"] < 0.05 for r in held_rows[held:])
