"""The framework-free step limiter: each step ends within its decision's KL limit, both modes."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from safecontrol.decision import BudgetDecision, CoefDecision  # noqa: E402
from safecontrol.torch import StepLimiter, exact_kl_per_token  # noqa: E402
from safecontrol.torch.step_limit import MAX_SHRINKS, STEP_SLACK  # noqa: E402

LIMIT = 0.01


class Batch:
    def __init__(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.states = torch.randn(4, 5, 8, generator=generator)
        self.mask = torch.rand(4, 5, generator=generator) > 0.3


def make(mode: str = "preview", seed: int = 0):
    torch.manual_seed(seed)
    policy = torch.nn.Linear(8, 11)
    calls = {"forward": 0}

    def forward(batch: Batch) -> torch.Tensor:
        calls["forward"] += 1
        return policy(batch.states)

    limiter = StepLimiter(
        list(policy.parameters()), forward, lambda logits: logits, lambda b: b.mask, mode=mode
    )
    return policy, limiter, calls


def big_step(policy: torch.nn.Module, batch: Batch, lr: float = 5.0) -> None:
    """One SGD step on a loss that moves the policy far (KL ≫ LIMIT)."""
    loss = policy(batch.states)[..., 3].mean()
    policy.zero_grad()
    (-loss).backward()
    with torch.no_grad():
        for p in policy.parameters():
            p -= lr * p.grad


def step_kl(policy, batch: Batch, before: torch.Tensor) -> float:
    with torch.no_grad():
        return float(exact_kl_per_token(before, policy(batch.states))[batch.mask].mean())


def test_an_exact_check_brings_a_large_step_to_its_limit():
    policy, limiter, calls = make()
    batch, decision = Batch(1), BudgetDecision(coef=0.0, budget=1.0, max_preview_kl=LIMIT)
    pending = limiter.before_step(batch)
    big_step(policy, batch)
    assert step_kl(policy, batch, pending.before) > 20 * LIMIT
    limited = limiter.after_step(decision, pending)
    assert limited.scale < 0.5 and limited.step_kl is not None and limited.step_kl > 20 * LIMIT
    assert 0.3 * LIMIT < step_kl(policy, batch, pending.before) <= STEP_SLACK * LIMIT
    # One before the step, one after, one more per shrink: the shrunk step is measured again.
    assert 3 <= calls["forward"] <= 2 + MAX_SHRINKS


def test_a_step_within_its_limit_and_a_decision_without_one_are_kept_whole():
    for decision, lr in ((BudgetDecision(0.0, 1.0, LIMIT), 1e-4), (CoefDecision(0.1), 5.0)):
        policy, limiter, _ = make()
        batch = Batch(2)
        pending = limiter.before_step(batch)
        big_step(policy, batch, lr)
        taken = [p.detach().clone() for p in policy.parameters()]
        limited = limiter.after_step(decision, pending)
        assert limited.scale == 1.0
        assert all(torch.equal(p, t) for p, t in zip(policy.parameters(), taken, strict=True))


def test_predicted_mode_previews_once_then_predicts_without_a_forward_and_checks_later():
    policy, limiter, calls = make("predicted")
    decision = BudgetDecision(0.0, 1.0, LIMIT)
    batch = Batch(3)
    with torch.no_grad():
        before = policy(batch.states)
    saved = [p.detach().clone() for p in policy.parameters()]
    big_step(policy, batch)
    first = limiter.limit(decision, batch, before, saved, iteration=0, keep_forward=True)
    assert calls["forward"] == 1 and limiter.curvature is not None and first.unchecked is None
    with torch.no_grad():
        before = policy(batch.states)
    calls["forward"] = 0
    saved = [p.detach().clone() for p in policy.parameters()]
    big_step(policy, batch)
    second = limiter.limit(decision, batch, before, saved, iteration=0, keep_forward=True)
    assert calls["forward"] == 0 and second.unchecked is not None  # predicted: no forward
    assert second.step_kl is not None and second.scale < 1.0
    _, factor = limiter.checked(decision, batch, policy(batch.states), second.unchecked, 0)
    assert factor <= 1.0
    assert step_kl(policy, batch, before) <= STEP_SLACK * LIMIT


def test_the_state_round_trips_and_a_bad_one_is_refused_changing_nothing():
    _, limiter, _ = make("predicted")
    limiter.load_state_dict({"step_curvature": 2.5})
    assert limiter.state_dict() == {"step_curvature": 2.5}
    for bad in (
        {"step_curvature": math.nan},
        {"step_curvature": -1.0},
        {"step_curvature": True},
        {"step_curvature": "2"},
        {},
        {"step_curvature": 1.0, "other": 1},
        [("step_curvature", 1.0)],
    ):
        with pytest.raises(ValueError, match="step_curvature"):
            limiter.load_state_dict(bad)  # type: ignore[arg-type]
        assert limiter.curvature == 2.5
    limiter.load_state_dict({"step_curvature": None})
    assert limiter.curvature is None


def test_an_unknown_mode_and_a_non_finite_step_are_refused():
    with pytest.raises(ValueError, match=r"mode must be one of .* got 'exact'"):
        make("exact")
    policy, limiter, _ = make()
    batch = Batch(4)
    pending = limiter.before_step(batch)
    with torch.no_grad():
        policy.weight.fill_(math.nan)
    with pytest.raises(FloatingPointError, match="KL of the policy step is nan"):
        limiter.after_step(BudgetDecision(0.0, 1.0, LIMIT), pending)


def test_a_step_kl_that_rounds_below_zero_reads_as_zero_and_keeps_the_curvature():
    """Two nearly equal distributions' float32 KL rounds to either side of 0: a step shrunk to
    ~nothing must neither give a negative KL (which no step_scale accepts) nor a curvature of 0
    (which would predict every later step free)."""
    generator = torch.Generator().manual_seed(0)
    before = 3.0 * torch.randn(4, 5, 512, generator=generator)
    after = before + 1e-6 * torch.randn(4, 5, 512, generator=generator)
    assert float(exact_kl_per_token(before, after).mean()) < 0.0  # the rounding this is about
    limiter = StepLimiter([], lambda b: b, lambda logits: logits, lambda b: torch.ones(4, 5) > 0)
    limiter.curvature, limiter.measured_at = 2.5, 0
    assert limiter.step_kl(None, before, after) == 0.0
    limiter._measured(0.0, 1e-12, 1)
    assert limiter.curvature == 2.5 and limiter.measured_at == 0
