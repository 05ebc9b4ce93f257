"""The loss of a PPO epoch, piece by piece: GAE against its recursion written out, whitening over
the masked tokens only, the clipped loss against its formula, token means in one process, and the
KL term of each penalty mode with its slope."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from reference_trainer.config import TrainConfig  # noqa: E402
from reference_trainer.losses import (  # noqa: E402
    clipped_policy_loss,
    gae,
    global_token_mean,
    kl_loss,
    kl_loss_is_linear,
    kl_slope,
    token_share,
    whiten,
)
from safecontrol import SafeController  # noqa: E402
from safecontrol.decision import CoefDecision  # noqa: E402


def gae_by_hand(rewards, values, length, gamma, lam):
    """δ_t = r_t + γ V_{t+1} − V_t (V beyond the episode 0), A_t = Σ_k (γλ)^k δ_{t+k}."""
    deltas = [
        rewards[t] + gamma * (values[t + 1] if t + 1 < length else 0.0) - values[t]
        for t in range(length)
    ]
    return [
        sum((gamma * lam) ** k * deltas[t + k] for k in range(length - t)) for t in range(length)
    ]


def test_gae_is_the_discounted_sum_of_td_errors_and_zero_past_the_episode():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.5, -1.0, 0.0, 2.0]])
    values = torch.tensor([[0.1, 0.2, 0.3, 9.0], [0.4, -0.2, 0.1, 0.3]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    for row, length in ((0, 3), (1, 4)):
        expected = gae_by_hand(rewards[row].tolist(), values[row].tolist(), length, 0.9, 0.8)
        assert advantages[row, :length].tolist() == pytest.approx(expected, rel=1e-6)
        assert returns[row, :length].tolist() == pytest.approx(
            [a + v for a, v in zip(expected, values[row, :length].tolist(), strict=True)],
            rel=1e-6,
        )
    # The value 9.0 outside the mask is never bootstrapped from, and nothing is written there.
    assert advantages[0, 3] == 0.0 and returns[0, 3] == 0.0


def test_with_gamma_and_lambda_one_the_return_is_the_sum_of_future_rewards():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[5.0, -1.0, 0.5]])
    _, returns = gae(rewards, values, torch.ones(1, 3, dtype=torch.bool), gamma=1.0, lam=1.0)
    assert returns[0].tolist() == pytest.approx([6.0, 5.0, 3.0])


def test_whitening_uses_the_masked_tokens_only():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, -50.0]])
    mask = torch.tensor([[True, True, False], [True, True, False]])
    out = whiten(x, mask)
    kept = out[mask]
    assert float(kept.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float((kept**2).mean()) == pytest.approx(1.0, rel=1e-5)  # the population variance
    assert out[~mask].tolist() == [0.0, 0.0]


def test_clipped_loss_clip_fraction_and_approx_kl_follow_their_formulas():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.0, 1.1, 1.5, 0.5]]))  # ratios 1, 1.1, 1.5, 0.5
    advantages = torch.tensor([[1.0, 1.0, 1.0, -1.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    loss, clip_fraction, approx_kl = clipped_policy_loss(logp, old, advantages, mask, 0.2)
    # −min(r·A, clip(r)·A): a positive advantage gains at most 1.2, a negative one loses ≥ 0.8·|A|
    assert loss[0].tolist() == pytest.approx([-1.0, -1.1, -1.2, 0.8])
    assert clip_fraction[0].tolist() == [0.0, 0.0, 1.0, 1.0]
    ratio = torch.exp(logp - old)
    assert approx_kl[0].tolist() == pytest.approx(((ratio - 1) - (logp - old))[0].tolist())
    assert bool((approx_kl >= 0).all())


def test_the_clipped_loss_carries_gradient_only_where_unclipped():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.1, 1.5]])).requires_grad_(True)
    loss, _, _ = clipped_policy_loss(logp, old, torch.ones(1, 2), torch.ones(1, 2, dtype=bool), 0.2)
    loss.sum().backward()
    assert logp.grad is not None
    assert logp.grad[0, 0] != 0.0 and logp.grad[0, 1] == 0.0  # ratio 1.5 is clipped: flat


@pytest.mark.parametrize(
    "mode, has_gradient", [("hinge", True), ("coef", True), ("detached", False)]
)
def test_safe_penalty_modes_differ_in_whether_the_penalty_reaches_the_gradient(mode, has_gradient):
    controller = SafeController()
    for _ in range(3):
        decision = controller.update(kl=2.0, entropy=0.5, reward=0.0)
    assert decision.active
    live_kl = torch.tensor(2.0, requires_grad=True)
    term = kl_loss(live_kl, decision, TrainConfig(penalty_mode=mode))
    assert float(term) == pytest.approx(
        decision.loss_at(2.0) if mode != "coef" else decision.coef * 2.0
    )
    assert term.requires_grad == has_gradient


def test_in_one_process_the_token_mean_is_the_masked_mean_with_its_gradient():
    x = torch.tensor([[1.0, 2.0, 30.0], [4.0, 50.0, 60.0]], requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert token_share(mask) == 1.0
    mean = global_token_mean(x, mask, token_share(mask))
    assert float(mean) == pytest.approx(7.0 / 3.0)
    mean.backward()
    assert torch.equal(x.grad, mask.float() / 3.0)


def active_safe_decision():
    controller = SafeController()
    for _ in range(3):
        decision = controller.update(kl=2.0, entropy=0.5, reward=0.0)
    assert decision.active
    return decision


@pytest.mark.parametrize("kl", [0.0, 0.5, 2.0, 5.0])
def test_the_kl_slope_is_the_derivative_of_the_kl_term(kl):
    """What micro-batches scale the live KL's gradient by: β for a linear penalty, the hinge's
    2·c·g·max(0, KL − τ) for SAFE's, 0 for the published detached penalty."""
    beta = CoefDecision(coef=0.3)
    assert kl_slope(kl, beta, TrainConfig()) == pytest.approx(0.3)
    safe = active_safe_decision()
    hinge = 2 * safe.penalty_coef * safe.gate * max(0.0, kl - safe.threshold)
    assert kl_slope(kl, safe, TrainConfig(penalty_mode="hinge")) == pytest.approx(hinge)
    assert kl_slope(kl, safe, TrainConfig(penalty_mode="coef")) == pytest.approx(safe.coef)
    assert kl_slope(kl, safe, TrainConfig(penalty_mode="detached")) == 0.0


def test_only_the_dead_band_hinge_is_not_linear_in_the_kl():
    safe = active_safe_decision()
    assert kl_loss_is_linear(CoefDecision(coef=0.3), TrainConfig())
    assert not kl_loss_is_linear(safe, TrainConfig(penalty_mode="hinge"))
    assert kl_loss_is_linear(safe, TrainConfig(penalty_mode="coef"))
    assert kl_loss_is_linear(safe, TrainConfig(penalty_mode="detached"))
