"""The trainer's trust region (``max_step_kl``): fixed β with a per-step KL limit, and the tighter
of a controller's own limit and the trust region's."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from reference_trainer.config import TrainConfig
from reference_trainer.trust_region import TrustRegion, step_limit
from safecontrol.decision import BudgetDecision, CoefDecision

BUDGET = BudgetDecision(coef=0.2, budget=1.5, max_preview_kl=0.01, step=3)
FIXED = CoefDecision(coef=0.1, step=3)


def test_the_tighter_limit_applies_and_every_other_field_is_the_decision_s():
    assert step_limit(BUDGET, True, 0.0) is BUDGET  # no trust region: the controller's own
    assert step_limit(BUDGET, True, 0.05) is BUDGET  # a looser region changes nothing
    tight = step_limit(BUDGET, True, 0.004)
    assert isinstance(tight, TrustRegion) and tight.max_preview_kl == 0.004
    assert (tight.coef, tight.step, tight.skipped) == (0.2, 3, 0)
    assert tight.loss_at(2.0) == BUDGET.loss_at(2.0) and tight.slope_at(2.0) == 0.2
    assert tight.step_scale(0.016) == pytest.approx(0.5)  # sqrt(0.004 / 0.016)
    assert tight.step_scale(0.003) == 1.0
    # preview_steps off drops the controller's limit, not the trust region.
    assert math.isinf(step_limit(BUDGET, False, 0.0).max_preview_kl)
    assert step_limit(BUDGET, False, 0.05).max_preview_kl == 0.05
    # fixed β: no limit of its own, so the trust region is the only one.
    assert step_limit(FIXED, True, 0.0) is FIXED
    assert step_limit(FIXED, True, 0.005).max_preview_kl == 0.005


@pytest.mark.parametrize("bad", [-0.1, math.inf, math.nan])
def test_a_bad_trust_region_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=r"max_step_kl must be .*" + str(bad)):
        TrainConfig(max_step_kl=bad)


torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import build_tiny, tiny_config  # noqa: E402
from tiny_lm import deterministic_rows as deterministic  # noqa: E402

from reference_trainer.run import train  # noqa: E402
from safecontrol.torch import StepLimiter, exact_kl_per_token  # noqa: E402
from safecontrol.torch.step_limit import STEP_SLACK  # noqa: E402

LARGE_STEPS = {"algo": "fixed-kl", "controller_settings": {"coef": 0.1}, "lr": 0.05, "steps": 4}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"))


def test_trust_region_ppo_holds_every_step_within_its_limit(tiny, tmp_path, monkeypatch):
    train(tiny_config(tiny, tmp_path / "free", **LARGE_STEPS), progress=False)
    assert all(r["step_scale_min"] == 1.0 for r in deterministic(tmp_path / "free"))
    original = StepLimiter.checked
    seen: list[tuple[float, float]] = []

    def measured(self, decision, rollout, new, step, iteration):
        forward, factor = original(self, decision, rollout, new, step, iteration)
        kl = exact_kl_per_token(step.before.logits.detach(), forward.logits.detach())
        seen.append((float(kl[rollout.response_mask].mean()), decision.max_preview_kl))
        return forward, factor

    monkeypatch.setattr(StepLimiter, "checked", measured)
    region = {**LARGE_STEPS, "max_step_kl": 1e-3, "step_limit": "predicted"}
    train(tiny_config(tiny, tmp_path / "region", **region), progress=False)
    rows = deterministic(tmp_path / "region")
    assert min(r["step_scale_min"] for r in rows) < 0.5  # the region binds: steps are shrunk
    assert all(r["coef"] == 0.1 for r in rows)  # and β stays the user's
    assert len(seen) >= 3 and all(kl <= STEP_SLACK * limit for kl, limit in seen)
    assert {limit for _, limit in seen} == {1e-3}


def test_a_trust_region_looser_than_kl_budget_s_limit_changes_nothing(tiny, tmp_path):
    kl_budget = {"algo": "kl-budget", "lr": 0.05}
    train(tiny_config(tiny, tmp_path / "own", **kl_budget), progress=False)
    train(tiny_config(tiny, tmp_path / "loose", **kl_budget, max_step_kl=10.0), progress=False)
    assert deterministic(tmp_path / "own") == deterministic(tmp_path / "loose")
