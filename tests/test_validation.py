"""The one place a value becomes a number (issue 10, item 9): only real numbers are numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from safecontrol import EMA, PID, CoefDecision, FixedKL, PhaseDetector, SafeController
from safecontrol._validation import as_float, boolean, integer, limits, one_of, positive_int


class FakeTensor:
    """Enough of a torch tensor for the core, which never imports torch."""

    def __init__(self, value: float, dtype: str = "torch.float32", ndim: int = 0) -> None:
        self.value, self.dtype, self.ndim = value, dtype, ndim
        self.shape = (1,) * ndim

    def detach(self) -> FakeTensor:
        return self

    def __float__(self) -> float:
        return float(self.value)

    def __index__(self) -> int:
        return int(self.value)


NOT_NUMBERS = [
    "0.5",
    b"0.5",
    True,
    np.bool_(True),
    np.array(True),
    np.array([0.5]),
    np.array([[1.0]]),
    np.complex128(1j),
    1j,
    None,
    [0.5],
    (0.5,),
    {"x": 0.5},
    FakeTensor(1.0, "torch.bool"),
    FakeTensor(0.5, ndim=1),
    FakeTensor(1.0, "torch.complex64"),
    np.str_("0.5"),
    object(),
]


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=lambda v: type(v).__name__)
def test_as_float_rejects_everything_but_real_scalars_naming_the_argument(value):
    with pytest.raises(ValueError, match=r"^the_argument "):
        as_float("the_argument", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, 0.5),
        (3, 3.0),
        (np.float32(0.5), 0.5),
        (np.float64(0.25), 0.25),
        (np.int64(7), 7.0),
        (np.uint8(7), 7.0),
        (np.array(2.5), 2.5),
        (np.array(4, dtype=np.int16), 4.0),
        (FakeTensor(0.5), 0.5),
        (FakeTensor(3, "torch.int64"), 3.0),
        (math.nan, math.nan),
    ],
)
def test_as_float_accepts_real_scalars_as_python_floats(value, expected):
    x = as_float("x", value)
    assert type(x) is float
    assert x == expected or (math.isnan(x) and math.isnan(expected))


def test_as_float_names_the_argument_for_an_int_too_large_for_a_float():
    with pytest.raises(ValueError, match="big"):
        as_float("big", 10**400)


def test_real_torch_tensors_bool_and_shape_one_are_rejected():
    torch = pytest.importorskip("torch")
    assert as_float("x", torch.tensor(0.5, requires_grad=True)) == 0.5
    for bad in (torch.tensor(True), torch.tensor([0.5]), torch.tensor([[2.0]])):
        with pytest.raises(ValueError, match="x"):
            as_float("x", bad)
    with pytest.raises(ValueError, match="n"):
        integer("n", torch.tensor([5]))


@pytest.mark.parametrize("value", [True, np.bool_(True), 2.0, "2", np.array([2]), None, 2.5])
def test_integers_are_integers(value):
    with pytest.raises(ValueError, match="n_steps"):
        positive_int("n_steps", value)


def test_integer_converts_numpy_integers_to_python_ints():
    assert type(positive_int("n", np.int64(5))) is int


@pytest.mark.parametrize("value", ["false", "true", 0, 1, np.bool_(False), None])
def test_bools_are_bools(value):
    with pytest.raises(ValueError, match="flag"):
        boolean("flag", value)


@pytest.mark.parametrize("value", [b"raise", ["raise"], None, 1])
def test_options_are_strings(value):
    with pytest.raises(ValueError, match="mode"):
        one_of("mode", value, ("raise", "skip"))


def test_infinite_limits_on_their_own_side_mean_unbounded():
    assert limits("l", (-math.inf, math.inf)) == (None, None)
    for bad in ((math.inf, None), (None, -math.inf), "ab", 3.0):
        with pytest.raises(ValueError, match="l"):
            limits("l", bad)


@pytest.mark.parametrize(
    "call",
    [
        lambda v: FixedKL(0.1).update(kl=v),
        lambda v: FixedKL(v),
        lambda v: EMA(0.9).update(v),
        lambda v: PID(1.0, 0.0, 0.0).update(v),
        lambda v: PhaseDetector().update(v),
        lambda v: SafeController().update(kl=v, entropy=1.0, reward=0.0),
    ],
)
@pytest.mark.parametrize("value", ["0.5", b"0.5", np.bool_(True), np.array([0.5])])
def test_controllers_reject_lax_numbers(call, value):
    with pytest.raises(ValueError, match="must be a real number"):
        call(value)


@pytest.mark.parametrize("value", ["0.5", b"0.5", None, np.bool_(True), np.array([0.5]), math.nan])
def test_coef_decision_loss_at_and_slope_at_validate_kl(value):
    decision = CoefDecision(coef=0.1)
    with pytest.raises(ValueError, match="kl"):
        decision.loss_at(value)
    with pytest.raises(ValueError, match="kl"):
        decision.slope_at(value)
    assert decision.loss_at(np.float32(2.0)) == 0.1 * 2.0
