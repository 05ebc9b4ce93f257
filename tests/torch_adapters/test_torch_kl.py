"""safecontrol.torch.kl: per-token KL estimators and the masked mean."""

import math

import pytest

torch = pytest.importorskip("torch")

from safecontrol.torch import kl_per_token, masked_mean  # noqa: E402


def _logps(shape=(3, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    logp = torch.randn(shape, generator=g, dtype=torch.float64) - 2.0
    logp_ref = logp + 0.5 * torch.randn(shape, generator=g, dtype=torch.float64)
    return logp, logp_ref


def test_kl_estimators_match_their_formulas():
    logp, logp_ref = _logps()
    r = logp_ref - logp
    torch.testing.assert_close(kl_per_token(logp, logp_ref), -r)
    torch.testing.assert_close(kl_per_token(logp, logp_ref, "k2"), r * r / 2)
    torch.testing.assert_close(kl_per_token(logp, logp_ref, "k3"), torch.exp(r) - 1 - r)


def test_k2_and_k3_are_non_negative_and_zero_when_policies_agree():
    logp, logp_ref = _logps(shape=(1000,))
    for kind in ("k2", "k3"):
        assert (kl_per_token(logp, logp_ref, kind) >= 0).all()
        assert (kl_per_token(logp, logp, kind) == 0).all()
    tiny = torch.full((100,), -3.0, dtype=torch.float32)
    assert (kl_per_token(tiny, tiny + 1e-7 * torch.arange(100), "k3") >= 0).all()


def test_k1_and_k3_are_unbiased_for_the_true_kl():
    g = torch.Generator().manual_seed(1)
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    q = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    true_kl = (p * (p / q).log()).sum()
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=g)
    logp, logq = p.log()[tokens], q.log()[tokens]
    for kind in ("k1", "k3"):
        assert abs(kl_per_token(logp, logq, kind).mean() - true_kl) < 0.01


def test_kl_per_token_is_differentiable():
    logp, logp_ref = _logps()
    logp.requires_grad_(True)
    kl_per_token(logp, logp_ref, "k3").sum().backward()
    r = logp_ref - logp.detach()
    torch.testing.assert_close(logp.grad, 1 - torch.exp(r))


def test_kl_per_token_rejects_bad_kind_and_shapes():
    logp, logp_ref = _logps()
    with pytest.raises(ValueError, match="kind"):
        kl_per_token(logp, logp_ref, "k4")
    with pytest.raises(ValueError, match="logp_ref"):
        kl_per_token(logp, logp_ref[:, :2])
    with pytest.raises(ValueError, match="logp"):
        kl_per_token([0.0], logp_ref)


def test_masked_mean_weighs_tokens_not_rows():
    x = torch.tensor([[1.0, 2.0, 3.0], [10.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert masked_mean(x, mask).item() == pytest.approx(4.0)
    torch.testing.assert_close(masked_mean(x, mask, dim=-1), torch.tensor([2.0, 10.0]))
    torch.testing.assert_close(masked_mean(x, mask.bool()), masked_mean(x, mask))
    assert masked_mean(x).item() == pytest.approx(16.0 / 6)


def test_masked_mean_ignores_non_finite_padding_and_gives_it_no_gradient():
    x = torch.tensor([1.0, 3.0, -math.inf, math.nan], requires_grad=True)
    mask = torch.tensor([True, True, False, False])
    out = masked_mean(x, mask)
    out.backward()
    assert out.item() == 2.0
    torch.testing.assert_close(x.grad, torch.tensor([0.5, 0.5, 0.0, 0.0]))


def test_masked_mean_of_nothing_is_zero_with_zero_gradient():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    mask = torch.tensor([[0, 0], [1, 0]])
    out = masked_mean(x, mask, dim=1)
    torch.testing.assert_close(out, torch.tensor([0.0, 3.0]))
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[0.0, 0.0], [1.0, 0.0]]))


def test_masked_mean_uses_fractional_weights():
    x = torch.tensor([1.0, 5.0])
    assert masked_mean(x, torch.tensor([0.75, 0.25])).item() == pytest.approx(2.0)


def test_masked_mean_rejects_a_mask_of_another_shape():
    with pytest.raises(ValueError, match="mask"):
        masked_mean(torch.zeros(2, 3), torch.ones(3, 2))


def _padded_logps(dtype=torch.float64):
    """Two rows of log-probs whose padding holds −inf in every pattern padding produces."""
    logp, logp_ref = _logps(shape=(2, 5), seed=3)
    logp, logp_ref = logp.to(dtype), logp_ref.to(dtype)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
    logp[0, 3:], logp_ref[0, 3:] = -math.inf, -math.inf  # both −inf: r is NaN
    logp[1, 2:4] = -math.inf  # only the policy's: r = +inf
    logp_ref[1, 4] = -math.inf  # only the reference's: r = −inf
    return logp, logp_ref, mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["k1", "k2", "k3"])
def test_masked_kl_over_minus_inf_padding_gives_a_finite_gradient_zero_at_padding(kind, dtype):
    logp, logp_ref, mask = _padded_logps(dtype)
    logp.requires_grad_(True)
    loss = masked_mean(kl_per_token(logp, logp_ref, kind), mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()
    assert (logp.grad[~mask] == 0).all()
    # The unmasked positions get exactly what they get when the padding holds ordinary values.
    clean, clean_ref, _ = (t.detach().clone() for t in _padded_logps(dtype))
    clean[~mask], clean_ref[~mask] = -1.0, -1.0
    clean.requires_grad_(True)
    clean_loss = masked_mean(kl_per_token(clean, clean_ref, kind), mask)
    clean_loss.backward()
    assert torch.equal(loss, clean_loss)
    assert torch.equal(logp.grad[mask], clean.grad[mask])


def test_kl_per_token_keeps_the_plain_formulas_values_and_gradients_bit_for_bit():
    logp, logp_ref, mask = _padded_logps()
    logp.requires_grad_(True)
    r = logp_ref - logp.detach()
    plain = {"k2": 0.5 * r.square(), "k3": (torch.expm1(r) - r).clamp_min(0.0)}
    weights = torch.randn(logp.shape, generator=torch.Generator().manual_seed(4), dtype=r.dtype)
    for kind, expected in plain.items():
        out = kl_per_token(logp, logp_ref, kind)
        exact = {"rtol": 0.0, "atol": 0.0, "equal_nan": True}  # padding keeps its inf / NaN
        torch.testing.assert_close(out.detach(), expected, **exact)
        with torch.no_grad():
            torch.testing.assert_close(kl_per_token(logp, logp_ref, kind), expected, **exact)
        logp.grad = None
        (torch.where(mask, out, 0.0) * weights).sum().backward()
        plain_logp = logp.detach().clone().requires_grad_(True)
        plain_r = logp_ref - plain_logp
        formula = 0.5 * plain_r.square() if kind == "k2" else torch.expm1(plain_r) - plain_r
        (torch.where(mask, formula, 0.0) * weights).sum().backward()
        assert torch.equal(logp.grad[mask], plain_logp.grad[mask])


def test_masked_mean_of_nothing_at_all_is_zero_not_nan():
    empty = torch.tensor([], requires_grad=True)
    out = masked_mean(empty)
    assert out.shape == () and out.item() == 0.0
    out.backward()
    assert empty.grad.shape == (0,)
    torch.testing.assert_close(masked_mean(torch.zeros(3, 0), dim=1), torch.zeros(3))
    torch.testing.assert_close(masked_mean(torch.zeros(3, 0), dim=(0, 1)), torch.tensor(0.0))
    assert masked_mean(torch.zeros(0, 3), dim=1).shape == (0,)
    assert masked_mean(torch.tensor([]), torch.tensor([], dtype=torch.bool)).item() == 0.0


def test_masked_mean_over_an_all_zero_mask_is_zero_with_zero_gradient():
    x = torch.tensor([1.0, -math.inf, math.nan], requires_grad=True)
    out = masked_mean(x, torch.zeros(3))
    out.backward()
    assert out.item() == 0.0 and (x.grad == 0).all()


def test_masked_mean_rejects_a_bad_dim_naming_it():
    x = torch.zeros(2, 3)
    for dim in (2, -3, (), (0, 5), 1.0, True, "1", (0, True)):
        with pytest.raises(ValueError, match="dim"):
            masked_mean(x, dim=dim)
        with pytest.raises(ValueError, match="dim"):
            masked_mean(x, torch.ones(2, 3), dim=dim)


def test_masked_mean_of_integers_is_their_mean_in_the_default_float_dtype():
    """Integer values raised torch's "mean(): could not infer output dtype"."""
    counts = torch.tensor([[1, 2], [4, 4]])
    assert masked_mean(counts).dtype == torch.get_default_dtype()
    assert masked_mean(counts).item() == 2.75
    torch.testing.assert_close(masked_mean(counts, dim=1), torch.tensor([1.5, 4.0]))
    mask = torch.tensor([[True, False], [True, True]])
    assert masked_mean(counts, mask).item() == 3.0
    assert masked_mean(counts, mask).dtype == torch.get_default_dtype()


def test_masked_mean_refuses_bool_values_naming_them():
    with pytest.raises(ValueError, match=r"x must hold numbers.*torch\.bool"):
        masked_mean(torch.tensor([True, False]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64])
def test_masked_mean_refuses_negative_weights_naming_the_mask_and_the_weight(dtype):
    """Weights [1, −1] summed to 0 and the mean was read as "empty" (0)."""
    x = torch.tensor([1.0, 2.0, 3.0])
    mask = torch.tensor([1, -1, 0], dtype=dtype)
    with pytest.raises(ValueError, match=r"mask must be bool or weights >= 0.*-1"):
        masked_mean(x, mask)
    with pytest.raises(ValueError, match="mask"):
        masked_mean(x, torch.tensor([0.5, 0.5, -1e-30]), dim=0)
