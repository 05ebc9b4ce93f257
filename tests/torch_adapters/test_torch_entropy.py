"""safecontrol.torch.entropy: exact chunked entropy, its gradient and its memory."""

import math

import pytest

torch = pytest.importorskip("torch")

from safecontrol.torch import default_chunk_size, entropy_from_logits, masked_mean  # noqa: E402


def _logits(shape, dtype=torch.float32, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)


def _categorical(logits):
    return torch.distributions.Categorical(logits=logits).entropy()


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64, None])
def test_entropy_equals_categorical_entropy_within_1e_5_in_float32(chunk_size):
    logits = _logits((4, 9, 1000))
    out = entropy_from_logits(logits, chunk_size=chunk_size)
    assert out.shape == (4, 9) and out.dtype == torch.float32
    torch.testing.assert_close(out, _categorical(logits), atol=1e-5, rtol=0)


def test_entropy_at_a_large_vocab_is_within_1e_5_of_the_float64_value():
    logits = _logits((2, 3, 50_000))
    truth = _categorical(logits.double())
    torch.testing.assert_close(entropy_from_logits(logits).double(), truth, atol=1e-5, rtol=0)


def test_entropy_of_uniform_and_one_hot_logits():
    uniform = torch.zeros(2, 100)
    torch.testing.assert_close(entropy_from_logits(uniform), torch.full((2,), math.log(100)))
    peaked = torch.tensor([[0.0, 1e4, 0.0], [-math.inf, 0.0, -math.inf]])
    torch.testing.assert_close(entropy_from_logits(peaked), torch.zeros(2))


def test_entropy_ignores_minus_inf_logits_like_categorical():
    logits = _logits((3, 20))
    logits[0, :5] = -math.inf
    logits[2, ::2] = -math.inf
    out = entropy_from_logits(logits, chunk_size=2)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, _categorical(logits), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_logits_accumulate_in_float32_and_return_float32(dtype):
    logits = _logits((3, 5, 4000), dtype=dtype)
    out = entropy_from_logits(logits, chunk_size=4)
    assert out.dtype == torch.float32
    truth = _categorical(logits.double()).float()
    torch.testing.assert_close(out, truth, atol=1e-5, rtol=0)


def test_float64_logits_stay_float64():
    assert entropy_from_logits(_logits((2, 10), dtype=torch.float64)).dtype == torch.float64


def test_masked_positions_are_zero():
    logits = _logits((2, 4, 30))
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    out = entropy_from_logits(logits, mask=mask)
    assert (out[mask == 0] == 0).all()
    torch.testing.assert_close(out[mask == 1], _categorical(logits)[mask == 1])


def test_any_leading_shape_and_non_contiguous_views():
    logits = _logits((2, 6, 40))
    shifted = logits[:, :-1]  # the usual next-token slice: leading axes do not flatten to a view
    torch.testing.assert_close(entropy_from_logits(shifted, chunk_size=4), _categorical(shifted))
    transposed = logits.transpose(0, 1)
    torch.testing.assert_close(
        entropy_from_logits(transposed, chunk_size=5), _categorical(transposed)
    )
    torch.testing.assert_close(entropy_from_logits(logits[0, 0]), _categorical(logits[0, 0]))
    assert entropy_from_logits(torch.zeros(0, 3, 10)).shape == (0, 3)


def test_gradient_passes_gradcheck_in_float64():
    logits = _logits((2, 5, 11), dtype=torch.float64).requires_grad_(True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert torch.autograd.gradcheck(lambda z: entropy_from_logits(z, chunk_size=3), (logits,))
    assert torch.autograd.gradcheck(
        lambda z: entropy_from_logits(z[:, 1:], mask=mask[:, 1:], chunk_size=2), (logits,)
    )


def test_gradient_matches_autograd_through_categorical():
    logits = _logits((3, 4, 500)).requires_grad_(True)
    weights = torch.randn(3, 4)
    (entropy_from_logits(logits, chunk_size=5) * weights).sum().backward()
    ours = logits.grad.clone()
    logits.grad = None
    (_categorical(logits) * weights).sum().backward()
    torch.testing.assert_close(ours, logits.grad, atol=1e-6, rtol=1e-4)


def test_half_logits_get_a_half_gradient():
    logits = _logits((2, 3, 64), dtype=torch.bfloat16).requires_grad_(True)
    entropy_from_logits(logits).sum().backward()
    assert logits.grad.dtype == torch.bfloat16 and torch.isfinite(logits.grad).all()


def test_extra_memory_is_two_chunks_not_two_copies_of_the_logits():
    dispatch = pytest.importorskip("torch.utils._python_dispatch")
    logits = _logits((64, 2000)).requires_grad_(True)
    chunk = 4
    storages = {}  # data pointer -> bytes, for every tensor an aten op returns

    class Spy(dispatch.TorchDispatchMode):  # sees the backward pass too
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor):
                    storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return out

    with Spy():
        entropy_from_logits(logits, chunk_size=chunk).sum().backward()
    storages.pop(logits.untyped_storage().data_ptr())  # views of the input itself
    assert storages.pop(logits.grad.untyped_storage().data_ptr()) == logits.numel() * 4
    assert max(storages.values()) <= chunk * 2000 * 4, max(storages.values())


def test_default_chunk_size_holds_about_2_23_elements_on_cpu():
    assert default_chunk_size(32_000) == 2**23 // 32_000
    assert default_chunk_size(152_064) == 55
    assert default_chunk_size(10**8) == 1
    assert default_chunk_size(32_000, "cuda") == 2**25 // 32_000


def test_entropy_rejects_bad_arguments():
    logits = _logits((2, 5))
    with pytest.raises(ValueError, match="chunk_size"):
        entropy_from_logits(logits, chunk_size=0)
    with pytest.raises(ValueError, match="mask"):
        entropy_from_logits(logits, mask=torch.ones(5))
    with pytest.raises(ValueError, match="logits"):
        entropy_from_logits(torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="logits"):
        entropy_from_logits(torch.ones(2, 0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("chunk_size", [1, 3, None])
def test_masked_rows_of_minus_inf_logits_get_exactly_zero_gradient(dtype, chunk_size):
    logits = _logits((3, 4, 20), dtype=dtype)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1]], dtype=torch.bool)
    padded = logits.clone()
    padded[~mask] = -math.inf  # padding rows with no finite logit: their entropy is undefined
    padded[0, 2, 5] = math.nan  # and a padding row holding garbage
    padded.requires_grad_(True)
    weights = torch.randn(3, 4, generator=torch.Generator().manual_seed(5))
    out = entropy_from_logits(padded, mask, chunk_size=chunk_size)
    (out * weights).sum().backward()
    assert torch.isfinite(padded.grad).all()
    assert (padded.grad[~mask] == 0).all()
    # Unmasked rows: the same value and gradient as with ordinary padding, bit for bit.
    clean = logits.clone().requires_grad_(True)
    clean_out = entropy_from_logits(clean, mask, chunk_size=chunk_size)
    (clean_out * weights).sum().backward()
    assert torch.equal(out, clean_out)
    assert torch.equal(padded.grad[mask], clean.grad[mask])


def test_masked_minus_inf_rows_give_a_finite_gradient_through_masked_mean():
    logits = torch.tensor([[1.0, 2.0, 0.5], [-math.inf] * 3], requires_grad=True)
    mask = torch.tensor([True, False])
    masked_mean(entropy_from_logits(logits, mask), mask).backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad[1] == 0).all()
