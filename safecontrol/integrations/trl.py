"""Drive TRL ``GRPOTrainer``'s KL coefficient β from a safecontrol controller (SPEC §1.2, §4).

One line after building the trainer::

    trainer = GRPOTrainer(model=..., args=GRPOConfig(beta=0.001, ...), ...)
    SafeBetaCallback.attach(trainer)        # SafeController(SafeConfig(kl_estimator="k3"))
    trainer.train()                         # or train(resume_from_checkpoint=True)

Any controller of the registry by name, or any object keeping ``safecontrol.contract.Controller``::

    SafeBetaCallback.attach(trainer, "pid-lagrangian-kl", settings={"target": 0.2})
    SafeBetaCallback.attach(trainer, MyController())

What it does, and why:

- **Measurements, as TRL computed them.** For every micro-batch GRPOTrainer appends the per-token
  k3 KL to the reference and the per-token entropy to ``trainer._metrics["train"]["kl"]`` and
  ``["entropy"]``: in trl 1.16 (the release tested here) each is token-weighted over all
  processes (sums and token counts reduced together); trl 1.0 averages the processes' own means
  instead, so with several processes holding unequal token counts the KL fed here is then a
  process-weighted mean. For every generated
  rollout batch it appends the mean reward and the mean completion length (tokens per completion,
  over all processes) to ``["reward"]`` and ``["completions/mean_length"]``. At the end of
  each optimizer step (``on_step_end``, never inside a gradient-accumulation window) the callback
  takes the values appended since it last looked, by remembering each list and its length (so
  TRL clearing the lists at every log does not matter), and averages them exactly as TRL's log
  does. Every process computes the same update from the same global values, so β agrees across
  ranks without communication.
- **One controller update per rollout batch.** The update happens at the end of an optimizer step
  whose window generated a new rollout batch; with TRL's defaults (``num_iterations=1``,
  ``steps_per_generation = gradient_accumulation_steps``) that is every optimizer step. When TRL
  reuses a rollout (``num_iterations`` > 1, or ``steps_per_generation`` larger than
  ``gradient_accumulation_steps``) the steps that train on it hold β and carry their KL and
  entropy into the next update: stepping the controller once per pass over the same rollout would
  make its gains depend on the pass count (SPEC §2.2).
- **β = max(decision.coef, min_beta).** GRPO adds β·k3 per token to its loss; a ``SafeDecision``'s
  ``coef`` is dP/dKL at the tracked KL, the β whose linear penalty has the SAFE penalty's slope
  there. The floor exists because GRPOTrainer computes the reference log-probs and the KL only
  while ``trainer.beta != 0``: a β of 0 would blind the controller for good, and a β raised from 0
  in the middle of a reused rollout would find no reference log-probs. ``min_beta`` (default 1e-6)
  keeps both working at a negligible penalty.
- **Start.** From the start of training ``trainer.beta`` is the controller's current decision (the
  neutral SAFE decision, coef 0, gives ``min_beta``). ``GRPOConfig(beta=...)`` must still be
  non-zero: with ``beta=0`` GRPOTrainer loads no reference model, so the callback refuses it.
- **Logs.** Every optimizer step ``safe/beta`` (the β set) and ``safe/coef``; for a dead-band
  decision (``safecontrol.contract.DeadBandDecision``) ``safe/threshold`` and ``safe/gate``; for a
  SAFE decision also ``safe/phase`` (``PHASE_CODES``: 0 warmup, 1 climbing, 2 plateau,
  3 converged) and ``safe/kl_predicted``. They go into TRL's metrics, so TRL averages them over
  ``logging_steps`` and every reporter receives them like its own.
- **Checkpoints.** ``on_save`` writes ``safecontrol_controller.json`` (the controller's
  ``state_dict``, β and the measurements not yet used) into ``checkpoint-N`` from the saving
  process, through a temporary file and ``os.replace``. A resumed run (global step > 0 at
  ``on_train_begin``) reads it from ``output_dir/checkpoint-N``; for a checkpoint outside
  ``output_dir`` call ``load_checkpoint(path)`` before ``train``. Every field is validated
  first: a corrupt or foreign file is refused with a ``ValueError`` naming it, changing nothing.

Every controller is driven through the contract (``safecontrol.contract``): once per rollout batch
``update(kl=, entropy=, reward=, n_steps=, tokens_per_sequence=)`` with ``kl`` TRL's mean k3 per
token, ``n_steps`` the completions in the rollout batches since the last update and
``tokens_per_sequence`` their mean length as TRL logged it (``completions/mean_length``: tokens up
to and including EOS, model tokens only when a tool mask is used, the tokens the KL is averaged
over). A ``per_token`` controller's targets are in TRL's unit; a ``per_sequence`` one (Ziegler's
``AdaptiveKL``) converts with the length itself. With ``mask_truncated_completions`` the KL is the
mean over untruncated completions while the length counts all, so a per-sequence KL is then an
estimate. Only ``decision.coef`` is applied: a trainer callback cannot preview and shrink an
optimizer step, so a decision's ``step_scale`` (SAFE's preview limit) is not used here.

**Entropy bonus.** With ``entropy_controller=`` (e.g. ``EntropyTargetController(target=...)``) the
callback also sets ``trainer.entropy_coef`` (GRPO's loss is ``L_policy − entropy_coef · H``) to
that controller's ``decision.coef``, updated in the same place as β, from the same entropy, and
saved in the same file; it is logged as ``safe/entropy_coef``. GRPOTrainer decides at
construction whether the bonus term exists at all (``entropy_coef != 0`` or adaptive mode), so
the trainer must be built with ``GRPOConfig(entropy_coef=<small positive>)``; TRL's own
``use_adaptive_entropy`` is refused (two controllers on one knob).

**Liger.** On trl ≤ 1.12 ``use_liger_kernel=True`` freezes β at construction, so a callback
would steer nothing; it is refused there (``liger_freezes_beta``).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import warnings
from collections.abc import Mapping
from typing import Any

from packaging.version import Version

try:
    from accelerate.utils import is_peft_model
    from transformers import TrainerCallback
    from trl import GRPOTrainer  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - exercised only where TRL is absent
    raise ImportError(
        "safecontrol.integrations.trl needs TRL; install it with: pip install 'safecontrol[trl]'"
    ) from exc

from .. import registry
from .._atomic import write_json_atomic
from .._validation import as_float, finite, non_negative, non_negative_int, positive
from ..contract import Controller, DeadBandDecision
from ..decision import SafeDecision
from ..entropy_target import EntropyTargetController
from ..phase import Phase
from ..safe import SafeController

CHECKPOINT_FILE = "safecontrol_controller.json"
"""The file ``on_save`` writes into each ``checkpoint-N`` folder."""
STATE_FORMAT_VERSION = 3
"""2 adds ``pending["completions/mean_length"]`` (a version-1 state loads with that list empty);
3 adds ``entropy_controller`` (a version-1 or -2 state loads as one without it)."""
MEAN_LENGTH = "completions/mean_length"
"""GRPOTrainer's metric: the mean completion length of a rollout batch, over all processes."""
MEASURED = ("kl", "entropy", "reward", MEAN_LENGTH)
"""The keys of ``trainer._metrics["train"]`` the controller is fed from."""
DEFAULT_CONTROLLER = "safe"
"""The registry name used when no controller is given (with ``kl_estimator="k3"``)."""
STATE_KEYS = (
    "format_version",
    "type",
    "global_step",
    "beta",
    "min_beta",
    "rollouts",
    "pending",
    "controller",
    "entropy_controller",
)
"""The keys of ``SafeBetaCallback.state_dict()`` (format 3; formats 1 and 2 lack the last)."""
LAST_LIGER_FROZEN_TRL = (1, 12)
"""The newest TRL minor release whose GRPOTrainer copies β into Liger's loss at construction."""
PHASE_CODES = {phase.value: float(code) for code, phase in enumerate(Phase)}
"""``safe/phase`` as a number: warmup 0, climbing 1, plateau 2, converged 3."""


def liger_freezes_beta(trl_version: str) -> bool:
    """Whether GRPOTrainer of TRL ``trl_version`` with ``use_liger_kernel=True`` freezes β.

    Up to trl 1.12 the Liger GRPO loss is built once with the configured β and never reads
    ``trainer.beta`` again, so no callback can steer it.
    """
    return Version(trl_version).release[:2] <= LAST_LIGER_FROZEN_TRL


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)  # TRL's own log formula, so fed and logged values agree


class SafeBetaCallback(TrainerCallback):
    """Sets ``trainer.beta`` of a TRL ``GRPOTrainer`` from a controller once per rollout batch.

    Args:
        trainer: the ``GRPOTrainer``, built with ``GRPOConfig(beta > 0)`` so that it loads a
            reference model.
        controller: a ``safecontrol.contract.Controller`` (ours or your own class), or the
            name of a registered one (``safecontrol.registry.names()``); default ``"safe"``,
            i.e. ``SafeController(SafeConfig(kl_estimator="k3"))``. A ``SafeController`` must be
            configured for the k3 estimator TRL uses; built by name, a controller with a
            ``kl_estimator`` setting gets ``"k3"`` unless ``settings`` says otherwise.
        settings: with a name, the settings that differ from the registered defaults (e.g.
            ``{"target": 0.2}``); unknown settings are refused, listing the known ones.
        min_beta: floor on β, > 0 (default 1e-6); see the module docstring for why it exists.
        require_state_on_resume: when a run resumes and its checkpoint holds no controller state,
            raise (default) instead of warning and continuing with the controller as it is.
        entropy_controller: optional controller whose ``decision.coef`` is GRPO's entropy-bonus
            coefficient (e.g. ``EntropyTargetController(target=...)``); it sets
            ``trainer.entropy_coef``, updated with the KL controller from the same entropy. The
            trainer needs ``GRPOConfig(entropy_coef > 0, use_adaptive_entropy=False)``.

    Prefer ``SafeBetaCallback.attach(trainer, ...)``, which also adds the callback to the trainer.
    """

    def __init__(
        self,
        trainer: GRPOTrainer,
        controller: Controller | str | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
        min_beta: float = 1e-6,
        require_state_on_resume: bool = True,
        entropy_controller: Controller | None = None,
    ) -> None:
        if not isinstance(trainer, GRPOTrainer):
            raise ValueError(f"trainer must be a trl.GRPOTrainer, got {type(trainer).__name__}")
        if trainer.beta == 0.0 or (trainer.ref_model is None and not is_peft_model(trainer.model)):
            config_beta = getattr(trainer.args, "beta", None)  # typed as TrainingArguments
            raise ValueError(
                f"GRPOTrainer has no reference model (GRPOConfig.beta = {config_beta!r}, "
                f"trainer.beta = {trainer.beta!r}; with beta = 0 it loads none), so there is no KL "
                "to measure or penalise and no controller can steer it. Build the trainer with "
                "GRPOConfig(beta=...) > 0 (e.g. 0.001); SafeBetaCallback sets trainer.beta itself "
                "from the first step on."
            )
        _refuse_frozen_liger_beta(trainer.args)
        self.min_beta = _positive_min_beta(min_beta)
        self.controller = _checked_controller(controller, settings)
        self.entropy_controller = _checked_entropy_controller(trainer, entropy_controller)
        self.trainer = trainer
        self.require_state_on_resume = bool(require_state_on_resume)
        self._pending: dict[str, list[float]] = {key: [] for key in MEASURED}
        self._rollouts = 0  # rollout batches generated since the last update
        self._seen: dict[str, tuple[list[float], int]] = {}
        self._global_step = 0
        self._restored_step: int | None = None

    @classmethod
    def attach(
        cls, trainer: GRPOTrainer, controller: Controller | str | None = None, **kwargs: Any
    ) -> SafeBetaCallback:
        """Build the callback (arguments as for the constructor) and add it to ``trainer``."""
        if any(isinstance(cb, cls) for cb in trainer.callback_handler.callbacks):
            raise ValueError(f"trainer already has a {cls.__name__}; two would both set beta")
        callback = cls(trainer, controller, **kwargs)
        trainer.add_callback(callback)
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
        metrics = self.trainer._metrics["train"]
        self._seen = {key: (metrics[key], len(metrics[key])) for key in MEASURED if key in metrics}
        self.trainer.beta = self.beta
        self._set_entropy_coef()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """At the optimizer-step boundary: collect this step's metrics, update once per rollout."""
        self._global_step = state.global_step
        for key in MEASURED:
            new = self._take_new(key)
            if key == "reward":
                self._rollouts += len(new)
                new = [r for r in new if not math.isnan(r)]  # unscorable batches, as TRL's log
            self._pending[key].extend(new)
        if self._rollouts:
            self._update(n_completions=self._rollouts * args.generation_batch_size)
        self._log_decision()

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
            "rollouts": self._rollouts,
            "pending": {key: list(values) for key, values in self._pending.items()},
            "controller": self.controller.state_dict(),
            "entropy_controller": (
                None if self.entropy_controller is None else self.entropy_controller.state_dict()
            ),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s snapshot and set ``trainer.beta`` from the restored decision.

        Every field is checked before anything changes: the type and version; ``global_step``
        and ``rollouts`` non-negative integers; ``beta`` finite, >= 0; ``min_beta`` finite, > 0;
        ``pending`` exactly the lists ``MEASURED`` of finite numbers (what the callback
        collects: TRL's NaN rewards of unscorable batches are dropped on arrival; a version-1
        state has no ``completions/mean_length`` list and loads with it empty);
        the controller's own state, which the controller validates; and ``entropy_controller``:
        null exactly when the callback has no entropy controller (formats 1 and 2 have none),
        else that controller's state. On any ``ValueError`` (a malformed field, or a controller
        that refuses the state: another type or config) nothing changes.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or state_dict.get("type") != name:
            raise ValueError(f"not a {name} state: {str(state_dict)[:80]!r}")
        version = state_dict.get("format_version")
        if type(version) is not int or version not in (1, 2, STATE_FORMAT_VERSION):
            raise ValueError(
                f"{name} state format_version {version!r} is not supported (expected 1, 2 or "
                f"{STATE_FORMAT_VERSION})"
            )
        if version < 3:  # written before the entropy controller existed
            state_dict = {**state_dict, "entropy_controller": None}
        try:
            _check_keys("the state", state_dict, STATE_KEYS)
            step = non_negative_int("global_step", state_dict["global_step"])
            rollouts = non_negative_int("rollouts", state_dict["rollouts"])
            non_negative("beta", state_dict["beta"])  # informational: the beta set
            positive("min_beta", state_dict["min_beta"])
            pending = _checked_pending(state_dict["pending"], version)
            entropy_state = state_dict["entropy_controller"]
            if (entropy_state is None) != (self.entropy_controller is None):
                raise ValueError(
                    "entropy_controller: the state holds "
                    f"{'no' if entropy_state is None else 'an'} entropy controller state but "
                    f"this callback has {'one' if self.entropy_controller else 'none'}"
                )
        except ValueError as exc:
            raise ValueError(f"{name}.load_state_dict: {exc}") from None
        previous = self.controller.state_dict()
        previous_entropy = None
        self.controller.load_state_dict(state_dict["controller"])  # refused: unchanged
        try:
            if self.entropy_controller is not None:
                previous_entropy = self.entropy_controller.state_dict()
                self.entropy_controller.load_state_dict(entropy_state)  # refused: unchanged
            beta, entropy_coef = self.beta, self.entropy_coef
        except ValueError:
            self.controller.load_state_dict(previous)
            if self.entropy_controller is not None and previous_entropy is not None:
                self.entropy_controller.load_state_dict(previous_entropy)
            raise
        self._pending, self._rollouts, self._global_step = pending, rollouts, step
        self.trainer.beta = beta
        if entropy_coef is not None:
            self.trainer.entropy_coef = entropy_coef

    def load_checkpoint(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        """Restore the state saved in ``checkpoint_dir``; training must resume at its step.

        A file that is not JSON, or whose state is refused, raises ``ValueError`` naming the
        file; nothing changes then.
        """
        path = os.path.join(checkpoint_dir, CHECKPOINT_FILE)
        with open(path, "rb") as f:
            raw = f.read()
        try:
            state = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"controller state file {path} is corrupt: not JSON ({exc})") from None
        try:
            self.load_state_dict(state)
        except ValueError as exc:
            raise ValueError(
                f"controller state file {path} is corrupt or not for this callback: {exc}"
            ) from exc
        self._restored_step = self._global_step

    # ------------------------------------------------------------------ internals
    def _take_new(self, key: str) -> list[float]:
        """Values appended to TRL's metric list ``key`` since the last call."""
        values = self.trainer._metrics["train"].get(key)
        if values is None:
            return []
        seen_list, seen_len = self._seen.get(key, (None, 0))
        start = seen_len if values is seen_list else 0  # a new list: TRL logged and cleared
        self._seen[key] = (values, len(values))
        return [float(v) for v in values[start:]]

    def _update(self, n_completions: int) -> None:
        pending = self._pending
        if not pending["kl"] or not pending["entropy"]:
            raise RuntimeError(
                f"GRPOTrainer logged no {'kl' if not pending['kl'] else 'entropy'} in this "
                f"optimizer step (beta is now {self.trainer.beta!r}); it measures the KL only "
                "while trainer.beta != 0, which SafeBetaCallback keeps by min_beta: was beta "
                "set elsewhere?"
            )
        # Every rollout batch is generation_batch_size completions: the mean of the batches'
        # means is the mean over all completions.
        lengths = pending[MEAN_LENGTH]
        if not lengths and self.controller.kl_unit == "per_sequence":
            raise RuntimeError(
                f"GRPOTrainer logged no {MEAN_LENGTH!r} for this rollout batch, so the KL per "
                f"sequence that {type(self.controller).__name__} (kl_unit 'per_sequence') reads "
                "cannot be formed from TRL's KL per token; use a per-token controller"
            )
        measured: dict[str, Any] = {
            "kl": _mean(pending["kl"]),
            "entropy": _mean(pending["entropy"]),
            "reward": _mean(pending["reward"]) if pending["reward"] else math.nan,
            "n_steps": n_completions,
            "tokens_per_sequence": _mean(lengths) if lengths else None,
        }
        previous = self.controller.state_dict()
        self.controller.update(**measured)
        if self.entropy_controller is not None:
            try:  # one update of both or of neither
                self.entropy_controller.update(**measured)
            except Exception:
                self.controller.load_state_dict(previous)
                raise
        self._pending = {key: [] for key in MEASURED}
        self._rollouts = 0
        self.trainer.beta = self.beta
        self._set_entropy_coef()

    def _set_entropy_coef(self) -> None:
        entropy_coef = self.entropy_coef
        if entropy_coef is not None:
            self.trainer.entropy_coef = entropy_coef

    def _log_decision(self) -> None:
        metrics = self.trainer._metrics["train"]
        decision = self.controller.decision
        metrics["safe/beta"].append(float(self.trainer.beta))
        metrics["safe/coef"].append(float(decision.coef))
        if self.entropy_controller is not None:
            metrics["safe/entropy_coef"].append(float(self.trainer.entropy_coef))
        if isinstance(decision, DeadBandDecision):
            metrics["safe/threshold"].append(float(decision.threshold))
            metrics["safe/gate"].append(float(decision.gate))
        if isinstance(decision, SafeDecision):
            metrics["safe/phase"].append(PHASE_CODES[decision.phase])
            metrics["safe/kl_predicted"].append(decision.kl_predicted)


def _check_keys(what: str, mapping: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [key for key in keys if key not in mapping]
    unknown = sorted(str(key) for key in mapping if key not in keys)
    if missing or unknown:
        raise ValueError(
            f"{what} must have the keys {list(keys)}: missing {missing}, unknown {unknown}"
        )


def _checked_pending(pending: Any, version: int) -> dict[str, list[float]]:
    """``pending`` as fresh lists of finite floats, one per ``MEASURED`` key."""
    if not isinstance(pending, dict):
        raise ValueError(f"pending must be a dict, got {type(pending).__name__}")
    if version == 1:  # written before the mean length was collected
        _check_keys("pending", pending, MEASURED[:3])
        pending = {**pending, MEAN_LENGTH: []}
    _check_keys("pending", pending, MEASURED)
    checked = {}
    for key in MEASURED:
        values = pending[key]
        if not isinstance(values, list):
            raise ValueError(f"pending[{key!r}] must be a list, got {type(values).__name__}")
        checked[key] = [finite(f"pending[{key!r}][{i}]", v) for i, v in enumerate(values)]
    return checked


def _positive_min_beta(min_beta: Any) -> float:
    value = as_float("min_beta", min_beta)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(
            f"min_beta must be finite and > 0 (GRPOTrainer stops measuring the KL at beta = 0), "
            f"got {min_beta!r}"
        )
    return value


def _checked_controller(controller: Any, settings: Mapping[str, Any] | None) -> Controller:
    """The KL controller (``registry.resolve``; by name with TRL's k3 estimator as its default)."""
    checked = registry.resolve(
        DEFAULT_CONTROLLER if controller is None else controller,
        settings,
        default_settings={"kl_estimator": "k3"},
    )
    if isinstance(checked, EntropyTargetController):
        raise ValueError(
            "EntropyTargetController decides an entropy-bonus coefficient, not a KL coefficient; "
            "pass it as entropy_controller=..., or use GRPOConfig(use_adaptive_entropy=True)"
        )
    if isinstance(checked, SafeController) and checked.config.kl_estimator != "k3":
        raise ValueError(
            "GRPOTrainer measures the per-token k3 KL; build the SafeController with "
            f"SafeConfig(kl_estimator='k3'), got kl_estimator={checked.config.kl_estimator!r}"
        )
    return checked


def _checked_entropy_controller(trainer: GRPOTrainer, controller: Any) -> Controller | None:
    """The entropy controller, once the trainer is known to apply ``trainer.entropy_coef``."""
    if controller is None:
        return None
    args = trainer.args
    if getattr(args, "use_adaptive_entropy", False):
        raise ValueError(
            "GRPOConfig(use_adaptive_entropy=True) makes TRL steer entropy_coef itself, and "
            f"entropy_controller={type(controller).__name__} would steer it too: two controllers "
            "on one knob. Turn use_adaptive_entropy off or drop entropy_controller"
        )
    config_coef = getattr(args, "entropy_coef", None)
    if config_coef is None:
        raise ValueError(
            "this TRL release's GRPOConfig has no entropy_coef (no entropy bonus), so "
            "entropy_controller has nothing to set; upgrade TRL (1.16 has it)"
        )
    if config_coef == 0.0:
        # GRPOTrainer fixes at construction whether the bonus term exists (entropy_coef != 0 or
        # adaptive mode); a coefficient set later on a trainer built with 0 would be ignored.
        raise ValueError(
            "GRPOTrainer was built with GRPOConfig(entropy_coef=0.0), so it adds no entropy bonus "
            "to its loss and entropy_controller could not change that; build it with "
            "GRPOConfig(entropy_coef=<small positive>, e.g. 0.001): the callback sets "
            "trainer.entropy_coef from the controller from the first step on"
        )
    if isinstance(controller, str):
        raise ValueError(
            f"entropy_controller must be a controller object (e.g. EntropyTargetController), "
            f"got the name {controller!r}"
        )
    return registry.resolve(controller)


def _refuse_frozen_liger_beta(args: Any) -> None:
    if not getattr(args, "use_liger_kernel", False):
        return
    trl_version = importlib.metadata.version("trl")
    if liger_freezes_beta(trl_version):
        raise ValueError(
            f"GRPOConfig(use_liger_kernel=True) on trl {trl_version}: this release builds "
            "Liger's GRPO loss with beta fixed at construction, so beta cannot be driven; "
            "upgrade TRL (> 1.12) or turn Liger off (use_liger_kernel=False)"
        )
