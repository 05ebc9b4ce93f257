"""Decisions are frozen dataclasses, however a controller builds them."""

from __future__ import annotations

import dataclasses

import pytest

from safecontrol.classic import AdaptiveKL
from safecontrol.decision import CoefDecision, SafeDecision
from safecontrol.safe import SafeController


def rebuilt(decision):
    """The same decision through the dataclass constructor."""
    names = [f.name for f in dataclasses.fields(decision)]
    return type(decision)(**{name: getattr(decision, name) for name in names})


@pytest.mark.parametrize(
    "decision",
    [
        SafeController().update(kl=0.4, entropy=1.0, reward=0.2),
        AdaptiveKL().update(kl=7.0, n_steps=32, tokens_per_sequence=1.0),
    ],
    ids=["SafeDecision", "CoefDecision"],
)
def test_update_builds_a_decision_equal_to_the_constructors(decision):
    # Controllers skip the frozen __init__ (see decision._construct): the instance must still hold
    # exactly the dataclass fields, compare and hash like a constructed one, and stay frozen.
    assert isinstance(decision, (SafeDecision, CoefDecision))
    assert list(vars(decision)) == [f.name for f in dataclasses.fields(decision)]
    twin = rebuilt(decision)
    assert decision == twin and hash(decision) == hash(twin) and repr(decision) == repr(twin)
    assert dataclasses.replace(decision) == decision
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.step = 5  # type: ignore[misc]
