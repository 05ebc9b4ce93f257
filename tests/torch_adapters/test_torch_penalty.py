"""safecontrol.torch.penalty: a decision applied to the live KL carries gradient (SPEC §2.1)."""

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from safecontrol.decision import CoefDecision, SafeDecision  # noqa: E402
from safecontrol.torch import kl_penalty, kl_per_token, masked_mean  # noqa: E402


def _decision(threshold=0.3, gate=1.0, penalty_coef=0.1, coef=0.05):
    return SafeDecision(
        threshold=threshold,
        gate=gate,
        coef=coef,
        penalty=0.0,
        penalty_coef=penalty_coef,
        kl=0.0,
        kl_short=0.0,
        kl_long=0.0,
        kl_predicted=0.0,
        entropy=1.0,
        reward=0.0,
        reward_velocity=0.0,
        phase="warmup",
        phase_multiplier=1.5,
        active=False,
        pid=(0.0, 0.0, 0.0),
        max_preview_kl=0.5,
    )


def _kl(value, dtype=torch.float64):
    return torch.tensor(value, dtype=dtype, requires_grad=True)


def _grad(kl, decision, **kwargs):
    (g,) = torch.autograd.grad(kl_penalty(kl, decision, **kwargs), kl)
    return g


@pytest.mark.parametrize("value", [-0.2, 0.0, 0.1, 0.3])
def test_hinge_is_zero_with_zero_gradient_at_or_below_the_threshold(value):
    kl, decision = _kl(value), _decision(threshold=0.3, gate=2.0)
    assert kl_penalty(kl, decision).item() == 0.0
    assert _grad(kl, decision).item() == 0.0


@pytest.mark.parametrize("value", [-0.5, 0.0, 0.2, 0.31, 0.7, 3.0])
def test_hinge_equals_the_decisions_loss_and_slope(value):
    decision = _decision(threshold=0.3, gate=1.7, penalty_coef=0.1)
    kl = _kl(value)
    assert kl_penalty(kl, decision).item() == pytest.approx(decision.loss_at(value), rel=1e-12)
    assert _grad(kl, decision).item() == pytest.approx(decision.slope_at(value), rel=1e-12)


def test_gradient_is_proportional_to_the_gate():
    kl = _kl(0.8)
    grads = [_grad(kl, _decision(gate=g)).item() for g in (0.5, 1.0, 2.0, 4.0)]
    assert grads[0] > 0
    for g, grad in zip((0.5, 1.0, 2.0, 4.0), grads, strict=True):
        assert grad == pytest.approx(grads[1] * g, rel=1e-12)


def test_hinge_gradient_matches_finite_differences():
    decision = _decision(threshold=0.25, gate=1.3)
    h = 1e-6
    for value in (0.1, 0.26, 0.5, 2.0):
        numeric = (decision.loss_at(value + h) - decision.loss_at(value - h)) / (2 * h)
        assert _grad(_kl(value), decision).item() == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_penalty_passes_gradcheck_in_float64_for_per_token_kl():
    g = torch.Generator().manual_seed(0)
    kl_tok = (0.5 + torch.rand(3, 6, generator=g, dtype=torch.float64)).requires_grad_(True)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]])
    decision = _decision(threshold=0.6, gate=1.5)
    for mode in ("hinge", "coef"):
        assert torch.autograd.gradcheck(
            lambda k, mode=mode: kl_penalty(k, decision, mask, mode=mode), (kl_tok,)
        )
    assert torch.autograd.gradcheck(lambda k: kl_penalty(k, CoefDecision(coef=0.2)), (kl_tok,))


def test_per_token_kl_is_reduced_with_the_mask_before_the_hinge():
    kl_tok = torch.tensor([[0.2, 0.4, 9.0], [0.6, 9.0, 9.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    decision = _decision(threshold=0.3, gate=2.0)
    expected = decision.loss_at(masked_mean(kl_tok, mask).item())
    assert kl_penalty(kl_tok, decision, mask).item() == pytest.approx(expected, rel=1e-12)
    unmasked = decision.loss_at(kl_tok.mean().item())
    assert kl_penalty(kl_tok, decision).item() == pytest.approx(unmasked, rel=1e-12)


def test_coef_mode_and_coef_decisions_apply_beta_times_kl():
    kl = _kl(0.2)
    assert kl_penalty(kl, _decision(coef=0.07), mode="coef").item() == pytest.approx(0.014)
    assert _grad(kl, _decision(coef=0.07), mode="coef").item() == pytest.approx(0.07)
    assert kl_penalty(kl, CoefDecision(coef=0.5)).item() == pytest.approx(0.1)
    assert kl_penalty(kl, CoefDecision(coef=0.5), mode="coef").item() == pytest.approx(0.1)
    assert _grad(kl, CoefDecision(coef=0.5)).item() == pytest.approx(0.5)


def test_penalty_keeps_the_kl_dtype():
    assert kl_penalty(_kl(0.9, torch.float32), _decision()).dtype == torch.float32
    assert kl_penalty(_kl(0.9, torch.float32), CoefDecision(coef=0.1)).dtype == torch.float32


def test_penalty_reaches_the_logits_and_changes_with_the_gate():
    """SPEC §2.1: d loss / d logits is nonzero when the penalty is active and scales with g."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 17, generator=g, dtype=torch.float64, requires_grad=True)
    ref_logits = torch.randn(2, 5, 17, generator=g, dtype=torch.float64)
    tokens = torch.randint(0, 17, (2, 5), generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])

    def grad_for(decision):
        logp = logits.log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)
        logp_ref = ref_logits.log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)
        kl_tok = kl_per_token(logp, logp_ref, "k3")
        (grad,) = torch.autograd.grad(kl_penalty(kl_tok, decision, mask), logits)
        return grad, masked_mean(kl_tok, mask).item()

    _, batch_kl = grad_for(_decision())
    active_low = grad_for(_decision(threshold=batch_kl / 2, gate=0.5))[0]
    active_high = grad_for(_decision(threshold=batch_kl / 2, gate=2.0))[0]
    inactive = grad_for(_decision(threshold=batch_kl * 2, gate=2.0))[0]
    assert active_low.abs().sum() > 0
    torch.testing.assert_close(active_high, 4.0 * active_low)
    assert (inactive == 0).all()
    assert (active_low[0, 4] == 0).all()  # the padded position gets no gradient


def test_penalty_of_a_real_controller_decision_matches_its_floats():
    safe = pytest.importorskip("safecontrol.safe")
    controller = safe.SafeController()
    for step in range(30):
        decision = controller.update(kl=0.9, entropy=1.0, reward=0.01 * step)
    assert decision.active
    kl = _kl(decision.kl_predicted)
    assert kl_penalty(kl, decision).item() == pytest.approx(decision.penalty, rel=1e-9)
    assert _grad(kl, decision).item() == pytest.approx(decision.coef, rel=1e-9)


def test_penalty_rejects_bad_arguments():
    kl = _kl(0.5)
    with pytest.raises(ValueError, match="mode"):
        kl_penalty(kl, _decision(), mode="linear")
    with pytest.raises(ValueError, match="hinge"):
        kl_penalty(kl, CoefDecision(coef=0.1), mode="hinge")
    with pytest.raises(ValueError, match="decision"):
        kl_penalty(kl, {"coef": 0.1})
    with pytest.raises(ValueError, match="mask"):
        kl_penalty(torch.ones(2, 3), _decision(), torch.ones(3, 2))
    with pytest.raises(ValueError, match="mask"):
        kl_penalty(kl, _decision(), torch.ones(()))
    with pytest.raises(ValueError, match="kl"):
        kl_penalty(0.5, _decision())
    with pytest.raises(ValueError, match=r"decision\.gate"):
        kl_penalty(kl, dataclasses.replace(_decision(), gate=float("nan")))


# ---------------------------------------------------------------------- decisions by protocol
class OwnCoefDecision:
    """A third-party decision: the members of safecontrol.contract.Decision, no base class."""

    def __init__(self, coef: float) -> None:
        self.coef, self.step, self.skipped, self.max_preview_kl = coef, 3, 0, float("inf")

    def loss_at(self, kl: float) -> float:
        return self.coef * kl

    def slope_at(self, kl: float) -> float:
        return self.coef

    def step_scale(self, preview_kl: float) -> float:
        return 1.0

    def as_dict(self) -> dict:
        return {"coef": self.coef}


class OwnDeadBandDecision(OwnCoefDecision):
    """A third-party dead-band decision: also threshold, gate and penalty_coef."""

    def __init__(self, coef: float, threshold: float, gate: float, penalty_coef: float) -> None:
        super().__init__(coef)
        self.threshold, self.gate, self.penalty_coef = threshold, gate, penalty_coef


def test_a_third_party_decision_is_applied_as_coef_times_kl_bit_identically():
    g = torch.Generator().manual_seed(1)
    kl_tok = torch.rand(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    for mode in (None, "coef"):
        ours = kl_penalty(kl_tok, CoefDecision(coef=0.37), mask, mode=mode)
        theirs = kl_penalty(kl_tok, OwnCoefDecision(0.37), mask, mode=mode)
        assert theirs.item() == ours.item()
        assert torch.equal(*(torch.autograd.grad(p, kl_tok)[0] for p in (ours, theirs)))


def test_a_third_party_dead_band_decision_gets_the_hinge_bit_identically():
    g = torch.Generator().manual_seed(2)
    kl_tok = (0.2 + torch.rand(3, 5, generator=g, dtype=torch.float64)).requires_grad_(True)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    ours = _decision(threshold=0.4, gate=1.3, penalty_coef=0.7, coef=0.11)
    theirs = OwnDeadBandDecision(coef=0.11, threshold=0.4, gate=1.3, penalty_coef=0.7)
    for mode in (None, "hinge", "coef"):
        a = kl_penalty(kl_tok, ours, mask, mode=mode)
        b = kl_penalty(kl_tok, theirs, mask, mode=mode)
        assert a.item() == b.item() and a.item() > 0
        assert torch.equal(*(torch.autograd.grad(p, kl_tok)[0] for p in (a, b)))


def test_the_hinge_is_the_documented_formula_bit_for_bit():
    kl_tok = torch.tensor([[0.2, 0.9, 0.5], [0.7, 0.1, 0.3]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    d = _decision(threshold=0.3, gate=1.7, penalty_coef=0.1)
    batch_kl = masked_mean(kl_tok, mask)
    expected = (0.1 * 1.7) * torch.relu(batch_kl - 0.3).square()
    assert kl_penalty(kl_tok, d, mask).item() == expected.item()
    assert kl_penalty(kl_tok, d, mask, mode="coef").item() == (0.05 * batch_kl).item()
    assert kl_penalty(kl_tok, CoefDecision(coef=0.2), mask).item() == (0.2 * batch_kl).item()


def test_hinge_mode_on_a_decision_without_a_dead_band_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"hinge.*OwnCoefDecision has none"):
        kl_penalty(_kl(0.5), OwnCoefDecision(0.1), mode="hinge")


def test_an_object_missing_part_of_the_decision_contract_is_refused_naming_its_type():
    class CoefOnly:
        coef = 0.1

    with pytest.raises(ValueError, match=r"safecontrol\.contract\.Decision.*CoefOnly"):
        kl_penalty(_kl(0.5), CoefOnly())
