"""Hypothesis strategies for property-testing KL controllers (yours or ours).

Importing this module needs ``hypothesis`` (``pip install safecontrol[dev]``);
``safecontrol.testing`` itself does not import it. Ranges are those a controller meets in RLHF:
per-token KL of a few nats at most (k1 may dip slightly below zero: a batch mean of k1 is noisy),
entropies from 0 to about log(vocabulary) nats, rewards of order one. Every bound is a parameter.

A property test of your own controller, for example "the coefficient is never negative and the
controller survives a checkpoint round trip"::

    from hypothesis import given
    from safecontrol.testing import strategies as sst

    @given(sst.measurement_streams(max_size=100))
    def test_my_controller_coefficient_is_never_negative(stream):
        controller = MyController()
        for m in stream:
            assert controller.update(**m).slope_at(m["kl"]) >= 0.0

``measurement_streams`` draws independent measurements; ``drifting_streams`` draws bounded random
walks, closer to a training run's statistics and better at reaching a controller's saturation.
``hostile_values`` draws what a careless caller or a corrupt file passes instead of a number.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ..safe_config import SafeConfig
from .config import PlantConfig

KL_ESTIMATORS = ("k1", "k2", "k3")
MAX_ENTROPY = math.log(256_000)
"""log of a large LLM vocabulary (≈ 12.45 nats): the largest per-token entropy we draw."""


def _float(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def kl_values(
    estimator: str = "k1", max_value: float = 10.0, min_k1: float = -0.1
) -> st.SearchStrategy[float]:
    """Per-token KL measurements in nats: k1 in [min_k1, max_value], k2/k3 in [0, max_value]."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")
    return _float(min_k1 if estimator == "k1" else 0.0, max_value)


def entropies(max_value: float = MAX_ENTROPY) -> st.SearchStrategy[float]:
    """Mean per-token policy entropy in nats, in [0, max_value]."""
    return _float(0.0, max_value)


def rewards(low: float = -1.0, high: float = 1.0) -> st.SearchStrategy[float]:
    """Batch-mean rewards in [low, high] (VADER's compound score lies in [-1, 1])."""
    return _float(low, high)


def nonfinite() -> st.SearchStrategy[float]:
    """NaN, +inf or -inf: what a controller must reject (or skip) and never absorb."""
    return st.sampled_from([math.nan, math.inf, -math.inf])


def measurements(
    estimator: str = "k1",
    max_kl: float = 10.0,
    max_entropy: float = MAX_ENTROPY,
    reward_range: tuple[float, float] = (-1.0, 1.0),
) -> st.SearchStrategy[dict[str, float]]:
    """One batch's ``{"kl", "entropy", "reward"}``, ready for ``controller.update(**m)``."""
    return st.fixed_dictionaries(
        {
            "kl": kl_values(estimator, max_kl),
            "entropy": entropies(max_entropy),
            "reward": rewards(*reward_range),
        }
    )


def measurement_streams(
    min_size: int = 1,
    max_size: int = 60,
    estimator: str = "k1",
    max_kl: float = 10.0,
    max_entropy: float = MAX_ENTROPY,
    reward_range: tuple[float, float] = (-1.0, 1.0),
) -> st.SearchStrategy[list[dict[str, float]]]:
    """Lists of independent ``measurements``, one per rollout batch."""
    one = measurements(estimator, max_kl, max_entropy, reward_range)
    return st.lists(one, min_size=min_size, max_size=max_size)


@st.composite
def _walk(draw: Any, low: float, high: float, max_step: float, size: int) -> list[float]:
    value = draw(_float(low, high))
    out = [value]
    for _ in range(size - 1):
        value = min(high, max(low, value + draw(_float(-max_step, max_step))))
        out.append(value)
    return out


@st.composite
def drifting_streams(
    draw: Any,
    min_size: int = 2,
    max_size: int = 60,
    estimator: str = "k1",
    max_kl: float = 5.0,
    max_entropy: float = 6.0,
    reward_range: tuple[float, float] = (-1.0, 1.0),
    relative_step: float = 0.1,
) -> list[dict[str, float]]:
    """Bounded random walks of kl, entropy and reward: each moves by at most ``relative_step``
    of its range per batch, like a training run's statistics (trends, plateaus, saturation)."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")
    size = draw(st.integers(min_size, max_size))
    kl_low = -0.1 if estimator == "k1" else 0.0
    low, high = reward_range
    kl = draw(_walk(kl_low, max_kl, relative_step * (max_kl - kl_low), size))
    entropy = draw(_walk(0.0, max_entropy, relative_step * max_entropy, size))
    reward = draw(_walk(low, high, relative_step * (high - low), size))
    return [
        {"kl": k, "entropy": h, "reward": r} for k, h, r in zip(kl, entropy, reward, strict=True)
    ]


def gains(max_value: float = 10.0) -> st.SearchStrategy[float]:
    """One non-negative PID gain."""
    return _float(0.0, max_value)


def pid_gains(max_value: float = 10.0) -> st.SearchStrategy[tuple[float, float, float]]:
    """(kp, ki, kd), each in [0, max_value]."""
    return st.tuples(gains(max_value), gains(max_value), gains(max_value))


def decays() -> st.SearchStrategy[float]:
    """EMA decays strictly inside (0, 1), kept away from the ends by 1e-3."""
    return _float(1e-3, 1.0 - 1e-3)


def dts(low: float = 0.01, high: float = 10.0) -> st.SearchStrategy[float]:
    """Positive sample times."""
    return _float(low, high)


@st.composite
def limit_pairs(
    draw: Any, low: float = -100.0, high: float = 100.0, allow_none: bool = True
) -> tuple[float | None, float | None]:
    """(lower, upper) output limits with lower ≤ upper; with ``allow_none`` either may be None
    (unbounded on that side)."""
    side = _float(low, high)
    if allow_none:
        side = st.one_of(st.none(), side)
    a, b = draw(side), draw(side)
    if a is not None and b is not None and a > b:
        a, b = b, a
    return a, b


@st.composite
def safe_configs(draw: Any, /, **fixed: Any) -> SafeConfig:
    """Valid ``SafeConfig``s around the published defaults; keyword arguments pin fields.

    ``kl_estimator`` is drawn too: feed the controller KL values of ``kl_values(config.
    kl_estimator)``, or pin ``kl_estimator="k1"`` (negative k1 is then accepted as noise).
    """
    short = draw(_float(0.5, 0.95))
    lower = draw(_float(0.0, 0.5))
    values: dict[str, Any] = {
        "kl_estimator": draw(st.sampled_from(KL_ESTIMATORS)),
        "kl_short_decay": short,
        "kl_long_decay": draw(_float(short + 0.01, 0.999)),
        "prediction_horizon": draw(_float(0.0, 10.0)),
        "penalty_coef": draw(_float(0.0, 1.0)),
        "use_gate": draw(st.booleans()),
        "entropy_floor": draw(_float(0.1, 5.0)),
        "gate_minimum": draw(_float(0.0, 2.0)),
        "gate_eps": draw(_float(0.01, 1.0)),
        "use_pid": draw(st.booleans()),
        "threshold_base": draw(_float(0.0, 1.0)),
        "threshold_limits": (lower, draw(_float(lower, 2.0))),
        "kp": draw(gains(2.0)),
        "ki": draw(gains(0.5)),
        "kd": draw(gains(1.0)),
        "derivative_filter": draw(st.one_of(st.none(), _float(0.1, 20.0))),
        "anti_windup": draw(st.sampled_from(["clamp", "back_calculation", "none"])),
        "velocity_mode": draw(st.sampled_from(["published", "scale_invariant", "holt"])),
        "velocity_decay": draw(_float(0.5, 0.99)),
        "velocity_target": draw(_float(-0.01, 0.01)),
        "use_phase": draw(st.booleans()),
        "phase_window": draw(st.integers(1, 100)),
        "phase_mode": draw(st.sampled_from(["absolute", "scale_invariant"])),
        "max_preview_kl": draw(_float(0.01, 2.0)),
    }
    values.update(fixed)
    return SafeConfig(**values)


@st.composite
def plant_configs(draw: Any, /, max_steps: int = 40, **fixed: Any) -> PlantConfig:
    """Small, fast ``PlantConfig``s (a few contexts, up to ``max_steps`` batches) for closed-loop
    properties such as "KL stays finite under any controller"; keyword arguments pin fields."""
    values: dict[str, Any] = {
        "n_contexts": draw(st.integers(1, 16)),
        "vocab_size": draw(st.integers(2, 16)),
        "ref_logit_std": draw(_float(0.1, 2.0)),
        "spike_ref_logit": draw(_float(-3.0, 1.0)),
        "honest_reward": draw(_float(0.0, 1.0)),
        "spike_reward": draw(_float(-1.0, 2.0)),
        "crash_kl": draw(st.one_of(st.just(math.inf), _float(0.5, 4.0))),
        "lr": draw(_float(0.01, 20.0)),
        "batch_size": draw(st.integers(1, 64)),
        "steps": draw(st.integers(1, max_steps)),
        "epochs": draw(st.integers(1, 3)),
        "kl_measurement": draw(st.sampled_from(["k1", "exact"])),
        "seed": draw(st.integers(0, 2**16)),
    }
    values.update(fixed)
    return PlantConfig(**values)


HOSTILE_SPECIALS: tuple[Any, ...] = (
    math.nan,
    math.inf,
    -math.inf,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    1e300,
    -1e151,
    10**400,
    -(10**400),
    2**64,
    -1,
    -1.0,
    0,
    0.0,
    -0.0,
    5e-324,
    0.5,
    "0.5",
    "",
    "nan",
    b"0.5",
    None,
    True,
    False,
    np.bool_(True),
    np.bool_(False),
    np.array([0.5]),
    np.array(0.5),
    np.array([]),
    np.array(np.nan),
    np.float64(math.nan),
    np.float32(1e38),
    np.int64(-3),
    np.uint64(2**64 - 1),
    [0.5],
    [],
    (0.5, 0.5),
    {},
    {"a": 1},
    1j,
    np.complex128(1.0),
)
"""Values a careless caller or a corrupt file hands a controller: non-finite and huge floats,
ints too large for a float, negatives, numbers as strings and bytes, None, bools of every kind,
arrays of shape (1,) and (), containers and complex numbers."""


def hostile_values() -> st.SearchStrategy[Any]:
    """Anything at all that a controller argument might receive (``HOSTILE_SPECIALS`` plus any
    float, int, short string, bytes or list of floats): a controller must either accept the
    value as a number or reject it with a ``ValueError``/``TypeError`` naming the argument,
    and never store a non-finite value."""
    return st.one_of(
        st.sampled_from(HOSTILE_SPECIALS),
        st.floats(),
        st.integers(),
        st.text(max_size=4),
        st.binary(max_size=4),
        st.lists(st.floats(), max_size=3),
    )
