"""Phase detector properties (published constants and the scale-invariant mode)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import json_roundtrip
from hypothesis import given
from hypothesis import strategies as st

from safecontrol.phase import Phase, PhaseDetector


def run(detector, xs):
    return [detector.update(x) for x in xs]


def test_warmup_until_a_previous_window_exists_then_published_multipliers():
    # The recent window fills at update 10, but only update 11 has a reward before it to
    # compare with (a climb cannot be told from a plateau before).
    detector = PhaseDetector(window=10)
    phases = run(detector, [0.5] * 10)
    assert set(phases) == {Phase.WARMUP} and detector.multiplier == 1.5
    detector.update(0.5)
    assert detector.phase is not Phase.WARMUP


def test_climbing_plateau_converged_on_canonical_streams():
    rng = np.random.default_rng(0)
    climbing = PhaseDetector()
    assert run(climbing, 0.01 * np.arange(150))[-1] is Phase.CLIMBING
    assert climbing.multiplier == 1.2
    plateau = PhaseDetector()
    assert run(plateau, 0.3 + 0.1 * rng.standard_normal(150))[-1] is Phase.PLATEAU
    assert plateau.multiplier == 0.8
    converged = PhaseDetector()
    assert run(converged, 0.8 + 0.005 * rng.standard_normal(150))[-1] is Phase.CONVERGED
    assert converged.multiplier == 1.0


@given(st.integers(1, 20), st.lists(st.floats(-5, 5), min_size=0, max_size=200))
def test_memory_bounded_by_two_windows(window, xs):
    detector = PhaseDetector(window=window)
    run(detector, xs)
    assert len(detector.state_dict()["state"]["history"]) <= 2 * window


@given(
    st.lists(st.integers(-1000, 1000), min_size=1, max_size=120),
    st.sampled_from([0.125, 0.5, 2.0, 8.0, 64.0]),
)
def test_scale_invariant_phases_ignore_rescaling(ints, scale):
    xs = [i / 1000 for i in ints]
    plain = PhaseDetector(window=10, mode="scale_invariant")
    scaled = PhaseDetector(window=10, mode="scale_invariant")
    assert run(plain, xs) == run(scaled, [scale * x for x in xs])


@pytest.mark.parametrize("shift", [-3.0, 10.0, 1000.0])
def test_scale_invariant_phases_ignore_shifts_on_canonical_streams(shift):
    # Streams whose statistics sit far from the decision boundaries, where a shift's rounding
    # cannot flip a comparison.
    step_up = np.concatenate([np.full(60, 0.2), np.full(90, 0.9)])
    streams = [0.01 * np.arange(150), step_up, np.full(150, 0.8)]
    for xs in streams:
        plain = run(PhaseDetector(mode="scale_invariant"), xs)
        shifted = run(PhaseDetector(mode="scale_invariant"), xs + shift)
        assert plain == shifted


def test_absolute_mode_depends_on_reward_scale_where_scale_invariant_does_not():
    slow = 0.0001 * np.arange(150)  # climbs 0.005 per window: below the published 0.01 margin
    assert run(PhaseDetector(), slow)[-1] is not Phase.CLIMBING
    assert run(PhaseDetector(), 100 * slow)[-1] is Phase.CLIMBING
    assert run(PhaseDetector(mode="scale_invariant"), slow)[-1] is Phase.CLIMBING


@given(st.lists(st.floats(-5, 5), min_size=0, max_size=150), st.data())
def test_state_dict_continuation_is_bit_identical(xs, data):
    cut = data.draw(st.integers(0, len(xs)))
    a = PhaseDetector(window=7, mode=data.draw(st.sampled_from(["absolute", "scale_invariant"])))
    b = PhaseDetector(window=7, mode=a.mode)
    run(a, xs[:cut])
    b.load_state_dict(json_roundtrip(a.state_dict()))
    assert run(a, xs[cut:]) == run(b, xs[cut:])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"window": 0}, "window"),
        ({"window": 2.5}, "window"),
        ({"mode": "relative"}, "mode"),
        ({"climb_margin": -1.0}, "climb_margin"),
        ({"converged_std": math.nan}, "converged_std"),
        ({"multipliers": {"warmup": 1.0}}, "missing"),
        ({"multipliers": {"warmup": 1, "climbing": 1, "plateau": 1, "converged": 0}}, "converged"),
        ({"multipliers": {"bogus": 1.0}}, "bogus"),
    ],
)
def test_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PhaseDetector(**kwargs)


def test_rejected_reward_leaves_state_unchanged():
    detector = PhaseDetector(window=3)
    run(detector, [1.0, 2.0])
    before = detector.state_dict()
    with pytest.raises(ValueError, match="reward"):
        detector.update(math.nan)
    assert detector.state_dict() == before


def brute_force_phases(xs, window, mode):
    """The module docstring's rules applied to each prefix afresh: both windows sliced from the
    whole stream and summed with math.fsum (the detector sums only the recent one)."""
    detector = PhaseDetector(window=window, mode=mode)  # for its thresholds only
    phases, count, mean, m2 = [], 0, 0.0, 0.0
    for t, x in enumerate(xs):
        count += 1
        delta = x - mean
        mean += delta / count
        m2 += delta * (x - mean)
        previous = xs[max(0, t + 1 - 2 * window) : max(0, t + 1 - window)]
        if count < window or not previous:  # warm-up lasts until a previous window exists
            phases.append(Phase.WARMUP)
            continue
        recent = xs[t + 1 - window : t + 1]
        recent_mean = math.fsum(recent) / len(recent)
        squares = [(v - recent_mean) * (v - recent_mean) for v in recent]
        recent_std = math.sqrt(math.fsum(squares) / len(recent))
        if mode == "absolute":
            scale, level = 1.0, recent_mean
        else:
            scale = math.sqrt(m2 / count)
            low, high = min(xs[: t + 1]), max(xs[: t + 1])
            level = 1.0 if high == low else (recent_mean - low) / (high - low)
        phase = Phase.PLATEAU
        previous_mean = math.fsum(previous) / len(previous)
        slack = 1e-12 * max(abs(recent_mean), abs(previous_mean))
        if recent_mean - previous_mean > detector.climb_margin * scale + slack:
            phase = Phase.CLIMBING
        converged = (
            recent_std <= detector.converged_std * scale and level > detector.converged_level
        )
        if phase is Phase.PLATEAU and converged:
            phase = Phase.CONVERGED
        phases.append(phase)
    return phases


@given(
    st.integers(1, 8),
    st.sampled_from(["absolute", "scale_invariant"]),
    st.lists(st.sampled_from([0.0, 0.3, 0.7, 0.71, 0.8, 1.0]) | st.floats(-2, 2), max_size=80),
    st.data(),
)
def test_incremental_window_means_equal_brute_force_classification(window, mode, xs, data):
    # The detector reuses the recent-window mean of `window` updates ago as the previous
    # window's mean; a restore drops that cache, so cut the stream at a random point too.
    cut = data.draw(st.integers(0, len(xs)))
    first = PhaseDetector(window=window, mode=mode)
    head = run(first, xs[:cut])
    resumed = PhaseDetector(window=window, mode=mode)
    resumed.load_state_dict(json_roundtrip(first.state_dict()))
    assert head + run(resumed, xs[cut:]) == brute_force_phases(xs, window, mode)
