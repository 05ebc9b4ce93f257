"""numpy ↔ torch parity: the tensor twins compute what the core computes, and every controller
takes Python floats, numpy scalars and 0-d tensors alike."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import safecontrol  # noqa: E402
from safecontrol.torch import kl_per_token, soft_min  # noqa: E402

finite = st.floats(-30.0, 30.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=60)
@given(
    values=hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=finite
    ),
    alpha=st.floats(0.01, 10.0),
)
def test_soft_min_agrees_with_numpy(values, alpha):
    ours = soft_min(torch.from_numpy(values), alpha, dim=-1).numpy()
    np.testing.assert_allclose(
        ours, safecontrol.soft_min(values, alpha, dim=-1), rtol=1e-12, atol=1e-9
    )


@settings(max_examples=60)
@given(
    pair=hnp.arrays(
        np.float64, st.tuples(st.just(2), st.integers(1, 20)), elements=st.floats(-20.0, 0.0)
    ),
    kind=st.sampled_from(["k1", "k2", "k3"]),
)
def test_kl_estimators_agree_with_numpy(pair, kind):
    logp, logp_ref = pair
    ours = kl_per_token(torch.from_numpy(logp), torch.from_numpy(logp_ref), kind).numpy()
    theirs = safecontrol.kl_per_token(logp, logp_ref, kind)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@settings(max_examples=200)
@given(
    values=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=5),
        elements=st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False),
    ),
    alpha=st.one_of(
        st.floats(min_value=0.0, max_value=1.7976931348623157e308, exclude_min=True),
        st.floats(-323.0, 308.0).map(lambda e: 10.0**e).filter(lambda a: 0.0 < a < np.inf),
        st.sampled_from([5e-324, 1e-320, 1e-39, 1e-30, 1e16, 1e39, 1e300]),
    ),
)
def test_soft_min_agrees_with_numpy_for_every_alpha_and_large_values(values, alpha):
    """Every α > 0 (issue 25, item 13: α = 1e-320 gave NaN where torch cannot divide by it)."""
    ours = soft_min(torch.from_numpy(values), alpha, dim=-1).numpy()
    theirs = safecontrol.soft_min(values, alpha, dim=-1)
    assert np.isfinite(ours).all()
    # Both round d = V − min and the log-mean-exp of d/α; below the smallest normal α torch
    # returns the min, within α·log N < N·tiny of the value.
    scale = np.abs(values).max() + np.ptp(values, axis=-1).max()
    tolerance = 64 * np.finfo(np.float64).eps * scale + values.shape[-1] * np.finfo(float).tiny
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tolerance)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_soft_min_is_the_min_for_tiny_alpha_and_the_mean_for_huge_alpha_in_every_dtype(dtype):
    """Issue 25, item 13: float32 α = 1e-320 gave NaN (α rounds to 0 there); α = 1e16 gave the
    min, and an α beyond float32's range (1e39) NaN."""
    values = torch.tensor([[1.0, 2.0], [3.0, 5.0]], dtype=dtype, requires_grad=True)
    for alpha, expected, weights in (
        (1e-320, [1.0, 3.0], [[1.0, 0.0], [1.0, 0.0]]),
        (5e-324, [1.0, 3.0], [[1.0, 0.0], [1.0, 0.0]]),
        (1e16, [1.5, 4.0], [[0.5, 0.5], [0.5, 0.5]]),
        (1e39, [1.5, 4.0], [[0.5, 0.5], [0.5, 0.5]]),
        (1e300, [1.5, 4.0], [[0.5, 0.5], [0.5, 0.5]]),
    ):
        values.grad = None
        out = soft_min(values, alpha)
        out.sum().backward()
        assert out.dtype == dtype and out.tolist() == expected, alpha
        torch.testing.assert_close(values.grad, torch.tensor(weights, dtype=dtype))


@pytest.mark.filterwarnings("ignore:overflow encountered in divide:RuntimeWarning")
def test_soft_min_in_float32_with_alpha_1e_39_is_the_min_like_numpy():
    values = np.array([[1.0, 2.0], [3e38, -3e38]], dtype=np.float32)
    ours = soft_min(torch.from_numpy(values), 1e-39).numpy()
    np.testing.assert_array_equal(ours, safecontrol.soft_min(values, 1e-39).astype(np.float32))
    np.testing.assert_array_equal(ours, np.array([1.0, -3e38], dtype=np.float32))


def test_soft_min_agrees_with_numpy_in_float32_within_float32_precision():
    values = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    ours = soft_min(torch.from_numpy(values), 0.3).numpy()
    np.testing.assert_allclose(ours, safecontrol.soft_min(values, 0.3), rtol=1e-6, atol=1e-6)


CONTROLLERS = {
    "SafeController": lambda: safecontrol.SafeController(),
    "FixedKL": lambda: safecontrol.FixedKL(coef=0.1),
    "AdaptiveKL": lambda: safecontrol.AdaptiveKL(),
    "PPOAdaptiveKL": lambda: safecontrol.PPOAdaptiveKL(),
    "PIDLagrangianKL": lambda: safecontrol.PIDLagrangianKL(),
    "EntropyTargetController": lambda: safecontrol.EntropyTargetController(target=1.0),
}

STREAM = [(0.05 * i, 2.5 - 0.1 * i, 0.02 * i - 0.01 * (i % 3)) for i in range(12)]


def _as_python(x):
    return float(x)


def _as_numpy(x):
    return np.float64(x)


def _as_tensor(x):
    return torch.tensor(x, dtype=torch.float64)


def _as_tensor_with_grad(x):
    return torch.tensor(x, dtype=torch.float64, requires_grad=True) * 1.0


def _run(name, convert):
    controller = CONTROLLERS[name]()
    decisions = []
    for kl, entropy, reward in STREAM:
        extra = {"n_steps": 32, "tokens_per_sequence": 1.0} if name == "AdaptiveKL" else {}
        d = controller.update(
            kl=convert(kl), entropy=convert(entropy), reward=convert(reward), **extra
        )
        decisions.append(d.as_dict())
    return decisions, controller.state_dict()


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True:UserWarning")
def test_every_controller_takes_floats_numpy_scalars_and_0d_tensors_identically(name):
    reference = _run(name, _as_python)
    for convert in (_as_numpy, _as_tensor, _as_tensor_with_grad):
        assert _run(name, convert) == reference, convert.__name__


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_float32_inputs_give_the_same_decisions_as_their_float64_values(name):
    reference = _run(name, lambda x: np.float64(np.float32(x)))
    assert _run(name, lambda x: np.float32(x)) == reference
    assert _run(name, lambda x: torch.tensor(x, dtype=torch.float32)) == reference


META_ARGS = {"kl": 0.1, "entropy": 1.0, "reward": 0.2, "n_steps": 8, "tokens_per_sequence": 1.0}


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
@pytest.mark.parametrize("arg", sorted(META_ARGS))
def test_a_meta_tensor_argument_is_refused_naming_it_and_changes_nothing(name, arg):
    """A meta tensor has a shape and a dtype but no value: ``float()`` of one raised torch's
    RuntimeError from ``.item()``, naming no argument (issue 25, item 14)."""
    controller = CONTROLLERS[name]()
    before = controller.state_dict()
    dtype = torch.int64 if arg == "n_steps" else torch.float64
    meta = torch.tensor(META_ARGS[arg], dtype=dtype, device="meta")
    with pytest.raises(ValueError, match=rf"{arg} is a tensor on the meta device.*no values"):
        controller.update(**{**META_ARGS, arg: meta})
    assert controller.state_dict() == before
