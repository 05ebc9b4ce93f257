"""The TRL trainers whose β ``SafeBetaCallback`` drives, and what each must be built with.

- ``GRPOTrainer`` adds β·k3 per token to its loss (k3 = r − 1 − log r, r = π_ref/π_θ; Schulman's
  estimator, always >= 0), at every micro-batch.
- ``RLOOTrainer`` subtracts β·Σ_t k1_t (k1 = log π_θ_old − log π_ref per token, may be negative)
  from each completion's reward when the rollout batch is scored, before the leave-one-out
  baseline (Ahmadian et al. 2024): the in-reward penalty of Ziegler et al. and of verl's
  ``use_kl_in_reward``.

Both log the KL they penalise as its mean per token (``kl``), so a controller sees the unit of
its contract (``safecontrol.contract``) with the trainer's estimator. Both load a reference model
only when built with β != 0, and measure the KL only while ``trainer.beta != 0``.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.version import Version

try:
    from accelerate.utils import is_peft_model
    from trl import GRPOTrainer, RLOOTrainer  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - exercised only where TRL is absent
    raise ImportError(
        "safecontrol.integrations.trl needs TRL; install it with: pip install 'safecontrol[trl]'"
    ) from exc

from .. import registry
from ..contract import Controller
from ..entropy_target import EntropyTargetController
from ..safe import SafeController

LAST_LIGER_FROZEN_TRL = (1, 12)
"""The newest TRL minor release whose GRPOTrainer copies β into Liger's loss at construction."""
FIRST_ENTROPY_BONUS_TRL = "1.8"
"""The first TRL release whose ``GRPOConfig`` has ``entropy_coef``."""


@dataclass(frozen=True)
class TrainerKind:
    """What differs between the trainers the callback drives."""

    trainer: str
    """The trainer's class name (``GRPOTrainer``)."""
    config: str
    """Its config's class name (``GRPOConfig``)."""
    kl_estimator: str
    """The estimator of the KL it logs and penalises (SafeConfig's ``kl_estimator``)."""
    liger_loss: bool
    """Whether ``use_liger_kernel`` replaces its loss (where β may be frozen)."""
    entropy_bonus: bool
    """Whether it can add an entropy bonus ``entropy_coef · H`` to its loss."""


GRPO = TrainerKind("GRPOTrainer", "GRPOConfig", "k3", liger_loss=True, entropy_bonus=True)
RLOO = TrainerKind("RLOOTrainer", "RLOOConfig", "k1", liger_loss=False, entropy_bonus=False)


def trainer_kind(trainer: Any) -> TrainerKind:
    """The kind of ``trainer``; a ``ValueError`` for any other class."""
    if isinstance(trainer, GRPOTrainer):
        return GRPO
    if isinstance(trainer, RLOOTrainer):
        return RLOO
    raise ValueError(
        f"trainer must be a trl.GRPOTrainer or trl.RLOOTrainer, got {type(trainer).__name__}"
    )


def liger_freezes_beta(trl_version: str) -> bool:
    """Whether GRPOTrainer of TRL ``trl_version`` with ``use_liger_kernel=True`` freezes β.

    Up to trl 1.12 the Liger GRPO loss is built once with the configured β and never reads
    ``trainer.beta`` again, so no callback can steer it. (RLOOTrainer applies β to the reward
    itself, Liger or not.)
    """
    return Version(trl_version).release[:2] <= LAST_LIGER_FROZEN_TRL


def check_trainer(trainer: Any, kind: TrainerKind) -> None:
    """Refuse a trainer whose β the callback could not drive: no reference model, frozen Liger."""
    if trainer.beta == 0.0 or (trainer.ref_model is None and not is_peft_model(trainer.model)):
        config_beta = getattr(trainer.args, "beta", None)
        raise ValueError(
            f"{kind.trainer} has no reference model ({kind.config}.beta = {config_beta!r}, "
            f"trainer.beta = {trainer.beta!r}; with beta = 0 it loads none), so there is no KL "
            f"to measure or penalise and no controller can steer it. Build the trainer with "
            f"{kind.config}(beta=...) > 0 (e.g. 0.001); SafeBetaCallback sets trainer.beta itself "
            "from the first step on."
        )
    if kind.liger_loss and getattr(trainer.args, "use_liger_kernel", False):
        trl_version = importlib.metadata.version("trl")
        if liger_freezes_beta(trl_version):
            raise ValueError(
                f"{kind.config}(use_liger_kernel=True) on trl {trl_version}: this release builds "
                "Liger's GRPO loss with beta fixed at construction, so beta cannot be driven; "
                "upgrade TRL (> 1.12) or turn Liger off (use_liger_kernel=False)"
            )


def checked_controller(
    controller: Any, settings: Mapping[str, Any] | None, kind: TrainerKind
) -> Controller:
    """The KL controller (``registry.resolve``; by name with the trainer's estimator as default)."""
    checked = registry.resolve(
        registry.DEFAULT if controller is None else controller,
        settings,
        default_settings={"kl_estimator": kind.kl_estimator},
    )
    if isinstance(checked, EntropyTargetController):
        raise ValueError(
            "EntropyTargetController decides an entropy-bonus coefficient, not a KL coefficient; "
            "pass it as entropy_controller=..."
        )
    if isinstance(checked, SafeController) and checked.config.kl_estimator != kind.kl_estimator:
        raise ValueError(
            f"{kind.trainer} measures the per-token {kind.kl_estimator} KL; build the "
            f"SafeController with SafeConfig(kl_estimator={kind.kl_estimator!r}), got "
            f"kl_estimator={checked.config.kl_estimator!r}"
        )
    return checked


def checked_entropy_controller(
    trainer: Any, kind: TrainerKind, controller: Any
) -> Controller | None:
    """The entropy controller, once the trainer is known to apply ``trainer.entropy_coef``."""
    if controller is None:
        return None
    if not kind.entropy_bonus:
        raise ValueError(
            f"{kind.trainer} adds no entropy bonus to its loss ({kind.config} has no "
            "entropy_coef), so entropy_controller has nothing to set; drop it"
        )
    args = trainer.args
    if getattr(args, "use_adaptive_entropy", False):
        raise ValueError(
            f"{kind.config}(use_adaptive_entropy=True) makes TRL steer entropy_coef itself, and "
            f"entropy_controller={type(controller).__name__} would steer it too: two controllers "
            "on one knob. Turn use_adaptive_entropy off or drop entropy_controller"
        )
    config_coef = getattr(args, "entropy_coef", None)
    if config_coef is None:
        trl_version = importlib.metadata.version("trl")
        raise ValueError(
            f"{kind.config} of trl {trl_version} has no entropy_coef (no entropy bonus), so "
            f"entropy_controller has nothing to set; upgrade TRL (>= {FIRST_ENTROPY_BONUS_TRL})"
        )
    if config_coef == 0.0:
        # GRPOTrainer fixes at construction whether the bonus term exists (entropy_coef != 0 or
        # adaptive mode); a coefficient set later on a trainer built with 0 would be ignored.
        raise ValueError(
            f"{kind.trainer} was built with {kind.config}(entropy_coef=0.0), so it adds no "
            "entropy bonus to its loss and entropy_controller could not change that; build it "
            f"with {kind.config}(entropy_coef=<small positive>, e.g. 0.001): the callback sets "
            "trainer.entropy_coef from the controller from the first step on"
        )
    if isinstance(controller, str):
        raise ValueError(
            f"entropy_controller must be a controller object (e.g. EntropyTargetController), "
            f"got the name {controller!r}"
        )
    return registry.resolve(controller)
