"""kl-budget's predicted step limit: the limit held at no forward of its own, resumable."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import build_tiny  # noqa: E402
from tiny_lm import deterministic_rows as deterministic  # noqa: E402

from reference_trainer.config import TrainConfig  # noqa: E402
from reference_trainer.config_cli import build  # noqa: E402
from reference_trainer.run import train  # noqa: E402
from reference_trainer.train import Trainer  # noqa: E402
from safecontrol.torch import StepLimiter, exact_kl_per_token  # noqa: E402
from safecontrol.torch.step_limit import STEP_SLACK  # noqa: E402

SMALL = {"steps": "4", "batch_size": "4", "max_new_tokens": "6", "min_new_tokens": "1"}
BINDING = {"algo": "kl-budget", "lr": 0.05, "ppo_epochs": 3}
"""Steps far larger than kl-budget's default step limit (about 0.005 nats per token)."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"))


def config(tiny: Path, run_dir: Path, **changes) -> TrainConfig:
    values = build(TrainConfig, {**SMALL, "threads": "1"}, strings=True).__dict__
    return TrainConfig(**{**values, "model": str(tiny), "run_dir": str(run_dir), **changes})


def count_forwards(monkeypatch) -> dict[str, int]:
    calls = {"forward": 0}
    original = Trainer._forward

    def counted(self, model, rollout):
        calls["forward"] += 1
        return original(self, model, rollout)

    monkeypatch.setattr(Trainer, "_forward", counted)
    return calls


def test_kl_budget_predicts_its_steps_and_safe_previews_them():
    assert TrainConfig(algo="kl-budget").resolved_step_limit == "predicted"
    assert TrainConfig(algo="safe").resolved_step_limit == "preview"
    assert TrainConfig(algo="kl-budget", step_limit="preview").resolved_step_limit == "preview"
    with pytest.raises(ValueError, match=r"step_limit must be 'auto' or one of .* 'guess'"):
        TrainConfig(step_limit="guess")


def test_every_checked_predicted_step_ends_within_the_slack_of_its_limit(
    tiny, tmp_path, monkeypatch
):
    original = StepLimiter.checked
    seen: list[tuple[float, float, float]] = []

    def measured(self, decision, rollout, new, step, iteration):
        forward, factor = original(self, decision, rollout, new, step, iteration)
        kl = exact_kl_per_token(step.before.logits.detach(), forward.logits.detach())
        final = float(kl[rollout.response_mask].mean())
        seen.append((final, decision.max_preview_kl, factor))
        return forward, factor

    monkeypatch.setattr(StepLimiter, "checked", measured)
    train(config(tiny, tmp_path / "run", **BINDING), progress=False)
    rows = deterministic(tmp_path / "run")
    assert min(r["step_scale_min"] for r in rows) < 0.5  # the limit binds: steps are shrunk
    # Measured: every step but each iteration's last, and the first (previewed, not predicted).
    assert len(seen) == 4 * 2 - 1
    assert any(factor < 1.0 for _, _, factor in seen)  # some overshot their prediction
    assert all(final <= STEP_SLACK * limit for final, limit, _ in seen)


def test_a_predicted_limit_costs_no_forward_when_it_does_not_bind(tiny, tmp_path, monkeypatch):
    calls = count_forwards(monkeypatch)
    loose = {"algo": "kl-budget", "ppo_epochs": 3, "controller_settings": {"step_ratio": 1e6}}
    train(config(tiny, tmp_path / "predicted", **loose), progress=False)
    predicted = calls["forward"]
    calls["forward"] = 0
    train(config(tiny, tmp_path / "none", **loose, preview_steps=False), progress=False)
    assert predicted == calls["forward"]
    calls["forward"] = 0
    train(config(tiny, tmp_path / "preview", **loose, step_limit="preview"), progress=False)
    assert calls["forward"] == predicted + 4  # the preview: one forward per iteration more


def test_with_one_epoch_every_step_is_previewed(tiny, tmp_path):
    """No later epoch measures a step: a stale prediction would go unchecked, so none is made."""
    one = {**BINDING, "ppo_epochs": 1}
    train(config(tiny, tmp_path / "predicted", **one), progress=False)
    train(config(tiny, tmp_path / "preview", **one, step_limit="preview"), progress=False)
    assert deterministic(tmp_path / "predicted") == deterministic(tmp_path / "preview")


def test_a_resumed_run_predicts_from_the_saved_curvature(tiny, tmp_path):
    train(config(tiny, tmp_path / "whole", **BINDING), progress=False)
    train(config(tiny, tmp_path / "part", **BINDING, steps=2), progress=False)
    train(config(tiny, tmp_path / "part", **BINDING), resume=True, progress=False)
    assert deterministic(tmp_path / "part") == deterministic(tmp_path / "whole")
