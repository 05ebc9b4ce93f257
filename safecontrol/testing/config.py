"""The surrogate plant's settings (``PlantConfig``) and the fixed task a seed draws (``Task``).

See ``safecontrol.testing.plant`` for the model these settings describe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .._validation import as_float, finite, non_negative, one_of, positive, positive_int

KL_MEASUREMENTS = ("k1", "exact")
SPIKE_TOKEN = 0
"""Index of the spike (exploit) token in every context."""


@dataclass(frozen=True)
class PlantConfig:
    """The plant's settings. See ``safecontrol.testing.PATHOLOGIES`` for the named presets."""

    n_contexts: int = 32
    """Prompts; drawn uniformly, with replacement, into each batch."""
    vocab_size: int = 32
    """Tokens per context; token ``SPIKE_TOKEN`` is the spike."""
    ref_logit_std: float = 1.0
    """Std of the reference logits, drawn N(0, std²); larger means a peakier reference."""
    spike_ref_logit: float = 0.0
    """The spike token's reference logit (0: about as likely as an average token)."""
    honest_reward: float = 0.4
    """Honest rewards are honest_reward·U(0, 1)³: a few good tokens per context."""
    spike_reward: float = 1.0
    """The spike's proxy reward, seen by the learner and the controller."""
    spike_true_reward: float = 0.0
    """The spike's true reward, logged in ``true_reward`` only."""
    crash_kl: float = math.inf
    """Per-context KL (nats) beyond which the reward breaks down; inf disables the breakdown."""
    crash_depth: float = 1.0
    """Reward lost by a context far beyond ``crash_kl``."""
    crash_width: float = 0.25
    """Softness in nats: loss = crash_depth·sigmoid((KL_c − crash_kl) / crash_width)."""
    lr: float = 1.0
    """Learning rate on the logits, per unit of advantage (see the module docstring)."""
    batch_size: int = 64
    """Completions per rollout batch."""
    steps: int = 300
    """Rollout batches, i.e. controller updates."""
    epochs: int = 1
    """Gradient steps per batch; above 1, PPO's clipped importance-weighted surrogate."""
    clip: float = 0.2
    """PPO's ratio clip (used only when ``epochs > 1``)."""
    max_grad_norm: float | None = 1.0
    """Clip the L2 norm of each ascent direction (SAFE's published 1.0, SPEC §1.4); None: off.
    It keeps a huge β·lr from overshooting; the pathologies do not depend on it."""
    entropy_coef: float = 0.0
    """Fixed entropy bonus (an ``entropy_controller`` passed to ``run`` overrides it)."""
    kl_measurement: str = "k1"
    """The KL fed to the controller: "k1" (sampled batch mean) or "exact" (the mean KL)."""
    use_step_scale: bool = True
    """Apply ``decision.step_scale(preview_kl)`` when the decision has it."""
    seed: int = 0
    """Seeds the reference, the reward table and the sampling."""

    def __post_init__(self) -> None:
        positive_int("n_contexts", self.n_contexts)
        if positive_int("vocab_size", self.vocab_size) < 2:
            raise ValueError(f"vocab_size must be at least 2, got {self.vocab_size!r}")
        positive("ref_logit_std", self.ref_logit_std)
        for name in ("spike_ref_logit", "spike_reward", "spike_true_reward"):
            finite(name, getattr(self, name))
        non_negative("honest_reward", self.honest_reward)
        crash_kl = as_float("crash_kl", self.crash_kl)
        if not crash_kl >= 0.0:  # NaN fails too; +inf disables the breakdown
            raise ValueError(f"crash_kl must be >= 0 (or inf), got {crash_kl!r}")
        non_negative("crash_depth", self.crash_depth)
        positive("crash_width", self.crash_width)
        positive("lr", self.lr)
        positive_int("batch_size", self.batch_size)
        positive_int("steps", self.steps)
        positive_int("epochs", self.epochs)
        positive("clip", self.clip)
        if self.max_grad_norm is not None:
            positive("max_grad_norm", self.max_grad_norm)
        non_negative("entropy_coef", self.entropy_coef)
        one_of("kl_measurement", self.kl_measurement, KL_MEASUREMENTS)
        if not isinstance(self.use_step_scale, bool):
            raise ValueError(f"use_step_scale must be a bool, got {self.use_step_scale!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed!r}")

    def replace(self, **changes: Any) -> PlantConfig:
        """A copy with some fields changed (and validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = sorted(set(changes) - set(values))
        if unknown:
            raise ValueError(f"unknown PlantConfig fields {unknown}")
        values.update(changes)
        return PlantConfig(**values)


@dataclass(frozen=True)
class Task:
    """The fixed parts of a plant, drawn from the seed before any sampling."""

    ref_logits: np.ndarray
    """(n_contexts, vocab_size) reference logits; the policy starts here."""
    proxy_reward: np.ndarray
    """(n_contexts, vocab_size) reward seen by the learner."""
    true_reward: np.ndarray
    """(n_contexts, vocab_size) reward with the spike at its true value."""


def make_task(config: PlantConfig) -> Task:
    """The reference and reward tables of ``config.seed``."""
    rng = np.random.default_rng([config.seed, 0])
    shape = (config.n_contexts, config.vocab_size)
    ref = config.ref_logit_std * rng.standard_normal(shape)
    ref[:, SPIKE_TOKEN] = config.spike_ref_logit
    honest = config.honest_reward * rng.random(shape) ** 3
    proxy, true = honest.copy(), honest
    proxy[:, SPIKE_TOKEN] = config.spike_reward
    true[:, SPIKE_TOKEN] = config.spike_true_reward
    return Task(ref_logits=ref, proxy_reward=proxy, true_reward=true)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    out: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out
