"""Drive the KL coefficient β of TRL's ``GRPOTrainer`` or ``RLOOTrainer`` from a safecontrol
controller (SPEC §1.2, §4). Tested against trl 1.0.0, 1.12.0 and 1.16.0.

One line after building the trainer::

    trainer = GRPOTrainer(model=..., args=GRPOConfig(beta=0.001, ...), ...)  # or RLOOTrainer
    SafeBetaCallback.attach(trainer)        # kl-budget (safecontrol.registry.DEFAULT)
    trainer.train()                         # or train(resume_from_checkpoint=True)

Any controller of the registry by name, or any object keeping ``safecontrol.contract.Controller``::

    SafeBetaCallback.attach(trainer, "pid-lagrangian-kl", settings={"target": 0.2})
    SafeBetaCallback.attach(trainer, MyController())

What it does, and why:

- **Two trainers, one β.** GRPOTrainer adds β·k3 per token to its loss; RLOOTrainer subtracts
  β·Σ k1 over each completion from its reward when it scores a rollout batch (``trl_trainers``).
  By name, a controller with a ``kl_estimator`` setting gets the trainer's (k3, k1); a
  ``SafeController`` given as an object must already have it.
- **Measurements, as TRL computed them.** TRL records the KL per token (GRPO: every micro-batch;
  RLOO: every rollout batch), the entropy per token (every micro-batch), the mean reward and the
  mean completion length ``completions/mean_length`` (every rollout batch). From trl 1.9 on the
  KL and entropy are token-weighted over all processes; trl 1.0 to 1.8 average the processes'
  own means, so with unequal token counts per process the KL fed here is then process-weighted.
  The callback reads the values from TRL's metric lists (fast path) or from its logs (public
  path; ``source``, ``trl_measurements``) and averages them exactly as TRL's log does. Every
  process computes the same update from the same global values, so β agrees across ranks.
- **One controller update per rollout batch**, just before the optimizer step (never inside a
  gradient-accumulation window) of a window that generated one, so that step's limit is already
  this batch's; with TRL's defaults (``num_iterations=1``,
  ``steps_per_generation = gradient_accumulation_steps``) every optimizer step. Steps that reuse
  a rollout (``num_iterations`` > 1, or ``steps_per_generation`` larger than
  ``gradient_accumulation_steps``) hold β and carry their KL and entropy into the next update:
  stepping the controller once per pass over the same rollout would make its gains depend on the
  pass count (SPEC §2.2). On the logs path the update happens at each log whose window generated
  a rollout batch: with ``logging_steps=1`` the same updates, otherwise one per logging step.
- **β = max(decision.coef, min_beta).** A ``SafeDecision``'s ``coef`` is dP/dKL at the tracked
  KL, the β whose linear penalty has the SAFE penalty's slope there. Both trainers compute the
  reference log-probs and the KL only while ``trainer.beta != 0``: a β of 0 would blind the
  controller for good, and a β raised from 0 in the middle of a reused rollout would find no
  reference log-probs. ``min_beta`` (default 1e-6) keeps both working at a negligible penalty.
- **Start.** From the start of training ``trainer.beta`` is the controller's current decision (the
  neutral SAFE decision, coef 0, gives ``min_beta``). The config's ``beta`` must still be
  non-zero: with ``beta=0`` TRL loads no reference model, so the callback refuses it.
- **Logs.** ``safe/beta`` (the β set), ``safe/coef``; for a dead-band decision
  (``safecontrol.contract.DeadBandDecision``) ``safe/threshold`` and ``safe/gate``; for a SAFE
  decision ``safe/phase`` (``PHASE_CODES``) and ``safe/kl_predicted``. On the fast path they go
  into TRL's metric lists every optimizer step (TRL averages them over ``logging_steps``); on the
  logs path each log gets the values after its update. Every reporter of ``report_to`` (trackio,
  wandb, tensorboard, ...) receives them like TRL's own: ``attach`` puts the callback first.
- **Checkpoints.** ``on_save`` writes ``safecontrol_controller.json`` (``trl_state``) into
  ``checkpoint-N`` from the saving process, atomically. A resumed run (global step > 0 at
  ``on_train_begin``) reads it from ``output_dir/checkpoint-N``; for a checkpoint elsewhere call
  ``load_checkpoint(path)`` before ``train``. A corrupt or foreign file is refused with a
  ``ValueError`` naming it, changing nothing.

Every controller is driven through the contract (``safecontrol.contract``): once per rollout batch
``update(kl=, entropy=, reward=, n_steps=, tokens_per_sequence=)`` with ``kl`` TRL's mean KL per
token, ``n_steps`` the completions generated since the last update and ``tokens_per_sequence``
their mean length as TRL logged it (tokens up to and including EOS, the tokens the KL is averaged
over; in GRPO with a tool mask, the model's tokens only). A ``per_token`` controller's targets are
in TRL's unit; a ``per_sequence`` one (Ziegler's ``AdaptiveKL``) converts with the length. With
``mask_truncated_completions`` the KL is the mean over untruncated completions while the length
counts all, so a per-sequence KL is then an estimate.

**Step limit.** A decision with a finite ``max_preview_kl`` (kl-budget's, SAFE's) limits every
optimizer step: KL(π_before ‖ π_after), measured exactly on the step's last micro-batch, is held
to it by shrinking the step toward the weights it started from (``trl_step_limit``; one weight copy
and two gradient-free forwards of one micro-batch per step). Logged as ``safe/step_scale`` and
``safe/step_kl``. ``limit_steps=False`` runs without it (the ablation), and says so once.

**Entropy bonus (GRPO, trl >= 1.8).** ``entropy_controller=`` (e.g.
``EntropyTargetController(target=...)``) also sets ``trainer.entropy_coef`` (GRPO's loss is
``L_policy − entropy_coef · H``) to that controller's ``decision.coef``, updated with β from the
same entropy, saved in the same file and logged as ``safe/entropy_coef``. GRPOTrainer decides at
construction whether the bonus term exists (``entropy_coef != 0`` or adaptive mode), so build it
with ``GRPOConfig(entropy_coef=<small positive>)``; TRL's own ``use_adaptive_entropy`` is refused
(two controllers on one knob).

**Liger.** On trl <= 1.12 GRPOTrainer's ``use_liger_kernel=True`` freezes β at construction, so a
callback would steer nothing; it is refused there (``liger_freezes_beta``).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from typing import Any

from transformers import TrainerCallback

from .._validation import as_float
from ..atomic_files import write_json_atomic
from ..contract import Controller
from .trl_measurements import (
    PHASE_CODES,
    SOURCES,
    Measurements,
    decision_values,
    logged_measurements,
)
from .trl_state import (
    CHECKPOINT_FILE,
    MEAN_LENGTH,
    STATE_FORMAT_VERSION,
    checked_state,
    read_state_file,
)
from .trl_step_limit import StepLimit
from .trl_trainers import (
    check_trainer,
    checked_controller,
    checked_entropy_controller,
    liger_freezes_beta,
    trainer_kind,
)

__all__ = [
    "CHECKPOINT_FILE",
    "MEAN_LENGTH",
    "PHASE_CODES",
    "SOURCES",
    "STATE_FORMAT_VERSION",
    "SafeBetaCallback",
    "liger_freezes_beta",
]


class SafeBetaCallback(TrainerCallback):
    """Sets ``trainer.beta`` of a TRL ``GRPOTrainer`` or ``RLOOTrainer`` from a controller once
    per rollout batch.

    Args:
        trainer: the ``GRPOTrainer`` or ``RLOOTrainer``, built with ``beta > 0`` in its config so
            that it loads a reference model.
        controller: a ``safecontrol.contract.Controller`` (ours or your own class), or the
            name of a registered one (``safecontrol.registry.names()``); default
            ``safecontrol.registry.DEFAULT`` (kl-budget). A ``SafeController`` must be
            configured for the trainer's estimator (k3 for GRPO, k1 for RLOO); built by name, a
            controller with a ``kl_estimator`` setting gets it unless ``settings`` says
            otherwise.
        settings: with a name, the settings that differ from the registered defaults (e.g.
            ``{"target": 0.2}``); unknown settings are refused, listing the known ones.
        min_beta: floor on β, > 0 (default 1e-6); see the module docstring for why it exists.
        require_state_on_resume: when a run resumes and its checkpoint holds no controller state,
            raise (default) instead of warning and continuing with the controller as it is.
        entropy_controller: optional controller whose ``decision.coef`` is GRPO's entropy-bonus
            coefficient (e.g. ``EntropyTargetController(target=...)``); it sets
            ``trainer.entropy_coef``, updated with the KL controller from the same entropy. The
            trainer needs ``GRPOConfig(entropy_coef > 0, use_adaptive_entropy=False)``.
        limit_steps: apply the decision's per-step KL limit (default); ``False`` runs without
            it, with one warning when the controller asks for one.
        source: where the measurements are read (``SOURCES``). ``"auto"`` (default): TRL's
            metric lists, checked after the first optimizer step; where they lack a key the
            callback warns once and reads the logs instead. ``"logs"``: only the logs passed to
            ``on_log`` (one update per logging step that generated a rollout batch; the trainer
            must log). ``callback.measurements.source`` tells the path taken.

    Prefer ``SafeBetaCallback.attach(trainer, ...)``, which also adds the callback to the trainer.
    """

    def __init__(
        self,
        trainer: Any,
        controller: Controller | str | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
        min_beta: float = 1e-6,
        require_state_on_resume: bool = True,
        entropy_controller: Controller | None = None,
        limit_steps: bool = True,
        source: str = "auto",
    ) -> None:
        self.kind = trainer_kind(trainer)
        check_trainer(trainer, self.kind)
        self.min_beta = _positive_min_beta(min_beta)
        self.measurements = Measurements(trainer, self.kind.trainer, source)
        self.controller = checked_controller(controller, settings, self.kind)
        self.entropy_controller = checked_entropy_controller(trainer, self.kind, entropy_controller)
        self.trainer = trainer
        self.require_state_on_resume = bool(require_state_on_resume)
        self._global_step = 0
        self._restored_step: int | None = None
        self.step_limit = StepLimit(trainer, limit_steps, type(self.controller).__name__)

    @classmethod
    def attach(
        cls, trainer: Any, controller: Controller | str | None = None, **kwargs: Any
    ) -> SafeBetaCallback:
        """Build the callback (arguments as for the constructor) and add it to ``trainer``, first
        among its callbacks, so that every other one (the reporters included) sees what it sets
        and, on the logs path, the ``safe/*`` values it adds to a log."""
        callbacks = trainer.callback_handler.callbacks
        if any(isinstance(cb, cls) for cb in callbacks):
            raise ValueError(f"trainer already has a {cls.__name__}; two would both set beta")
        callback = cls(trainer, controller, **kwargs)
        callbacks.insert(0, callback)
        return callback

    @property
    def beta(self) -> float:
        """The β the controller's current decision asks for: max(decision.coef, min_beta)."""
        coef = float(self.controller.decision.coef)
        if not (math.isfinite(coef) and coef >= 0.0):
            raise ValueError(f"the controller decided coef = {coef!r}; beta must be finite, >= 0")
        return max(coef, self.min_beta)

    @property
    def entropy_coef(self) -> float | None:
        """The entropy-bonus coefficient the entropy controller decides; None without one."""
        if self.entropy_controller is None:
            return None
        coef = float(self.entropy_controller.decision.coef)
        if not (math.isfinite(coef) and coef >= 0.0):
            raise ValueError(
                f"the entropy controller decided coef = {coef!r}; entropy_coef must be finite, >= 0"
            )
        return coef

    # ------------------------------------------------------------------ TRL hooks
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = state.global_step
        if self._restored_step is None and step > 0:  # resuming: restore the controller
            folder = os.path.join(args.output_dir, f"checkpoint-{step}")
            if os.path.isfile(os.path.join(folder, CHECKPOINT_FILE)):
                self.load_checkpoint(folder)
            else:
                message = (
                    f"training resumes at global step {step} but {folder} holds no "
                    f"{CHECKPOINT_FILE}; if the checkpoint lies outside output_dir, call "
                    "load_checkpoint(path) before train()"
                )
                if self.require_state_on_resume:
                    raise FileNotFoundError(message)
                warnings.warn(message + "; continuing with the controller as it is", stacklevel=2)
        if self._restored_step is not None and self._restored_step != step:
            raise ValueError(
                f"the controller state loaded is from global step {self._restored_step}, "
                f"but training starts at global step {step}"
            )
        self._restored_step = None
        self._global_step = step
        self.measurements.lists.start()
        self.trainer.beta = self.beta
        self._set_entropy_coef()

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Every micro-batch of this optimizer step has run, so TRL's lists hold its rollout
        batch's measurements: update once per rollout batch, then limit the step with the decision
        just taken (the first step of a run is limited too, as in the reference trainer)."""
        if self.measurements.step_end():
            self._update()
        self.step_limit.before(self.controller.decision)

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step_limit.after(self.controller.decision)

    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.measurements.micro_step_end()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """After the optimizer step: log the decision it was taken with."""
        self._global_step = state.global_step
        if self.measurements.source == "metrics":
            self.measurements.lists.append(self._decision_values())

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        """On the logs path, at a training log: feed the window's means, update if it generated
        a rollout batch, and add the decision to the log."""
        if self.measurements.source != "logs" or logged_measurements(logs) is None:
            return
        if self.measurements.log(logs, state.global_step):
            self._update()
        values = self._decision_values()
        logs.update(values)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(values)  # the copy the trainer keeps of this log

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not args.should_save:
            return
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if not os.path.isdir(folder):
            warnings.warn(
                f"no checkpoint folder {folder}; the controller state was not saved", stacklevel=2
            )
            return
        write_json_atomic(os.path.join(folder, CHECKPOINT_FILE), self.state_dict(), indent=1)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Plain JSON: the controller's ``state_dict``, β, and the measurements not yet used."""
        return {
            "format_version": STATE_FORMAT_VERSION,
            "type": type(self).__name__,
            "global_step": self._global_step,
            "beta": self.trainer.beta,
            "min_beta": self.min_beta,
            "rollouts": self.measurements.rollouts,
            "pending": {key: list(values) for key, values in self.measurements.pending.items()},
            "controller": self.controller.state_dict(),
            "entropy_controller": (
                None if self.entropy_controller is None else self.entropy_controller.state_dict()
            ),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s snapshot and set ``trainer.beta`` from the restored decision.

        Every field is checked before anything changes (``trl_state.checked_state``), then the
        controllers' states, which the controllers validate. On any ``ValueError`` (a malformed
        field, or a controller that refuses the state: another type or config) nothing changes.
        """
        state = checked_state(
            state_dict,
            type(self).__name__,
            self.entropy_controller is not None,
            self.min_beta,
            self.kind.kl_estimator,
        )
        previous = self.controller.state_dict()
        previous_entropy = None
        self.controller.load_state_dict(state.controller)  # refused: unchanged
        try:
            if self.entropy_controller is not None:
                previous_entropy = self.entropy_controller.state_dict()
                self.entropy_controller.load_state_dict(state.entropy_controller)
            beta, entropy_coef = self.beta, self.entropy_coef
        except ValueError:
            self.controller.load_state_dict(previous)
            if self.entropy_controller is not None and previous_entropy is not None:
                self.entropy_controller.load_state_dict(previous_entropy)
            raise
        self.measurements.pending, self.measurements.rollouts = state.pending, state.rollouts
        self._global_step = state.global_step
        self.trainer.beta = beta
        if entropy_coef is not None:
            self.trainer.entropy_coef = entropy_coef

    def load_checkpoint(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        """Restore the state saved in ``checkpoint_dir``; training must resume at its step.

        A file that is not JSON, or whose state is refused, raises ``ValueError`` naming the
        file; nothing changes then.
        """
        path = os.path.join(checkpoint_dir, CHECKPOINT_FILE)
        state = read_state_file(path)
        try:
            self.load_state_dict(state)
        except ValueError as exc:
            raise ValueError(
                f"controller state file {path} is corrupt or not for this callback: {exc}"
            ) from exc
        self._restored_step = self._global_step

    # ------------------------------------------------------------------ internals
    def _update(self) -> None:
        measured = self.measurements.means()
        if measured["tokens_per_sequence"] is None and self.controller.kl_unit == "per_sequence":
            raise RuntimeError(
                f"{self.kind.trainer} logged no {MEAN_LENGTH!r} for this rollout batch, so the KL "
                f"per sequence that {type(self.controller).__name__} (kl_unit 'per_sequence') "
                "reads cannot be formed from TRL's KL per token; use a per-token controller"
            )
        previous = self.controller.state_dict()
        self.controller.update(**measured)
        if self.entropy_controller is not None:
            try:  # one update of both or of neither
                self.entropy_controller.update(**measured)
            except Exception:
                self.controller.load_state_dict(previous)
                raise
        self.measurements.clear()
        self.trainer.beta = self.beta
        self._set_entropy_coef()

    def _set_entropy_coef(self) -> None:
        entropy_coef = self.entropy_coef
        if entropy_coef is not None:
            self.trainer.entropy_coef = entropy_coef

    def _decision_values(self) -> dict[str, float]:
        entropy_coef = None if self.entropy_controller is None else self.trainer.entropy_coef
        values = decision_values(self.controller.decision, self.trainer.beta, entropy_coef)
        return {**values, **self.step_limit.log_values()}


def _positive_min_beta(min_beta: Any) -> float:
    value = as_float("min_beta", min_beta)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(
            f"min_beta must be finite and > 0 (TRL stops measuring the KL at beta = 0), "
            f"got {min_beta!r}"
        )
    return value
