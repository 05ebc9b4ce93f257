"""A surrogate RLHF plant: a tabular softmax policy trained by policy gradient against a hackable
reward, with the KL penalty decided by the controller under test. A run takes milliseconds.

It is a test bench for KL controllers, not a language model. What it keeps from RLHF (SPEC §6):

- a policy π(a | c) = softmax(θ_c) over ``vocab_size`` tokens in each of ``n_contexts`` contexts
  (one token per completion, so per-token and per-sequence KL coincide), starting at a fixed
  reference π_ref whose entropy is moderately high (about 3.0 nats for the defaults);
- a reward table with modest honest rewards and an exploitable *spike* token (like VADER's "l",
  SPEC §6) that the reward model overrates: its proxy reward ``spike_reward`` is what the learner
  and the controller see, its true reward ``spike_true_reward`` is logged in ``true_reward``, so
  reward hacking shows as proxy reward rising while true reward falls;
- a Gao et al. 2022-style breakdown of the reward model far from the reference: every sample from
  a context whose KL(π_c ‖ π_ref,c) exceeds ``crash_kl`` nats scores up to ``crash_depth`` less,
  whatever its token (a stand-in for degenerate text that any scorer rates badly). As the loss does
  not depend on the token, its expected policy gradient is zero and the learner cannot climb back
  out: reward first rises, then crashes and stays down. The crash is caused by drifting from the
  reference by construction, so the plant tests whether a controller keeps KL inside a budget,
  not whether KL control is the right remedy for a real crash;
- REINFORCE with the batch-mean reward as baseline (``epochs > 1``: PPO's clipped surrogate on the
  same batch) and the KL penalty applied to the *live* KL (SPEC §2.1): the ascent direction is
  ``∇J − slope_at(KL_live)·∇KL_live + entropy_coef·∇H`` with KL_live the exact mean over contexts
  of KL(π_c ‖ π_ref,c), re-evaluated in every epoch. ∇J is sampled (the batch's REINFORCE
  estimate); ∇KL and ∇H are exact (analytic, over all contexts). Gradients are those of the
  per-context objective (the batch objective with the learning rate scaled by ``n_contexts``), so
  ``lr`` is in logits per unit of advantage whatever the number of contexts. The direction's L2
  norm is clipped at ``max_grad_norm`` before the step ``lr·direction``.

The controller is updated exactly once per rollout batch (SPEC §2.2), before the batch's gradient
steps, with ``kl`` the batch mean of the sampled per-token k1 = log π(a) − log π_ref(a) (noisy and
possibly negative, as in a real trainer; ``kl_measurement="exact"`` feeds the exact mean KL
instead), ``entropy`` the exact mean policy entropy in nats and ``reward`` the batch-mean proxy
reward, plus ``n_steps=batch_size`` and ``tokens_per_sequence=1`` (``safecontrol.contract``).
When the decision limits steps (a finite ``max_preview_kl``: SAFE) each step is first tried: its
KL(π_old ‖ π_new), averaged over contexts, is the preview KL and the step is multiplied by
``step_scale(preview_kl)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..contract import Controller, Decision
from .config import SPIKE_TOKEN, PlantConfig, log_softmax, make_task


@dataclass(frozen=True)
class Trajectory:
    """Per-step logs of one run: arrays of length ``steps``, index t for rollout batch t.

    KL, entropy and rewards are those of the policy that sampled batch t, before its update.
    """

    reward: np.ndarray
    """Batch-mean proxy reward (what the learner and the controller see)."""
    true_reward: np.ndarray
    """Batch-mean true reward (the spike at its true value)."""
    kl: np.ndarray
    """Exact mean over contexts of KL(π_c ‖ π_ref,c), nats per token."""
    kl_context_max: np.ndarray
    """The largest per-context KL (what the breakdown at ``crash_kl`` acts on)."""
    kl_measured: np.ndarray
    """The KL fed to the controller (sampled k1 batch mean, or the exact KL)."""
    entropy: np.ndarray
    """Exact mean policy entropy, nats per token."""
    spike_fraction: np.ndarray
    """Fraction of the batch that is the spike token (the hacking signal, like distinct-1)."""
    coef: np.ndarray
    """The penalty's slope at the live KL in the batch's first epoch: the effective β."""
    threshold: np.ndarray
    """The decision's ``threshold`` (SAFE); NaN for decisions without one."""
    gate: np.ndarray
    """The decision's ``gate`` (SAFE); NaN for decisions without one."""
    step_scale: np.ndarray
    """Preview step scale of the batch's first epoch (1.0 when unused)."""
    entropy_coef: np.ndarray
    """Entropy bonus coefficient used for the batch."""

    def __len__(self) -> int:
        return len(self.reward)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _policy(theta: np.ndarray, logp_ref: np.ndarray) -> tuple[np.ndarray, ...]:
    """log π, π, log π − log π_ref and KL(π_c ‖ π_ref,c) per context, with one exp."""
    shifted = theta - theta.max(axis=1, keepdims=True)
    unnormalised = np.exp(shifted)
    total = unnormalised.sum(axis=1, keepdims=True)
    probs = unnormalised / total
    logp = shifted - np.log(total)
    log_ratio = logp - logp_ref
    return logp, probs, log_ratio, np.einsum("ij,ij->i", probs, log_ratio)


def _kl_gradient(probs: np.ndarray, log_ratio: np.ndarray, kl_c: np.ndarray) -> np.ndarray:
    """∂KL(π_c ‖ π_ref,c)/∂θ_c = π_c ⊙ (log π_c − log π_ref,c − KL_c), row by row."""
    gradient: np.ndarray = probs * (log_ratio - kl_c[:, None])
    return gradient


def _entropy_gradient(probs: np.ndarray, logp: np.ndarray) -> np.ndarray:
    """∂H(π_c)/∂θ_c = −π_c ⊙ (log π_c + H_c), row by row."""
    entropy_c = -np.einsum("ij,ij->i", probs, logp)
    gradient: np.ndarray = -probs * (logp + entropy_c[:, None])
    return gradient


def _field(decision: Any, name: str) -> float:
    value = getattr(decision, name, None)
    return math.nan if value is None else float(value)


def run(
    controller: Controller | None,
    config: PlantConfig | None = None,
    *,
    entropy_controller: Any = None,
) -> Trajectory:
    """Train the plant for ``config.steps`` batches under ``controller``; deterministic per seed.

    Args:
        controller: the KL controller under test (``safecontrol.contract.Controller``), or None
            for no KL penalty. Its ``update`` is called once per batch with ``kl``, ``entropy``,
            ``reward``, ``n_steps=batch_size`` and ``tokens_per_sequence=1`` (one token per
            context); the decision's ``slope_at(kl)`` weighs ∇KL in the gradient.
        config: the plant's settings (default ``PlantConfig()``).
        entropy_controller: optional controller of the entropy bonus (e.g.
            ``EntropyTargetController``), updated once per batch after ``controller``; its
            decision's ``coef`` replaces ``config.entropy_coef``.
    """
    config = PlantConfig() if config is None else config
    if not isinstance(config, PlantConfig):
        raise ValueError(f"config must be a PlantConfig, got {type(config).__name__}")
    task = make_task(config)
    rng = np.random.default_rng([config.seed, 1])
    n_ctx, vocab, batch = config.n_contexts, config.vocab_size, config.batch_size
    logp_ref = log_softmax(task.ref_logits)
    theta = task.ref_logits.copy()
    crash = config.crash_depth > 0.0 and math.isfinite(config.crash_kl)
    controllers = [c for c in (controller, entropy_controller) if c is not None]
    log = {f.name: np.empty(config.steps) for f in fields(Trajectory)}
    entropy_coef = config.entropy_coef
    grad_scale = n_ctx / batch
    row_offsets = np.arange(n_ctx, dtype=np.float64)[:, None]

    for t in range(config.steps):
        # Rollout: contexts uniformly, tokens from the current policy (inverse-CDF sampling).
        logp, probs, log_ratio, kl_c = _policy(theta, logp_ref)
        uniform = rng.random(2 * batch)
        contexts = (uniform[:batch] * n_ctx).astype(np.intp)
        # Row c of the stacked CDF runs from c to c + 1, so one search samples every row.
        cdf = np.cumsum(probs, axis=1)
        cdf += row_offsets
        found = np.searchsorted(cdf.ravel(), contexts + uniform[batch:])
        tokens = np.clip(found - contexts * vocab, 0, vocab - 1)
        flat = contexts * vocab + tokens

        # Score: proxy and true rewards, less the breakdown of contexts far from the reference.
        rewards = task.proxy_reward.ravel()[flat]
        true_rewards = task.true_reward.ravel()[flat]
        if crash:
            z = np.clip((kl_c[contexts] - config.crash_kl) / config.crash_width, -50.0, 50.0)
            breakdown = config.crash_depth / (1.0 + np.exp(-z))
            rewards = rewards - breakdown
            true_rewards = true_rewards - breakdown

        # Detached batch statistics, then exactly one controller update for the batch.
        kl_batch = float(kl_c.sum()) / n_ctx
        kl_context_max = float(kl_c.max())
        entropy = -float(np.einsum("ij,ij->", probs, logp)) / n_ctx
        reward = float(rewards.sum()) / batch
        logp_old = logp.ravel()[flat]
        if config.kl_measurement == "k1":
            kl_measured = float(log_ratio.ravel()[flat].sum()) / batch
        else:
            kl_measured = kl_batch
        decisions = [
            c.update(
                kl=kl_measured,
                entropy=entropy,
                reward=reward,
                n_steps=batch,
                tokens_per_sequence=1.0,
            )
            for c in controllers
        ]
        decision = decisions[0] if controller is not None else None
        if decision is not None and not isinstance(decision, Decision):
            raise TypeError(
                f"{type(controller).__name__}.update returned {type(decision).__name__}, which "
                "lacks part of safecontrol.contract.Decision (coef, slope_at, step_scale, ...)"
            )
        if entropy_controller is not None:
            entropy_coef = float(decisions[-1].coef)
        previewing = (
            config.use_step_scale
            and decision is not None
            and math.isfinite(decision.max_preview_kl)
        )

        # Update: policy gradient on the batch, the KL penalty at each epoch's live KL.
        advantages = rewards - reward
        for epoch in range(config.epochs):
            weights = advantages
            if epoch > 0:
                logp, probs, log_ratio, kl_c = _policy(theta, logp_ref)
                ratio = np.exp(logp.ravel()[flat] - logp_old)
                clipped = np.where(
                    advantages >= 0, ratio > 1 + config.clip, ratio < 1 - config.clip
                )
                weights = np.where(clipped, 0.0, ratio * advantages)
            # Σ_i w_i (e_{a_i} − π_{c_i}) for each context.
            grad: np.ndarray = (
                np.bincount(flat, weights, minlength=n_ctx * vocab)
                .reshape(n_ctx, vocab)
                .astype(np.float64, copy=False)
            )
            grad -= np.bincount(contexts, weights, minlength=n_ctx)[:, None] * probs
            grad *= grad_scale
            kl_live = float(kl_c.sum()) / n_ctx
            coef = 0.0 if decision is None else float(decision.slope_at(kl_live))
            if coef != 0.0:
                grad -= coef * _kl_gradient(probs, log_ratio, kl_c)
            if entropy_coef != 0.0:
                grad += entropy_coef * _entropy_gradient(probs, logp)
            if config.max_grad_norm is not None:
                norm = math.sqrt(float(np.einsum("ij,ij->", grad, grad)))
                if norm > config.max_grad_norm:
                    grad *= config.max_grad_norm / norm
            step = config.lr * grad
            scale = 1.0
            if previewing and decision is not None:
                logp_new = log_softmax(theta + step)
                # KL ≥ 0; a step that barely moves rounds to −1e-17, which step_scale refuses
                preview_kl = max(float(np.einsum("ij,ij->", probs, logp - logp_new)) / n_ctx, 0.0)
                scale = float(decision.step_scale(preview_kl))
            theta = theta + scale * step
            if epoch == 0:
                log["coef"][t], log["step_scale"][t] = coef, scale

        log["reward"][t] = reward
        log["true_reward"][t] = float(true_rewards.sum()) / batch
        log["kl"][t] = kl_batch
        log["kl_context_max"][t] = kl_context_max
        log["kl_measured"][t] = kl_measured
        log["entropy"][t] = entropy
        log["spike_fraction"][t] = float(np.count_nonzero(tokens == SPIKE_TOKEN)) / batch
        log["threshold"][t] = _field(decision, "threshold")
        log["gate"][t] = _field(decision, "gate")
        log["entropy_coef"][t] = entropy_coef
    return Trajectory(**log)
