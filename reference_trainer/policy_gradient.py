"""The policy's gradient of one PPO epoch: the clipped policy loss, the decision's KL term on the
live KL and the entropy bonus, back-propagated over the whole batch at once or over micro-batches
(gradient accumulation, so that one micro-batch's activations are alive at a time)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from safecontrol.torch import entropy_from_logits, global_means, kl_per_token

from . import ranks
from .config import TrainConfig
from .losses import (
    clipped_policy_loss,
    global_token_mean,
    kl_loss,
    kl_loss_is_linear,
    kl_slope,
)
from .rollout import ForwardResult, Rollout, concatenate


@dataclass(frozen=True)
class EpochLoss:
    """What an epoch's loss reads besides the policy's forward: the rollout's log-probabilities
    under the old policy and the reference, the advantages, this process's token share
    (``losses.token_share``), the decision, and the entropy bonus's coefficient."""

    old_logp: torch.Tensor
    reference_logp: torch.Tensor
    advantages: torch.Tensor
    share: float
    decision: Any
    config: TrainConfig
    ent_coef: float


def whole_batch_gradient(
    epoch: EpochLoss, rollout: Rollout, new: ForwardResult
) -> dict[str, float]:
    """The epoch's loss on the whole batch (``new`` its forward, with graph), its backward into
    the policy's (zeroed) gradients; returns the loss's terms."""
    c, mask, share = epoch.config, rollout.response_mask, epoch.share
    pg, clip_fraction, approx_kl = clipped_policy_loss(
        new.logp, epoch.old_logp, epoch.advantages, mask, c.clip_range
    )
    live_kl = global_token_mean(
        kl_per_token(new.logp, epoch.reference_logp, c.kl_estimator), mask, share
    )
    new_entropy = global_token_mean(entropy_from_logits(new.logits), mask, share)
    policy_loss = global_token_mean(pg, mask, share)
    kl_term = kl_loss(live_kl, epoch.decision, c)
    loss = policy_loss + kl_term - epoch.ent_coef * new_entropy
    loss.backward()
    means = global_means(clip_fraction=(clip_fraction, mask), approx_kl=(approx_kl, mask))
    return {
        "loss": float(loss.detach()),
        "policy_loss": float(policy_loss.detach()),
        "kl_term": float(kl_term.detach()),
        "live_kl": float(live_kl.detach()),
        **means,
    }


def micro_batch_gradient(
    epoch: EpochLoss,
    rollout: Rollout,
    micro_batches: list[slice],
    forward: Callable[[Rollout], ForwardResult],
    policy: torch.nn.Module,
    params: list[torch.Tensor],
) -> tuple[ForwardResult, dict[str, float]]:
    """The same loss and gradient as ``whole_batch_gradient``, accumulated over micro-batches
    (one forward with graph alive at a time; under DDP without synchronising, the gradients
    averaged over the ranks once at the end). Each token weighs ``share / n_local`` as in
    ``global_token_mean``; the KL term's gradient is its slope at the batch's live KL times
    the live KL's gradient: a linear term's slope is known up front, the dead-band hinge's
    only once every micro-batch has run, so its KL gradient is accumulated apart and scaled
    then. Returns the epoch's forward (detached, for the step limit and the critic)."""
    c, mask, share, decision = epoch.config, rollout.response_mask, epoch.share, epoch.decision
    weight = share / max(float(mask.sum()), 1.0)
    linear = kl_loss_is_linear(decision, c)
    slope = kl_slope(0.0, decision, c) if linear else 0.0
    kl_grads: list[torch.Tensor] | None = None if linear else [torch.zeros_like(p) for p in params]
    parts: list[ForwardResult] = []
    tokens: dict[str, list[torch.Tensor]] = {}
    no_sync = getattr(policy, "no_sync", contextlib.nullcontext)  # DDP's, else nothing
    for rows in micro_batches:
        chunk = rollout.rows(rows)
        with no_sync():
            new = forward(chunk)
            w = chunk.response_mask.to(new.logp.dtype)
            pg, clip_fraction, approx_kl = clipped_policy_loss(
                new.logp,
                epoch.old_logp[rows],
                epoch.advantages[rows],
                chunk.response_mask,
                c.clip_range,
            )
            kl = kl_per_token(new.logp, epoch.reference_logp[rows], c.kl_estimator)
            entropy = entropy_from_logits(new.logits)
            rest = weight * ((pg * w).sum() - epoch.ent_coef * (entropy * w).sum())
            kl_sum = weight * (kl * w).sum()
            if kl_grads is None:
                (rest + slope * kl_sum).backward()
            else:
                grads = torch.autograd.grad(kl_sum, params, retain_graph=True, allow_unused=True)
                for total, grad in zip(kl_grads, grads, strict=True):
                    if grad is not None:
                        total += grad
                rest.backward()
        parts.append(ForwardResult(new.logp.detach(), new.logits.detach(), new.hidden.detach()))
        for key, value in (
            ("pg", pg),
            ("kl", kl),
            ("entropy", entropy),
            ("clip_fraction", clip_fraction),
            ("approx_kl", approx_kl),
        ):
            tokens.setdefault(key, []).append(value.detach())
    whole = {key: torch.cat(values) for key, values in tokens.items()}
    live_kl = float(global_token_mean(whole["kl"], mask, share))
    if kl_grads is not None:
        slope = kl_slope(live_kl, decision, c)
        for p, grad in zip(params, kl_grads, strict=True):
            p.grad = grad * slope if p.grad is None else p.grad.add_(grad, alpha=slope)
    ranks.average_gradients(params)
    policy_loss = float(global_token_mean(whole["pg"], mask, share))
    entropy_mean = float(global_token_mean(whole["entropy"], mask, share))
    kl_term = float(kl_loss(torch.tensor(live_kl), decision, c))
    means = global_means(
        clip_fraction=(whole["clip_fraction"], mask), approx_kl=(whole["approx_kl"], mask)
    )
    return concatenate(parts), {
        "loss": policy_loss + kl_term - epoch.ent_coef * entropy_mean,
        "policy_loss": policy_loss,
        "kl_term": kl_term,
        "live_kl": live_kl,
        **means,
    }
