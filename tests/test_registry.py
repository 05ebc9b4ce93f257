"""The controller contract, the registry and the conformance suite over every registration."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toy_controller import ToyDecision

from safecontrol import FixedKL, registry
from safecontrol.contract import KL_UNITS, Controller, DeadBandDecision, Decision
from safecontrol.testing import check_controller
from safecontrol.testing import strategies as sst

CONFORMANCE = {name: (lambda name=name: registry.make(name)) for name in registry.names()}


@pytest.mark.parametrize("name", CONFORMANCE)
def test_every_controller_passes_the_conformance_suite(name):
    check_controller(CONFORMANCE[name])


@pytest.mark.parametrize("name", CONFORMANCE)
@settings(max_examples=15, deadline=None)
@given(
    stream=sst.drifting_streams(min_size=6, max_size=70, estimator="k3"),
    length=st.floats(1.0, 64.0),
)
def test_every_controller_passes_the_conformance_suite_on_drawn_streams(name, stream, length):
    """Replaces the round-trip and reset tests each classic controller's file had."""
    batches = [{**m, "n_steps": 16, "tokens_per_sequence": length} for m in stream]
    check_controller(CONFORMANCE[name], batches)


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_setting_has_a_default_and_a_doc(name):
    registration = registry.registration(name)
    settings = dataclasses.fields(registration.settings)
    assert settings, name
    for f in settings:
        assert registration.docs[f.name].strip(), f"{name}.{f.name} has no doc"
    assert registration.defaults() == dataclasses.asdict(registration.settings())


def test_builtin_controllers_declare_their_kl_units():
    units = {name: registry.make(name).kl_unit for name in registry.names()}
    assert set(units.values()) <= set(KL_UNITS)
    assert units["adaptive-kl"] == "per_sequence"
    assert units["safe"] == "per_token"


def test_unknown_names_and_settings_are_errors_listing_the_known():
    with pytest.raises(ValueError, match=r"unknown controller 'ppo'.*'fixed-kl'"):
        registry.make("ppo")
    with pytest.raises(ValueError, match=r"unknown settings \['cof'\].*'coef'"):
        registry.make("fixed-kl", cof=0.1)


def test_settings_reach_the_controller_and_are_validated_by_it():
    assert registry.make("fixed-kl", coef=0.2).decision.coef == 0.2
    assert registry.make("safe", use_gate=False).config.use_gate is False
    with pytest.raises(ValueError, match="coef"):
        registry.make("fixed-kl", coef=-1.0)


def test_register_refuses_a_taken_name_a_bad_name_and_undocumented_settings():
    class Undocumented:
        kl_unit = "per_token"

        def __init__(self, gain: float = 1.0) -> None:
            """No Args section."""

    with pytest.raises(ValueError, match="already registered"):
        registry.register("safe", lambda: None, "again")
    with pytest.raises(ValueError, match="lower-case"):
        registry.register("My Controller", Undocumented, "bad name")
    with pytest.raises(ValueError, match="'gain' is not documented"):
        registry.register("undocumented", Undocumented, "no docs")
    assert "undocumented" not in registry.names()


def test_decisions_satisfy_the_protocols_and_coef_decisions_never_limit_a_step():
    for name in registry.names():
        decision = registry.make(name).decision
        assert isinstance(decision, Decision)
    fixed = registry.make("fixed-kl").decision
    assert not isinstance(fixed, DeadBandDecision)
    assert fixed.max_preview_kl == math.inf and fixed.step_scale(100.0) == 1.0
    assert isinstance(registry.make("safe").decision, DeadBandDecision)
    assert isinstance(registry.make("safe"), Controller)


# ------------------------------------------------------------------ the suite catches defects
class Sloppy:
    """A controller with one defect switched on at a time."""

    kl_unit = "per_token"

    def __init__(self, defect: str) -> None:
        self.defect, self.coef, self.step = defect, 0.1, 0

    @property
    def decision(self) -> ToyDecision:
        return ToyDecision(self.coef, self.step)

    def update(self, *, kl, entropy=None, reward=None, n_steps=None, tokens_per_sequence=None):
        if self.defect == "half-advances":
            self.step += 1  # before validating
        if not (self.defect == "accepts-strings" and isinstance(kl, str)):
            FixedKL(0.1).update(  # borrow a real controller's validation of every argument
                kl=kl,
                entropy=entropy,
                reward=reward,
                n_steps=n_steps,
                tokens_per_sequence=tokens_per_sequence,
            )
        if self.defect != "half-advances":
            self.step += 1
        if self.defect == "nan-coef" and self.step > 3:
            self.coef = math.nan
        return self.decision

    def state_dict(self) -> dict:
        step = 0 if self.defect == "forgets-step" else self.step
        return {"coef": self.coef, "step": step}

    def load_state_dict(self, state: dict) -> None:
        self.coef, self.step = state["coef"], state["step"]

    def reset(self) -> None:
        self.coef, self.step = 0.1, 0 if self.defect != "bad-reset" else 5


@pytest.mark.parametrize(
    "defect, message",
    [
        ("accepts-strings", "accepted kl='0.1'"),
        ("half-advances", "was refused but changed the state"),
        ("nan-coef", "not a finite number"),
        ("forgets-step", "restored after"),
        ("bad-reset", "after reset"),
    ],
)
def test_the_conformance_suite_names_each_defect(defect, message):
    with pytest.raises(AssertionError, match=message):
        check_controller(lambda: Sloppy(defect))


def test_resolve_takes_a_name_with_settings_or_a_contract_object_and_names_what_is_wrong():
    made = registry.resolve("safe", {"use_gate": False}, default_settings={"kl_estimator": "k3"})
    assert made.config.use_gate is False and made.config.kl_estimator == "k3"
    fixed = registry.resolve("fixed-kl", None, default_settings={"kl_estimator": "k3"})
    assert fixed.decision.coef == 0.05  # a default for a setting it lacks is not passed
    own = FixedKL(0.2)
    assert registry.resolve(own) is own
    with pytest.raises(ValueError, match="already configured"):
        registry.resolve(own, {"coef": 0.1})
    with pytest.raises(ValueError, match=r"lacks \['decision', 'update'"):
        registry.resolve(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown controller"):
        registry.resolve("no-such-kl")
