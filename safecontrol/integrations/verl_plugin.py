"""An opt-in ``verl.plugins`` entry point: verl 0.9.1's in-reward KL controller from safecontrol.

verl imports every ``verl.plugins`` entry point in every process at ``import verl``
(``verl/__init__.py``; ``VERL_USE_EXTERNAL_PLUGINS``: ``auto``, the default, loads all, ``none``
none, a comma-separated list those named; ours is ``safecontrol``). Installed, this module does
nothing at all (no import of verl or torch, nothing patched) unless the environment asks::

    export SAFECONTROL_VERL_CONTROLLER=kl-budget          # any safecontrol.registry name
    export SAFECONTROL_VERL_SETTINGS='{"step_ratio": 0.002}'  # optional: its settings, JSON
    python -m verl.trainer.main_ppo algorithm.use_kl_in_reward=True ...

Set both where the trainer process starts (a Ray cluster started by ``ray start`` beforehand:
there, or in ``+ray_kwargs.ray_init.runtime_env.env_vars``). verl offers no config key that a
plugin could read before the trainer builds its controller, hence the variables. When on:

- ``verl.trainer.ppo.core_algos.get_kl_controller`` returns a ``KLCtrlAdapter`` of the named
  controller: what verl's trainers keep in ``kl_ctrl_in_reward`` and pass to
  ``apply_kl_penalty``. Without settings, the name that verl's ``algorithm.kl_ctrl`` already
  describes (``fixed-kl`` for ``type=fixed``, ``adaptive-kl`` for ``adaptive``) gets verl's own
  numbers (``safecontrol.integrations.verl.adapter_like``), now checkpointed.
- ``RayPPOTrainer`` (``trainer.use_v1=False``) and the v1 ``PPOTrainer`` (the default) also
  write the adapter's state into verl's ``global_step_N`` (``safecontrol_kl_ctrl.json``, before
  verl's own save, so ``latest_checkpointed_iteration.txt`` never names a folder without it) and
  restore it when they resume (a corrupt file is refused; a missing one is warned about).
- The side channel: ``apply_kl_penalty`` first observes each batch's reward and mean response
  length; the entropy per token comes from ``_compute_old_log_prob`` (``RayPPOTrainer``: verl's
  ``entropys``; v1: its ``actor/entropy`` metric, the token-weighted mean only under
  ``loss_agg_mode=token-mean``, otherwise not observed).
- Refusals: an unknown controller name or bad settings, and ``algorithm.use_kl_in_reward=False``
  (verl would apply no in-reward KL, so the named controller would never run), raise a
  ``ValueError`` naming them when verl builds the controller or starts ``fit``. (verl swallows
  an exception raised while it loads a plugin, so nothing is refused at ``import verl``.)
- The step limit: ``kl-budget``'s and SAFE's decisions ask to limit every optimizer step
  (``max_preview_kl``); verl's in-reward path carries only β, so the adapter warns once and
  reports ``unhonoured_max_preview_kl``, which ``apply_kl_penalty``'s metrics carry as
  ``UNHONOURED_METRIC`` for verl to log with every step: steps are not limited.

``install`` / ``uninstall`` do the same from Python (idempotent, reversible). Not covered: verl's
experimental trainers that override the checkpoint methods (``FullyAsyncTrainer``).
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .kl_ctrl import KLCtrlAdapter

ENV_CONTROLLER = "SAFECONTROL_VERL_CONTROLLER"
"""The registry name of the controller to run; unset or empty: the plugin does nothing."""
ENV_SETTINGS = "SAFECONTROL_VERL_SETTINGS"
"""Optional: the controller's settings, a JSON object."""

CORE_ALGOS = "verl.trainer.ppo.core_algos"
RAY_TRAINER = "verl.trainer.ppo.ray_trainer"
V1_TRAINER = "verl.trainer.ppo.v1.trainer_base"
_VERL_NAMES = {"fixed": "fixed-kl", "adaptive": "adaptive-kl"}
"""verl's ``algorithm.kl_ctrl.type`` → the registry name ``adapter_like`` builds for it."""
_MARK = "__safecontrol_original__"
UNHONOURED_METRIC = "safecontrol/unhonoured_max_preview_kl"
"""The metric ``apply_kl_penalty`` adds when the controller asks for a step limit verl does not
apply (kl-budget's, SAFE's): the limit, nats per token, logged by verl with each step."""

_log = logging.getLogger(__name__)
_active: tuple[str, dict[str, Any] | None] | None = None
_refusal: ValueError | None = None
_originals: list[tuple[Any, str, Any]] = []  # (owner, attribute, what was there), patch order


# ---------------------------------------------------------------------------- switching on/off
def install(controller: str, settings: Mapping[str, Any] | None = None) -> None:
    """Run verl's in-reward KL controller from ``controller`` (a registry name) with
    ``settings``: patch verl's modules now if imported, else when they are. Idempotent (a second
    call replaces the configuration, never wraps twice). Invalid names or settings are not
    raised here: verl refuses them when it builds the controller or starts ``fit``."""
    global _active, _refusal
    _active, _refusal = (controller, None if settings is None else dict(settings)), None
    try:
        _validate(controller, settings)
    except ValueError as exc:
        _refusal = ValueError(f"{ENV_CONTROLLER}={controller!r}: {exc}")
        _log.error("safecontrol verl plugin: %s", _refusal)
    if not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())
    for name in _PATCHES:
        module = sys.modules.get(name)
        if module is not None:
            _patch(name, module)


def uninstall() -> None:
    """Undo ``install``: verl's own functions and methods back, the import hook removed."""
    global _active, _refusal
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterImport)]
    for owner, attribute, original in reversed(_originals):
        setattr(owner, attribute, original)
    _originals.clear()
    _active, _refusal = None, None


def active() -> tuple[str, dict[str, Any] | None] | None:
    """``(controller, settings)`` while installed, else ``None``."""
    return _active


def _install_from_environment() -> None:
    name = os.environ.get(ENV_CONTROLLER, "").strip()
    if not name:
        return
    raw = os.environ.get(ENV_SETTINGS, "").strip()
    settings: Any = None
    problem = None
    if raw:
        try:
            settings = json.loads(raw)
        except ValueError as exc:
            problem = f"{ENV_SETTINGS} is not JSON ({exc}): {raw!r}"
        else:
            if not isinstance(settings, dict):
                problem = f"{ENV_SETTINGS} must be a JSON object, got {raw!r}"
    install(name, settings if problem is None else None)
    if problem is not None:
        global _refusal
        _refusal = ValueError(f"{ENV_CONTROLLER}={name!r}: {problem}")
        _log.error("safecontrol verl plugin: %s", _refusal)


def _validate(controller: str, settings: Mapping[str, Any] | None) -> None:
    from .. import registry

    if not isinstance(controller, str):
        raise ValueError(f"the controller must be a registry name, got {controller!r}")
    registry.resolve(controller, settings)  # unknown name, bad settings: ValueError naming them


# ---------------------------------------------------------------------------- the controller
def _get_kl_controller(kl_ctrl: Any) -> KLCtrlAdapter:
    """verl's ``get_kl_controller(algorithm.kl_ctrl)``, answered with our adapter."""
    from .kl_ctrl import KLCtrlAdapter
    from .verl import adapter_like

    if _refusal is not None:
        raise _refusal
    if _active is None:
        raise RuntimeError("safecontrol verl plugin: not installed")
    name, settings = _active
    kind = kl_ctrl.get("type") if isinstance(kl_ctrl, Mapping) else getattr(kl_ctrl, "type", None)
    if settings is None and _VERL_NAMES.get(str(kind)) == name:
        return adapter_like(kl_ctrl)
    return KLCtrlAdapter(name, settings)


def _kl_controller(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_kl_controller(kl_ctrl: Any) -> KLCtrlAdapter:
        return _get_kl_controller(kl_ctrl)

    return _wrap(original, get_kl_controller)


def _require_usable(trainer: Any) -> None:
    if _refusal is not None:
        raise _refusal
    if _active is not None and not trainer.config.algorithm.get("use_kl_in_reward", False):
        raise ValueError(
            f"{ENV_CONTROLLER}={_active[0]!r} runs verl's in-reward KL controller, and "
            "algorithm.use_kl_in_reward is False: verl applies no in-reward KL, so the "
            f"controller would never run. Set algorithm.use_kl_in_reward=True, or unset "
            f"{ENV_CONTROLLER}"
        )


def _adapter(trainer: Any) -> KLCtrlAdapter | None:
    from .kl_ctrl import KLCtrlAdapter

    kl_ctrl = getattr(trainer, "kl_ctrl_in_reward", None)
    return kl_ctrl if isinstance(kl_ctrl, KLCtrlAdapter) else None


# ---------------------------------------------------------------------------- the wrappers
def _wrap(original: Callable[..., Any], body: Callable[..., Any]) -> Callable[..., Any]:
    wrapper = functools.wraps(original)(body)
    setattr(wrapper, _MARK, original)
    return wrapper


def _save_checkpoint(original: Callable[..., Any]) -> Callable[..., Any]:
    from .verl import SafeKLMixin, save_checkpoint

    def _save_checkpoint(self: Any, *args: Any, **kwargs: Any) -> Any:
        kl_ctrl = _adapter(self)
        if kl_ctrl is not None:  # first: verl's "latest" marker then never lacks our file
            save_checkpoint(kl_ctrl, SafeKLMixin._global_step_folder(self))
        return original(self, *args, **kwargs)

    return _wrap(original, _save_checkpoint)


def _load_checkpoint(original: Callable[..., Any]) -> Callable[..., Any]:
    from .verl import CHECKPOINT_FILE, SafeKLMixin, load_checkpoint

    def _load_checkpoint(self: Any, *args: Any, **kwargs: Any) -> Any:
        _require_usable(self)  # fit() starts here, in every trainer
        result = original(self, *args, **kwargs)
        kl_ctrl = _adapter(self)
        if kl_ctrl is not None and self.global_steps > 0:
            folder = SafeKLMixin._global_step_folder(self, resuming=True)
            if not load_checkpoint(kl_ctrl, folder):
                warnings.warn(
                    f"{folder} has no {CHECKPOINT_FILE}: controller {kl_ctrl.name!r} resumes "
                    "from its initial state",
                    UserWarning,
                    stacklevel=2,
                )
        return result

    return _wrap(original, _load_checkpoint)


def _old_log_prob_v0(original: Callable[..., Any]) -> Callable[..., Any]:
    from .verl import batch_statistics

    def _compute_old_log_prob(self: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, batch, *args, **kwargs)
        kl_ctrl = _adapter(self)
        if kl_ctrl is not None:
            old_log_prob = result[0] if isinstance(result, tuple) else result
            kl_ctrl.observe(**batch_statistics(batch, old_log_prob.batch.get("entropys", None)))
        return result

    return _wrap(original, _compute_old_log_prob)


def _old_log_prob_v1(original: Callable[..., Any]) -> Callable[..., Any]:
    def _compute_old_log_prob(self: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, batch, *args, **kwargs)
        metrics = kwargs.get("metrics", args[0] if args else None)
        kl_ctrl = _adapter(self)
        mode = self.config.actor_rollout_ref.actor.get("loss_agg_mode", None)
        if (
            kl_ctrl is not None
            and mode == "token-mean"
            and isinstance(metrics, Mapping)
            and "actor/entropy" in metrics  # absent in bypass mode (no recomputed log-probs)
        ):
            kl_ctrl.observe(entropy=metrics["actor/entropy"])
        return result

    return _wrap(original, _compute_old_log_prob)


def _apply_kl_penalty(original: Callable[..., Any]) -> Callable[..., Any]:
    from .verl import batch_statistics

    def apply_kl_penalty(data: Any, kl_ctrl: Any, *args: Any, **kwargs: Any) -> Any:
        from .kl_ctrl import KLCtrlAdapter

        if not isinstance(kl_ctrl, KLCtrlAdapter):
            return original(data, kl_ctrl, *args, **kwargs)
        kl_ctrl.observe(**batch_statistics(data))  # reward and length (entropy: above)
        result = original(data, kl_ctrl, *args, **kwargs)
        limit = kl_ctrl.unhonoured_max_preview_kl
        if limit is not None and isinstance(result, tuple) and isinstance(result[-1], dict):
            # verl logs this dict with every step: the limit it does not apply is on record
            result[-1][UNHONOURED_METRIC] = limit
        return result

    return _wrap(original, apply_kl_penalty)


_Wrapper = Callable[[Callable[..., Any]], Callable[..., Any]]
_TRAINER_METHODS: dict[str, _Wrapper] = {
    "_save_checkpoint": _save_checkpoint,
    "_load_checkpoint": _load_checkpoint,
}
_PATCHES: dict[str, Sequence[tuple[str | None, str, _Wrapper]]] = {
    # module → (class or None for the module itself, attribute, wrapper factory)
    CORE_ALGOS: [(None, "get_kl_controller", _kl_controller)],
    RAY_TRAINER: [
        (None, "apply_kl_penalty", _apply_kl_penalty),
        *(("RayPPOTrainer", m, w) for m, w in _TRAINER_METHODS.items()),
        ("RayPPOTrainer", "_compute_old_log_prob", _old_log_prob_v0),
    ],
    V1_TRAINER: [
        (None, "apply_kl_penalty", _apply_kl_penalty),
        *(("PPOTrainer", m, w) for m, w in _TRAINER_METHODS.items()),
        ("PPOTrainer", "_compute_old_log_prob", _old_log_prob_v1),
    ],
}


def _patch(name: str, module: ModuleType) -> None:
    """Apply ``_PATCHES[name]`` to ``module`` once (a wrapped attribute is left alone)."""
    if _active is None:
        return
    for owner_name, attribute, factory in _PATCHES[name]:
        owner: Any = module if owner_name is None else getattr(module, owner_name, None)
        if owner is None:
            continue
        current = vars(owner).get(attribute)
        if current is None or hasattr(current, _MARK):
            continue
        _originals.append((owner, attribute, current))
        setattr(owner, attribute, factory(current))


# ---------------------------------------------------------------------------- the import hook
class _AfterImport(importlib.abc.MetaPathFinder):
    """Patches verl's modules right after they are first imported, so that the plugin imports
    nothing of verl's itself (it runs inside ``import verl``, in every process)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, fullname)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _patch(self._name, module)

    def __getattr__(self, attribute: str) -> Any:  # get_source, get_resource_reader, ...
        return getattr(self._loader, attribute)


_install_from_environment()
