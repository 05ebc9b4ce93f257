"""SafeBetaCallback's construction on the real TRL GRPOTrainer: controllers by name, and every
refusal naming what is wrong (no reference model, a wrong estimator, a broken contract, Liger)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import warnings
from types import SimpleNamespace

import pytest

pytest.importorskip("trl")

from integrations.trl_tiny import LenientController, make_trainer, tiny_model_dir
from toy_controller import ToyDecision
from trl import GRPOTrainer

from safecontrol import (
    BudgetKL,
    EntropyTargetController,
    FixedKL,
    SafeConfig,
    SafeController,
    registry,
)
from safecontrol.integrations.trl import SafeBetaCallback, liger_freezes_beta


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_model_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def idle_trainer(model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> GRPOTrainer:
    return make_trainer(model_dir, tmp_path_factory.mktemp("idle"))


def test_safe_by_name_gets_trls_k3_estimator_unless_its_settings_say_otherwise(idle_trainer):
    callback = SafeBetaCallback(idle_trainer, "safe", settings={"penalty_coef": 10.0})
    assert isinstance(callback.controller, SafeController)
    assert callback.controller.config.kl_estimator == "k3"
    assert callback.controller.config.penalty_coef == 10.0
    with pytest.raises(ValueError, match="'k1'"):
        SafeBetaCallback(idle_trainer, "safe", settings={"kl_estimator": "k1"})


def test_an_unknown_name_is_refused_listing_the_registered_ones(idle_trainer):
    with pytest.raises(ValueError, match=r"unknown controller 'saef'.*pid-lagrangian-kl"):
        SafeBetaCallback(idle_trainer, "saef")


def test_an_unknown_setting_is_refused_listing_the_known_ones(idle_trainer):
    with pytest.raises(ValueError, match=r"unknown settings \['targte'\].*target"):
        SafeBetaCallback(idle_trainer, "pid-lagrangian-kl", settings={"targte": 0.2})


def test_settings_with_a_controller_instance_are_refused(idle_trainer):
    with pytest.raises(ValueError, match="registry name"):
        SafeBetaCallback(idle_trainer, FixedKL(0.02), settings={"coef": 0.03})


def test_a_dead_band_decision_of_your_own_logs_its_threshold_and_gate(idle_trainer):
    @dataclasses.dataclass(frozen=True)
    class ToyDeadBand(ToyDecision):
        threshold: float = 0.2
        gate: float = 1.5
        penalty_coef: float = 0.1

    class DeadBandController(LenientController):
        decision = ToyDeadBand(coef=0.03)

    callback = SafeBetaCallback(idle_trainer, DeadBandController())
    assert callback._decision_values() == {
        "safe/beta": idle_trainer.beta,
        "safe/coef": 0.03,
        "safe/threshold": 0.2,
        "safe/gate": 1.5,
    }


# ---------------------------------------------------------------------- refusals
def test_starting_beta_zero_is_refused_naming_the_reference_model(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path, beta=0.0)
    with pytest.raises(ValueError, match="reference model"):
        SafeBetaCallback.attach(trainer)
    trainer.beta = 0.04  # a beta raised after construction does not load a reference model
    with pytest.raises(ValueError, match="reference model"):
        SafeBetaCallback.attach(trainer)
    assert not any(isinstance(cb, SafeBetaCallback) for cb in trainer.callback_handler.callbacks)


@pytest.mark.parametrize("bad", [0.0, -1e-3, float("nan"), float("inf")])
def test_min_beta_must_be_positive_and_is_named(idle_trainer, bad):
    with pytest.raises(ValueError, match="min_beta"):
        SafeBetaCallback(idle_trainer, min_beta=bad)


def test_safe_controller_must_use_the_k3_estimator(idle_trainer):
    with pytest.raises(ValueError, match="'k1'"):
        SafeBetaCallback(idle_trainer, SafeController(SafeConfig(kl_estimator="k1")))


def test_entropy_bonus_controller_is_refused(idle_trainer):
    with pytest.raises(ValueError, match="entropy-bonus"):
        SafeBetaCallback(idle_trainer, EntropyTargetController(target=1.0))


def test_object_without_controller_methods_is_refused(idle_trainer):
    with pytest.raises(ValueError, match="lacks"):
        SafeBetaCallback(idle_trainer, object())


def test_a_controller_missing_part_of_the_contract_is_refused_naming_the_parts(idle_trainer):
    partial = SimpleNamespace(decision=None, update=print, state_dict=dict, load_state_dict=print)
    with pytest.raises(ValueError, match=r"lacks \['reset', 'kl_unit'\]"):
        SafeBetaCallback(idle_trainer, partial)

    class PerBatch(LenientController):
        kl_unit = "per_batch"

    with pytest.raises(ValueError, match="kl_unit must be one of"):
        SafeBetaCallback(idle_trainer, PerBatch())


def test_second_callback_on_one_trainer_is_refused(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path)
    SafeBetaCallback.attach(trainer)
    with pytest.raises(ValueError, match="already has"):
        SafeBetaCallback.attach(trainer)


def test_default_controller_is_the_registry_default_and_limits_steps(idle_trainer):
    callback = SafeBetaCallback(idle_trainer)
    assert registry.DEFAULT == "kl-budget"
    assert isinstance(callback.controller, BudgetKL)
    assert callback.step_limit.enabled  # its per-step KL limit is applied, not dropped


def test_the_published_safe_recipe_is_refused_by_name_not_run_as_safe(idle_trainer):
    """safe-published is the reference trainer's recipe (a detached penalty no TRL loss can
    apply): asked for by name, the callback refuses instead of running SAFE's penalty."""
    with pytest.raises(ValueError, match="unknown controller 'safe-published'"):
        SafeBetaCallback(idle_trainer, "safe-published")


# ---------------------------------------------------------------------- Liger
@pytest.mark.parametrize(
    ("version", "frozen"),
    [
        ("0.19.1", True),
        ("1.0.0", True),
        ("1.12.0", True),
        ("1.12.3", True),
        ("1.13.0", False),
        ("1.13.0.dev0", False),
        ("1.16.0", False),
        ("2.0.0", False),
    ],
)
def test_liger_freezes_beta_up_to_trl_1_12(version, frozen):
    assert liger_freezes_beta(version) is frozen


def test_liger_on_the_installed_trl_is_refused_exactly_where_it_freezes_beta(model_dir, tmp_path):
    """From trl 1.13 on, building a trainer with Liger needs no liger-kernel package (Liger then
    patches the model at train time and leaves beta to the trainer)."""
    trl_version = importlib.metadata.version("trl")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # Liger is deprecated in newer TRL
            trainer = make_trainer(model_dir, tmp_path, use_liger_kernel=True)
    except ImportError:  # up to trl 1.12, building the Liger loss needs liger-kernel installed
        trainer = make_trainer(model_dir, tmp_path)
        trainer.args.use_liger_kernel = True  # as where liger-kernel is installed
    if liger_freezes_beta(trl_version):
        with pytest.raises(ValueError, match=rf"use_liger_kernel=True\) on trl {trl_version}"):
            SafeBetaCallback(trainer)
    else:
        SafeBetaCallback(trainer)


@pytest.mark.parametrize("bad", ["log", "metrics", None])
def test_an_unknown_source_is_refused_listing_the_sources(idle_trainer, bad):
    with pytest.raises(ValueError, match=r"source must be one of \('auto', 'logs'\)"):
        SafeBetaCallback(idle_trainer, source=bad)


def test_attach_puts_the_callback_before_the_trainers_own_callbacks(model_dir, tmp_path):
    pytest.importorskip("tensorboard")
    trainer = make_trainer(model_dir, tmp_path, report_to=["tensorboard"])
    reporters = list(trainer.callback_handler.callbacks)
    callback = SafeBetaCallback.attach(trainer)
    assert trainer.callback_handler.callbacks == [callback, *reporters]


def test_entropy_controller_where_grpo_has_no_entropy_bonus_is_refused_naming_the_release(
    idle_trainer,
):
    if hasattr(idle_trainer.args, "entropy_coef"):
        pytest.skip("this TRL's GRPOConfig has entropy_coef (trl >= 1.8)")
    with pytest.raises(ValueError, match=r"has no entropy_coef.*upgrade TRL \(>= 1\.8\)"):
        SafeBetaCallback(idle_trainer, entropy_controller=EntropyTargetController(target=1.0))


def test_reading_the_logs_of_a_trainer_that_does_not_log_is_refused(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path, logging_strategy="no")
    with pytest.raises(ValueError, match="logging_strategy='no'"):
        SafeBetaCallback(trainer, source="logs")
    SafeBetaCallback(trainer)  # the metric lists need no logs
