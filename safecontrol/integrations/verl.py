"""Drive verl's in-reward KL coefficient from a safecontrol controller (verl 0.9.1).

verl's ``RayPPOTrainer`` (with ``algorithm.use_kl_in_reward=True``) keeps ``kl_ctrl_in_reward``
and, once per rollout batch, calls ``apply_kl_penalty(batch, kl_ctrl)``: token rewards
``token_level_scores − kl_ctrl.value · kld`` and then ``kl_ctrl.update(current_kl, n_steps)`` with
``current_kl`` the mean over sequences of each sequence's masked mean token KL (per token) and
``n_steps`` the batch size. ``KLCtrlAdapter`` (``safecontrol.integrations.kl_ctrl``) has that
shape; this module adds what verl does not pass and does not save::

    from verl.trainer.ppo.ray_trainer import RayPPOTrainer
    from safecontrol.integrations.kl_ctrl import KLCtrlAdapter
    from safecontrol.integrations.verl import SafeKLMixin

    class Trainer(SafeKLMixin, RayPPOTrainer):
        pass

    trainer = Trainer(config=..., ...)                       # RayPPOTrainer's own arguments
    trainer.kl_ctrl_in_reward = KLCtrlAdapter("safe", {"kl_estimator": "k1"})
    trainer.fit()

- **Entropy, reward, length.** ``_compute_old_log_prob`` returns verl's per-token ``entropys``
  and runs after the reward is in ``batch.batch["rm_scores"]``; the mixin observes, for the
  following ``apply_kl_penalty``, the token-weighted mean entropy over ``response_mask`` (nats per
  token), the mean summed score per sequence and the mean response length. (verl's bypass mode,
  which skips that call, leaves the side channel empty: SAFE then refuses the update.)
- **Checkpoints.** ``_save_checkpoint`` also writes ``safecontrol_kl_ctrl.json`` (the adapter's
  ``state_dict``) into ``default_local_dir/global_step_N``; ``_load_checkpoint`` reads it back
  from the folder verl resumed from (``resume_from_path`` or ``global_step_N``), and refuses a
  corrupt or foreign file with a ``ValueError`` naming it, changing nothing.
- **Estimator.** verl's ``algorithm.kl_penalty`` ``"kl"`` is k1, ``"low_var_kl"`` k3: build SAFE
  with the matching ``kl_estimator``.

``adapter_like(kl_ctrl_config)`` builds the adapter that behaves like verl's own controller for an
``algorithm.kl_ctrl`` config (``fixed`` → ``fixed-kl``; ``adaptive`` → ``adaptive-kl`` with
verl's per-token target). The module imports neither verl nor torch; it reads verl's objects
through their attributes.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .._validation import _show
from ..atomic_files import write_json_atomic
from .kl_ctrl import KLCtrlAdapter

CHECKPOINT_FILE = "safecontrol_kl_ctrl.json"
"""The adapter's state in verl's ``global_step_N`` checkpoint folder."""


def adapter_like(kl_ctrl_config: Any) -> KLCtrlAdapter:
    """The adapter equivalent to ``verl.trainer.ppo.core_algos.get_kl_controller(config)``.

    verl's ``AdaptiveKLController`` compares ``target_kl`` with the per-token ``current_kl``, so
    the per-sequence ``adaptive-kl`` gets ``tokens_per_sequence=1.0`` (its target read per token):
    the same update, except that β stays inside ``coef_limits`` (default 1e-6..1e6).
    """
    kind = _get(kl_ctrl_config, "type")
    if kind == "fixed":
        return KLCtrlAdapter("fixed-kl", {"coef": _get(kl_ctrl_config, "kl_coef")})
    if kind == "adaptive":
        settings = {
            "init_coef": _get(kl_ctrl_config, "kl_coef"),
            "target": _get(kl_ctrl_config, "target_kl"),
            "horizon": _get(kl_ctrl_config, "horizon"),
        }
        return KLCtrlAdapter("adaptive-kl", settings, tokens_per_sequence=1.0)
    raise ValueError(f"kl_ctrl.type must be 'fixed' or 'adaptive' (verl's), got {kind!r}")


def batch_statistics(data: Any, entropys: Any = None) -> dict[str, float]:
    """A verl ``DataProto``'s side-channel values: ``tokens_per_sequence`` (mean of
    ``response_mask`` sums), ``reward`` (mean over sequences of the summed ``rm_scores``, or
    ``token_level_scores``, when present) and, given the per-token ``entropys`` tensor, ``entropy``
    (their mean over the response tokens of the whole batch)."""
    batch = data.batch
    mask = batch["response_mask"].float()
    out = {"tokens_per_sequence": float(mask.sum(-1).mean().item())}
    for key in ("rm_scores", "token_level_scores"):
        if key in batch.keys():  # noqa: SIM118 (TensorDict refuses `in`)
            out["reward"] = float(batch[key].float().sum(-1).mean().item())
            break
    if entropys is not None:
        out["entropy"] = float(((entropys.float() * mask).sum() / mask.sum()).item())
    return out


def save_checkpoint(kl_ctrl: KLCtrlAdapter, folder: str | os.PathLike[str]) -> str:
    """Write ``kl_ctrl.state_dict()`` to ``folder/CHECKPOINT_FILE`` atomically; returns the path.
    A state that is not strict JSON (a controller of one's own) raises naming the file, which
    keeps its previous content."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, CHECKPOINT_FILE)
    write_json_atomic(path, kl_ctrl.state_dict(), indent=1)
    return path


def load_checkpoint(kl_ctrl: KLCtrlAdapter, folder: str | os.PathLike[str]) -> bool:
    """Restore ``folder/CHECKPOINT_FILE`` into ``kl_ctrl``; ``False`` when there is none. A file
    that is not JSON or whose state is refused raises ``ValueError`` naming it; nothing changes."""
    path = os.path.join(folder, CHECKPOINT_FILE)
    if not os.path.exists(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        kl_ctrl.load_state_dict(state)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    return True


class SafeKLMixin:
    """Put before ``RayPPOTrainer`` in the bases: feeds ``kl_ctrl_in_reward`` (a
    ``KLCtrlAdapter``) entropy, reward and length, and saves/restores it with verl's
    checkpoints. Every other method is verl's."""

    kl_ctrl_in_reward: Any
    config: Any
    global_steps: int

    def _compute_old_log_prob(self, batch: Any) -> Any:
        result = super()._compute_old_log_prob(batch)  # type: ignore[misc]
        old_log_prob = result[0] if isinstance(result, tuple) else result
        if isinstance(self.kl_ctrl_in_reward, KLCtrlAdapter):
            entropys = old_log_prob.batch.get("entropys", None)
            self.kl_ctrl_in_reward.observe(**batch_statistics(batch, entropys))
        return result

    def _save_checkpoint(self) -> None:
        super()._save_checkpoint()  # type: ignore[misc]
        if isinstance(self.kl_ctrl_in_reward, KLCtrlAdapter):
            save_checkpoint(self.kl_ctrl_in_reward, self._global_step_folder())

    def _load_checkpoint(self) -> Any:
        result = super()._load_checkpoint()  # type: ignore[misc]
        if isinstance(self.kl_ctrl_in_reward, KLCtrlAdapter) and self.global_steps > 0:
            load_checkpoint(self.kl_ctrl_in_reward, self._global_step_folder(resuming=True))
        return result

    def _global_step_folder(self, resuming: bool = False) -> str:
        trainer = self.config.trainer
        resume_path = trainer.get("resume_from_path", None)
        if resuming and trainer.get("resume_mode", "auto") == "resume_path" and resume_path:
            return str(resume_path)
        return os.path.join(str(trainer.default_local_dir), f"global_step_{self.global_steps}")


def _get(config: Any, key: str) -> Any:
    """``config``'s ``key`` (a dict's item, or an attribute: OmegaConf, a dataclass), or a
    ``ValueError`` naming the key and the config."""
    try:
        return config[key] if isinstance(config, dict) else getattr(config, key)
    except (KeyError, AttributeError):  # OmegaConf's missing key is an AttributeError too
        raise ValueError(
            f"kl_ctrl config has no {key!r} (verl's algorithm.kl_ctrl has type and kl_coef, and "
            f"for type 'adaptive' target_kl and horizon): {_show(config)}"
        ) from None
