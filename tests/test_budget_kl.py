"""BudgetKL: a KL budget and an entropy floor held without a β to choose."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from safecontrol import BudgetKL, registry
from safecontrol.testing import PATHOLOGIES, check_controller, plant

BATCH = {"n_steps": 32, "tokens_per_sequence": 16.0}


def feed(controller: BudgetKL, kls: list[float], entropy: float = 5.0) -> list[float]:
    return [controller.update(kl=k, entropy=entropy, **BATCH).coef for k in kls]


def test_passes_the_conformance_suite_with_a_derived_and_a_given_budget():
    check_controller(BudgetKL)
    check_controller(lambda: BudgetKL(budget=0.3))
    check_controller(lambda: BudgetKL(min_coef=0.1))


def test_a_beta_floor_penalises_from_the_first_step_and_the_budget_still_raises_beta():
    floored = BudgetKL(budget=1.0, setpoint=0.8, min_coef=0.1)
    assert floored.decision.coef == 0.1  # before any update: the floor, as a fixed β
    assert feed(floored, [0.1, 0.3, 0.5, 0.7]) == [0.1] * 4  # inside the budget: the floor
    rising = feed(floored, [1.2] * 10)
    assert rising[0] > 0.1 and all(b > a for a, b in itertools.pairwise(rising))
    free = BudgetKL(budget=1.0, setpoint=0.8)
    feed(free, [0.1, 0.3, 0.5, 0.7])
    # Above the floor the floor changes nothing: the same integral, the same β.
    assert feed(free, [1.2] * 10) == pytest.approx(rising)
    assert floored.state_dict()["config"]["min_coef"] == 0.1
    assert "min_coef" not in free.state_dict()["config"]  # a floorless state keeps its layout
    restored = BudgetKL(budget=1.0, setpoint=0.8, min_coef=0.1)
    restored.load_state_dict(json.loads(json.dumps(floored.state_dict())))
    assert restored.decision == floored.decision
    with pytest.raises(ValueError, match=r"min_coef must be <= max_coef 1.0, got 2"):
        BudgetKL(min_coef=2, max_coef=1.0)


def test_the_budget_and_step_limit_are_shares_of_the_first_entropy_and_then_fixed():
    controller = BudgetKL(budget_ratio=0.2, step_ratio=0.001)
    assert controller.decision.budget == 0.0 and math.isinf(controller.decision.max_preview_kl)
    controller.update(kl=0.0, entropy=5.0, **BATCH)
    controller.update(kl=0.0, entropy=4.5, **BATCH)  # later entropies do not move them
    assert controller.decision.budget == pytest.approx(1.0)
    assert controller.decision.max_preview_kl == pytest.approx(0.005)
    assert controller.state.controller.initial_entropy == 5.0
    given = BudgetKL(budget=0.3).update(kl=0.0, **BATCH)  # given: no entropy needed
    assert given.budget == 0.3 and math.isinf(given.max_preview_kl)  # no H₀ yet: no step limit
    assert BudgetKL().update(kl=0.0, entropy=0.0, **BATCH).budget == 0.01  # min_budget
    assert math.isinf(BudgetKL(step_ratio=None).update(kl=0.0, entropy=5.0, **BATCH).max_preview_kl)


def test_an_entropy_drop_beyond_its_share_raises_beta_while_kl_is_within_budget():
    controller = BudgetKL(budget=10.0, max_entropy_drop=0.2)
    controller.update(kl=0.0, entropy=5.0, **BATCH)
    healthy = [controller.update(kl=1.0, entropy=h, **BATCH).coef for h in (4.8, 4.5, 4.1)]
    assert healthy == [0.0] * 3  # lost < a fifth: no leash
    collapsing = [controller.update(kl=1.0, entropy=3.0, **BATCH).coef for _ in range(10)]
    assert all(b > a for a, b in itertools.pairwise(collapsing)) and collapsing[0] > 0.0
    without = BudgetKL(budget=10.0, max_entropy_drop=None)
    without.update(kl=0.0, entropy=5.0, **BATCH)
    assert [without.update(kl=1.0, entropy=3.0, **BATCH).coef for _ in range(10)] == [0.0] * 10


def test_a_derived_budget_needs_the_first_entropy():
    with pytest.raises(ValueError, match="needs the entropy"):
        BudgetKL().update(kl=0.1, **BATCH)


def test_loose_below_the_set_point_then_tight_above_it():
    controller = BudgetKL(budget=1.0, setpoint=0.8)
    assert feed(controller, [0.1, 0.3, 0.5, 0.7, 0.79]) == [0.0] * 5  # β stays 0: no leash
    rising = feed(controller, [1.2] * 10)
    assert all(b > a for a, b in itertools.pairwise(rising))  # the integral climbs


def test_the_integral_stops_at_max_coef_and_unwinds_quickly():
    controller = BudgetKL(budget=1.75, max_coef=2.0, ki=0.05)  # the derived budget at H₀ = 5
    feed(controller, [100.0] * 500)  # a long runaway far above the budget
    assert controller.state.controller.integral == pytest.approx(2.0 / 0.05)
    assert controller.coef == 2.0
    after = feed(controller, [0.0] * 60)  # relative error −1 per update: 40 updates to unwind
    assert after[-1] == 0.0 and after.index(0.0) <= 41
    tight = BudgetKL(budget=0.1, max_coef=2.0, ki=0.05)  # gain √17.5: it winds up to less
    feed(tight, [10.0] * 500)
    assert tight.state.controller.integral == pytest.approx(2.0 / 0.05 / math.sqrt(17.5))
    assert tight.coef == 2.0 and feed(tight, [0.0] * 11)[-1] == 0.0


def test_a_tighter_budget_answers_the_same_relative_excess_with_more_beta():
    """β·KL pulls back with ‖∇KL‖ ∝ √KL: a budget b needs √(derived / b) times the β."""
    relative = [0.0, 1.2, 1.5, 1.1, 1.3]  # KL over the set point, the same share of each budget
    derived = feed(BudgetKL(), [r * 0.75 * 1.75 for r in relative])
    given = feed(BudgetKL(budget=1.75), [r * 0.75 * 1.75 for r in relative])
    assert given == derived  # the derived budget given by hand: gain 1
    for budget in (0.1, 7.0):
        coefs = feed(BudgetKL(budget=budget), [r * 0.75 * budget for r in relative])
        ratio = math.sqrt(1.75 / budget)
        assert coefs == pytest.approx([c * ratio for c in derived], rel=1e-9)


def integrating_plant(controller: BudgetKL, drift: float, pull: float) -> np.ndarray:
    """KL as the trainer shows it: it integrates the steps, each adding ``drift`` nats and
    losing ``pull`` · β · KL, with β acting one batch late (the rollout that measures a step's
    KL follows it), measured with 10% noise. Returns the measured KL of 100 batches."""
    rng = np.random.default_rng(0)
    kl, coefs, measured = 0.0, [0.0], []
    for _ in range(100):
        measured.append(kl * (1.0 + 0.1 * rng.standard_normal()))
        coefs.append(controller.update(kl=max(measured[-1], 0.0), entropy=5.0, **BATCH).coef)
        kl = max(kl + drift - pull * coefs[-2] * kl, 0.0)
    return np.asarray(measured)


def test_the_proportional_term_damps_the_cycle_an_integral_led_loop_falls_into():
    """The default gains (kp 2 on an EMA of decay 0.2) hold KL within 1.1 × the budget on an
    integrating KL plant where kp 0.5 on an EMA of 0.5 (the first defaults) cycled past it, as
    they did in the frontier sweep."""
    old, new = [], []
    for drift, pull in itertools.product((0.05, 0.1), (0.1, 0.27)):
        new.append(adherence(integrating_plant(BudgetKL(budget=1.0), drift, pull), 1.0))
        damped_less = BudgetKL(budget=1.0, kp=0.5, p_decay=0.5)
        old.append(adherence(integrating_plant(damped_less, drift, pull), 1.0))
    assert min(new) >= 0.95
    assert min(old) < 0.9 and np.mean(new) > np.mean(old)


def test_the_decision_limits_each_step_to_a_share_of_the_initial_entropy_or_budget():
    loose = BudgetKL(budget=4.0, budget_ratio=0.4, step_ratio=0.004)
    assert loose.update(kl=0.0, entropy=5.0, **BATCH).max_preview_kl == pytest.approx(0.02)
    tight = BudgetKL(budget=0.2, budget_ratio=0.4, step_ratio=0.004)  # a tenth of the derived
    assert tight.update(kl=0.0, entropy=5.0, **BATCH).max_preview_kl == pytest.approx(0.002)
    decision = BudgetKL(budget=0.4, step_ratio=0.004).update(kl=0.0, entropy=5.0, **BATCH)
    assert decision.max_preview_kl == pytest.approx(0.004 * 0.4 / 0.35)
    decision = loose.decision
    assert decision.step_scale(0.01) == 1.0
    assert decision.step_scale(0.08) == pytest.approx(0.5)  # KL ∝ step²: back to the limit
    assert decision.step_scale(2.0) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="preview_kl"):
        decision.step_scale(-1.0)


def test_state_round_trips_and_a_tampered_coef_is_refused():
    controller = BudgetKL()
    feed(controller, [0.5, 1.5, 2.0, 0.4])
    saved = json.loads(json.dumps(controller.state_dict()))
    restored = BudgetKL()
    restored.load_state_dict(saved)
    assert feed(restored, [1.0, 3.0]) == feed(controller, [1.0, 3.0])
    saved["state"]["controller"]["coef"] += 0.5
    fresh = BudgetKL()
    with pytest.raises(ValueError, match="coef"):
        fresh.load_state_dict(saved)
    assert fresh.decision.budget == 0.0  # a refused load changes nothing


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("budget", 0.0),
        ("budget_ratio", 11.0),
        ("setpoint", 1.5),
        ("ki", 0.0),
        ("max_coef", -1),
        ("min_coef", -0.1),
        ("max_entropy_drop", 1.5),
        ("max_entropy_drop", 0.0),
        ("step_ratio", -0.1),
    ],
)
def test_bad_settings_are_named(name, value):
    with pytest.raises(ValueError, match=name):
        BudgetKL(**{name: value})


def adherence(kl: np.ndarray, budget: float, warmup: int = 10) -> float:
    return float(np.mean(kl[warmup:] <= 1.1 * budget))


@pytest.mark.parametrize("pathology", sorted(PATHOLOGIES))
def test_the_budget_holds_on_every_plant_pathology_where_pid_lagrangian_does_not(pathology):
    """SPEC §7's adherence (KL ≤ 1.1 × budget after a 10-step warm-up) on the surrogate plant,
    at half, one and two times the preset's learning rate, three seeds each."""
    preset = PATHOLOGIES[pathology].config
    ours, theirs = [], []
    for lr_factor in (0.5, 1.0, 2.0):
        for seed in range(3):
            config = preset.replace(seed=seed, lr=preset.lr * lr_factor)
            trajectory = plant.run(registry.make("kl-budget", budget=0.3), config)
            ours.append(adherence(np.asarray(trajectory.kl), 0.3))
            baseline = plant.run(registry.make("pid-lagrangian-kl", target=0.3), config)
            theirs.append(adherence(np.asarray(baseline.kl), 0.3))
    assert min(ours) >= 0.93 and np.mean(ours) >= 0.95
    assert np.mean(ours) > np.mean(theirs) + 0.1


# ------------------------------------------------------------------ properties (hypothesis)
kl_values = st.floats(0.0, 50.0, allow_nan=False)
entropies = st.floats(0.5, 8.0, allow_nan=False)
streams = st.lists(st.tuples(kl_values, entropies), min_size=1, max_size=60)


@given(streams)
def test_beta_and_the_integral_stay_in_their_clips_and_the_step_limit_is_fixed(stream):
    controller = BudgetKL(max_coef=3.0, ki=0.1)
    for kl, entropy in stream:
        decision = controller.update(kl=kl, entropy=entropy, **BATCH)
        assert 0.0 <= decision.coef <= 3.0
        assert 0.0 <= controller.state.controller.integral <= 3.0 / 0.1
        assert decision.max_preview_kl == pytest.approx(0.001 * stream[0][1])
        assert decision.budget == pytest.approx(max(0.35 * stream[0][1], 0.01))


@given(streams, st.floats(0.0, 5.0), st.floats(0.0, 0.5))
def test_more_kl_or_less_entropy_never_lowers_beta(stream, extra_kl, entropy_loss):
    """β is monotone in each measurement: a run that is further from the reference or has
    lost more entropy, batch for batch, is never leashed less."""
    calm, hot = BudgetKL(budget=1.0), BudgetKL(budget=1.0)
    first_entropy = stream[0][1]
    for i, (kl, entropy) in enumerate(stream):
        worse = entropy if i == 0 else entropy * (1.0 - entropy_loss)  # same H₀
        a = calm.update(kl=kl, entropy=entropy, **BATCH).coef
        b = hot.update(kl=kl + extra_kl, entropy=worse, **BATCH).coef
        assert b >= a - 1e-12
    assert hot.state.controller.initial_entropy == calm.state.controller.initial_entropy
    assert first_entropy == calm.state.controller.initial_entropy


@given(
    st.lists(st.tuples(st.floats(0.0, 0.74), st.floats(0.81, 2.0)), min_size=1, max_size=60),
    st.floats(1.0, 6.0),
)
def test_inside_both_limits_beta_stays_zero(stream, h0):
    """KL below the set point and entropy above its floor on every batch: no leash at all."""
    controller = BudgetKL(budget=1.0, setpoint=0.75, max_entropy_drop=0.2)
    controller.update(kl=0.0, entropy=h0, **BATCH)
    for kl, entropy_ratio in stream:
        assert controller.update(kl=kl, entropy=entropy_ratio * h0, **BATCH).coef == 0.0


def _state_after_h0(h0: float = 2.0) -> dict:
    controller = BudgetKL()
    feed(controller, [0.1, 0.2], entropy=h0)
    return json.loads(json.dumps(controller.state_dict()))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        # H₀ = 0 beside the budget H₀ = 2 derived (0.35 · 2 = 0.7) loaded.
        (
            {"initial_entropy": 0.0},
            r"budget must equal .* = 0\.01 for initial_entropy 0\.0, got 0\.7",
        ),
        ({"initial_entropy": 3.0}, r"budget must equal .* for initial_entropy 3\.0, got 0\.7"),
        ({"budget": 0.9}, r"budget must equal .* = 0\.7 for initial_entropy 2\.0, got 0\.9"),
        ({"initial_entropy": None}, r"initial_entropy must be set after an update"),
        ({"initial_entropy": 1e200}, r"initial_entropy must lie in \[0, 1e\+150\]"),
        ({"initial_entropy": -1.0}, r"initial_entropy must lie in \[0, 1e\+150\]"),
    ],
)
def test_a_state_whose_budget_disagrees_with_its_initial_entropy_is_refused(change, match):
    saved = _state_after_h0()
    saved["state"]["controller"].update(change)
    fresh = BudgetKL()
    before = fresh.state_dict()
    with pytest.raises(ValueError, match=match):
        fresh.load_state_dict(saved)
    assert fresh.state_dict() == before


def test_before_the_first_update_a_state_holds_no_initial_entropy_and_no_derived_budget():
    for change, match in (
        ({"initial_entropy": 2.0}, "initial_entropy must be null before the first update"),
        ({"budget": 0.7}, "budget must be 0 before the first update derives it"),
    ):
        saved = json.loads(json.dumps(BudgetKL().state_dict()))
        saved["state"]["controller"].update(change)
        with pytest.raises(ValueError, match=match):
            BudgetKL().load_state_dict(saved)
    given = BudgetKL(budget=0.3)
    given.update(kl=0.1, **BATCH)  # a given budget: no entropy, none needed
    saved = json.loads(json.dumps(given.state_dict()))
    assert saved["state"]["controller"]["initial_entropy"] is None
    BudgetKL(budget=0.3).load_state_dict(saved)
