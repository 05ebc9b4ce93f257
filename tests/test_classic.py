"""Properties of the classic KL controllers: fixed β, Ziegler's adaptive β, the PPO paper's β."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import json_roundtrip
from hypothesis import given
from hypothesis import strategies as st

from safecontrol.classic import DEFAULT_COEF_LIMITS, AdaptiveKL, FixedKL, PPOAdaptiveKL
from safecontrol.decision import CoefDecision

kls = st.floats(-5.0, 50.0)
n_steps = st.integers(1, 5000)
batches = st.lists(st.tuples(kls, n_steps), min_size=1, max_size=40)

FACTORIES = {
    "fixed": lambda policy="raise": FixedKL(0.05, on_nonfinite=policy),
    "adaptive": lambda policy="raise": AdaptiveKL(0.2, 6.0, 10000, on_nonfinite=policy),
    "ppo": lambda policy="raise": PPOAdaptiveKL(1.0, 0.01, 1.5, 2.0, on_nonfinite=policy),
}


def feed(controller, kl, n):
    return controller.update(kl=kl, n_steps=n, tokens_per_sequence=1.0)


# ---------------------------------------------------------------- the update rules
@given(batches, st.floats(1e-6, 10.0), st.floats(0.01, 20.0), st.floats(5e3, 1e5))
def test_adaptive_kl_follows_ziegler_rule_step_by_step(stream, init, target, horizon):
    controller = AdaptiveKL(init_coef=init, target=target, horizon=horizon)
    beta = init
    for i, (kl, n) in enumerate(stream, start=1):
        error = float(np.clip(kl / target - 1.0, -0.2, 0.2))
        beta = min(max(beta * (1.0 + error * n / horizon), 1e-6), 1e6)  # DEFAULT_COEF_LIMITS
        assert controller.update(kl=kl, n_steps=n, tokens_per_sequence=1.0) == CoefDecision(
            coef=beta, step=i, skipped=0
        )


@given(kls, n_steps, st.floats(0.01, 20.0))
def test_adaptive_kl_raises_beta_above_target_and_lowers_it_below(kl, n, target):
    controller = AdaptiveKL(init_coef=0.2, target=target)
    coef = controller.update(kl=kl, n_steps=n, tokens_per_sequence=1.0).coef
    if kl > target:
        assert coef > 0.2
    elif kl < target:
        assert coef < 0.2
    else:
        assert coef == 0.2


@given(kls, n_steps)
def test_adaptive_kl_changes_beta_by_at_most_twenty_percent_per_horizon(kl, n):
    coef = (
        AdaptiveKL(init_coef=1.0, horizon=10000)
        .update(kl=kl, n_steps=n, tokens_per_sequence=1.0)
        .coef
    )
    assert abs(coef - 1.0) <= 0.2 * n / 10000 + 1e-15


@given(st.lists(kls, min_size=1, max_size=40), st.floats(1e-3, 1.0), st.floats(1.01, 3.0))
def test_ppo_adaptive_kl_divides_below_band_multiplies_above_holds_inside(stream, target, factor):
    controller = PPOAdaptiveKL(init_coef=1.0, target=target, tolerance=1.5, factor=factor)
    beta = 1.0
    for kl in stream:
        if kl < target / 1.5 and beta / factor >= 1e-6:  # DEFAULT_COEF_LIMITS
            beta = beta / factor
        elif kl > target * 1.5 and beta * factor <= 1e6:
            beta = beta * factor
        assert controller.update(kl=kl).coef == beta


def test_ppo_adaptive_kl_paper_rule_halves_and_doubles():
    controller = PPOAdaptiveKL(init_coef=1.0, target=0.01)
    assert controller.update(kl=0.001).coef == 0.5
    assert controller.update(kl=0.01).coef == 0.5
    assert controller.update(kl=0.02).coef == 1.0
    assert controller.update(kl=0.015).coef == 1.0


@given(st.lists(kls, max_size=30))
def test_fixed_kl_keeps_its_coefficient_and_counts_steps(stream):
    controller = FixedKL(0.05)
    for i, kl in enumerate(stream, start=1):
        assert controller.update(kl=kl) == CoefDecision(coef=0.05, step=i, skipped=0)


@pytest.mark.parametrize("name", FACTORIES)
def test_decision_before_any_update_is_initial_coef_at_step_zero(name):
    controller = FACTORIES[name]()
    initial = {"fixed": 0.05, "adaptive": 0.2, "ppo": 1.0}[name]
    assert controller.decision == CoefDecision(coef=initial, step=0, skipped=0)


@pytest.mark.parametrize("name", FACTORIES)
def test_decision_property_matches_last_update(name):
    controller = FACTORIES[name]()
    decision = feed(controller, 9.0, 256)
    assert controller.decision == decision


@pytest.mark.parametrize("name", FACTORIES)
def test_measurements_accept_python_numpy_and_zero_d_values(name):
    reference = FACTORIES[name]()
    expected = feed(reference, 9.0, 256)
    for kl in (9, np.float32(9.0), np.float64(9.0), np.array(9.0)):
        assert feed(FACTORIES[name](), kl, np.int64(256)) == expected


def test_measurements_accept_zero_d_torch_tensors():
    torch = pytest.importorskip("torch")
    controller = AdaptiveKL()
    expected = AdaptiveKL().update(kl=9.0, n_steps=256, tokens_per_sequence=1.0, entropy=1.5)
    got = controller.update(
        kl=torch.tensor(9.0, dtype=torch.float64),
        n_steps=256,
        tokens_per_sequence=torch.tensor(1.0, dtype=torch.float64),
        entropy=torch.tensor(1.5, dtype=torch.float64),
    )
    assert got == expected


# ---------------------------------------------------------------- state dict
@pytest.mark.parametrize("name", FACTORIES)
def test_load_state_dict_rejects_other_controller_type(name):
    other = "ppo" if name != "ppo" else "fixed"
    with pytest.raises(ValueError, match="not"):
        FACTORIES[name]().load_state_dict(FACTORIES[other]().state_dict())


@pytest.mark.parametrize(
    ("make", "changed"),
    [
        (lambda: FixedKL(0.1), "coef"),
        (lambda: AdaptiveKL(target=3.0), "target"),
        (lambda: AdaptiveKL(horizon=500), "horizon"),
        (lambda: PPOAdaptiveKL(factor=3.0), "factor"),
        (lambda: AdaptiveKL(on_nonfinite="skip"), "on_nonfinite"),
    ],
)
def test_load_state_dict_rejects_changed_config(make, changed):
    name = {FixedKL: "fixed", AdaptiveKL: "adaptive", PPOAdaptiveKL: "ppo"}[type(make())]
    saved = FACTORIES[name]().state_dict()
    with pytest.raises(ValueError, match=changed):
        make().load_state_dict(saved)


def test_load_state_dict_rejects_malformed_state():
    saved = AdaptiveKL().state_dict()
    saved["state"] = {"coef": 0.2}
    with pytest.raises(ValueError, match="missing fields"):
        AdaptiveKL().load_state_dict(saved)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("make", "arg"),
    [
        (lambda: FixedKL(-0.1), "coef"),
        (lambda: FixedKL(math.nan), "coef"),
        (lambda: FixedKL(math.inf), "coef"),
        (lambda: FixedKL(0.1, on_nonfinite="ignore"), "on_nonfinite"),
        (lambda: AdaptiveKL(init_coef=-1.0), "init_coef"),
        (lambda: AdaptiveKL(target=0.0), "target"),
        (lambda: AdaptiveKL(target=-6.0), "target"),
        (lambda: AdaptiveKL(target=math.nan), "target"),
        (lambda: AdaptiveKL(horizon=0), "horizon"),
        (lambda: AdaptiveKL(horizon=-10), "horizon"),
        (lambda: AdaptiveKL(horizon=math.inf), "horizon"),
        (lambda: PPOAdaptiveKL(init_coef=-1.0), "init_coef"),
        (lambda: PPOAdaptiveKL(target=0.0), "target"),
        (lambda: PPOAdaptiveKL(tolerance=1.0), "tolerance"),
        (lambda: PPOAdaptiveKL(tolerance=math.nan), "tolerance"),
        (lambda: PPOAdaptiveKL(factor=0.5), "factor"),
        (lambda: PPOAdaptiveKL(factor="two"), "factor"),
    ],
)
def test_constructor_rejects_bad_argument_naming_it(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


BAD_UPDATES = [
    ({"kl": math.nan, "n_steps": 8, "tokens_per_sequence": 1.0}, "kl"),
    ({"kl": math.inf, "n_steps": 8, "tokens_per_sequence": 1.0}, "kl"),
    ({"kl": -math.inf, "n_steps": 8, "tokens_per_sequence": 1.0}, "kl"),
    ({"kl": "high", "n_steps": 8, "tokens_per_sequence": 1.0}, "kl"),
    ({"kl": None, "n_steps": 8, "tokens_per_sequence": 1.0}, "kl"),
    ({"kl": 1.0, "n_steps": 8, "tokens_per_sequence": 1.0, "entropy": math.nan}, "entropy"),
    ({"kl": 1.0, "n_steps": 8, "tokens_per_sequence": 1.0, "reward": math.inf}, "reward"),
    ({"kl": 1.0, "n_steps": 8, "tokens_per_sequence": 1.0, "entropy": -0.5}, "entropy"),
    ({"kl": 1.0, "n_steps": 8, "tokens_per_sequence": 0.0}, "tokens_per_sequence"),
    ({"kl": 1.0, "n_steps": 8, "tokens_per_sequence": math.nan}, "tokens_per_sequence"),
    ({"kl": 1.0, "n_steps": 0, "tokens_per_sequence": 1.0}, "n_steps"),
    ({"kl": 1.0, "n_steps": -4, "tokens_per_sequence": 1.0}, "n_steps"),
    ({"kl": 1.0, "n_steps": 2.5, "tokens_per_sequence": 1.0}, "n_steps"),
    ({"kl": 1.0, "n_steps": True, "tokens_per_sequence": 1.0}, "n_steps"),
]


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize(("kwargs", "arg"), BAD_UPDATES)
def test_rejected_update_names_argument_and_leaves_state_unchanged(name, kwargs, arg):
    controller = FACTORIES[name]()
    feed(controller, 9.0, 256)
    before = controller.state_dict()
    with pytest.raises(ValueError, match=arg):
        controller.update(**kwargs)
    assert controller.state_dict() == before


def test_adaptive_kl_requires_n_steps_small_enough_to_keep_beta_positive():
    controller = AdaptiveKL(horizon=100)
    before = controller.state_dict()
    with pytest.raises(ValueError, match="n_steps"):
        controller.update(kl=0.0, n_steps=500, tokens_per_sequence=1.0)
    assert controller.state_dict() == before
    assert controller.update(kl=0.0, n_steps=499, tokens_per_sequence=1.0).coef > 0.0


def test_adaptive_kl_update_requires_n_steps_and_tokens_per_sequence():
    with pytest.raises(ValueError, match="n_steps is required"):
        AdaptiveKL().update(kl=1.0, tokens_per_sequence=8.0)
    with pytest.raises(ValueError, match="tokens_per_sequence is required"):
        AdaptiveKL().update(kl=1.0, n_steps=8)


def test_adaptive_kl_reads_per_token_kl_times_tokens_per_sequence():
    per_sequence = AdaptiveKL(target=6.0).update(kl=9.0, n_steps=64, tokens_per_sequence=1.0)
    per_token = AdaptiveKL(target=6.0).update(kl=0.5625, n_steps=64, tokens_per_sequence=16.0)
    assert per_token == per_sequence  # 0.5625 nats/token × 16 tokens = 9 nats/sequence


@pytest.mark.parametrize("name", FACTORIES)
@given(stream=st.lists(st.one_of(kls, st.sampled_from([math.nan, math.inf, -math.inf]))))
def test_skip_policy_holds_decision_and_counts_nonfinite_measurements(name, stream):
    skipping = FACTORIES[name]("skip")
    clean = FACTORIES[name]()
    skipped = 0
    for kl in stream:
        decision = feed(skipping, kl, 256)
        if math.isfinite(kl):
            expected = feed(clean, kl, 256)
        else:
            skipped += 1
            expected = clean.decision
        assert decision == CoefDecision(coef=expected.coef, step=expected.step, skipped=skipped)


@pytest.mark.parametrize("name", FACTORIES)
def test_skip_policy_still_raises_on_invalid_non_measurement_input(name):
    controller = FACTORIES[name]("skip")
    before = controller.state_dict()
    with pytest.raises(ValueError, match="n_steps"):
        controller.update(kl=math.nan, n_steps=-1, tokens_per_sequence=1.0)
    with pytest.raises(ValueError, match="kl"):
        controller.update(kl="nan-ish", n_steps=1, tokens_per_sequence=1.0)
    assert controller.state_dict() == before


# ---------------------------------------------------------------- coef_limits (issue 10, item 4)
def test_ppo_adaptive_kl_coef_is_never_absorbed_at_zero_nor_reaches_inf():
    # Unbounded, 1075 halvings reach β = 0.0, from which doubling never returns.
    # Bounded, a halving or doubling past the limits is skipped: β stays a power of two.
    controller = PPOAdaptiveKL(1.0, 0.01)
    lower, upper = DEFAULT_COEF_LIMITS
    for _ in range(1075):
        low = controller.update(kl=0.0).coef
    assert low == 2.0**-19 and lower <= low < 2 * lower
    assert controller.update(kl=1.0).coef == 2 * low
    for _ in range(1100):
        high = controller.update(kl=1.0).coef
    assert high == 2.0**19 and upper / 2 < high <= upper < math.inf


def test_adaptive_kl_coef_stays_inside_coef_limits():
    controller = AdaptiveKL(init_coef=0.5, target=1.0, horizon=100, coef_limits=(0.01, 2.0))
    coefs = [
        controller.update(kl=0.0, n_steps=499, tokens_per_sequence=1.0).coef for _ in range(50)
    ]
    assert min(coefs) == 0.01
    coefs = [
        controller.update(kl=9.0, n_steps=499, tokens_per_sequence=1.0).coef for _ in range(50)
    ]
    assert max(coefs) == 2.0


@pytest.mark.parametrize("cls", [AdaptiveKL, PPOAdaptiveKL])
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"coef_limits": (0.0, 1.0)}, "coef_limits"),
        ({"coef_limits": (-1.0, 1.0)}, "coef_limits"),
        ({"coef_limits": (1e-3, math.inf)}, "coef_limits"),
        ({"coef_limits": (math.nan, 1.0)}, "coef_limits"),
        ({"coef_limits": (2.0, 1.0)}, "coef_limits"),
        ({"coef_limits": "ab"}, "coef_limits"),
        ({"coef_limits": (1.0,)}, "coef_limits"),
        ({"coef_limits": None}, "coef_limits"),
        ({"init_coef": 0.0}, "init_coef"),
        ({"init_coef": 5.0, "coef_limits": (0.1, 1.0)}, "init_coef"),
    ],
)
def test_coef_limits_are_validated(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [AdaptiveKL, PPOAdaptiveKL])
def test_coef_limits_are_part_of_the_config(cls):
    saved = cls(coef_limits=(1e-3, 10.0)).state_dict()
    assert saved["config"]["coef_limits"] == [1e-3, 10.0]
    with pytest.raises(ValueError, match="coef_limits"):
        cls().load_state_dict(saved)


@pytest.mark.parametrize(("cls", "kl"), [(AdaptiveKL, 9.0), (PPOAdaptiveKL, 1.0)])
def test_state_dict_saved_before_coef_limits_loads_with_the_default_limits(cls, kl):
    controller = cls()
    for _ in range(3):
        controller.update(kl=kl, n_steps=64, tokens_per_sequence=1.0)
    old = json_roundtrip(controller.state_dict())
    del old["config"]["coef_limits"]  # what the release before coef_limits wrote
    resumed = cls()
    resumed.load_state_dict(old)
    assert resumed.state_dict() == controller.state_dict()
    with pytest.raises(ValueError, match="coef_limits"):
        cls(coef_limits=(1e-3, 10.0)).load_state_dict(old)
    # An old run whose β had already collapsed to 0 resumes at the lower limit.
    old["state"]["coef"] = 0.0
    resumed.load_state_dict(old)
    assert resumed.coef == DEFAULT_COEF_LIMITS[0]


@pytest.mark.parametrize("cls", [AdaptiveKL, PPOAdaptiveKL])
def test_load_rejects_coef_outside_coef_limits(cls):
    controller = cls()
    saved = controller.state_dict()
    before = json_roundtrip(saved)
    saved["state"]["coef"] = 0.0
    with pytest.raises(ValueError, match="coef"):
        controller.load_state_dict(saved)
    assert controller.state_dict() == before
