"""The loss of a PPO epoch, piece by piece: GAE and advantage whitening, the clipped policy
loss, token means over every process, and the KL term a controller's decision puts on the live KL.

Token means: a process's masked mean averaged by DDP over W processes weighs every process alike,
whatever its token count; ``token_share`` and ``global_token_mean`` give the mean over the tokens
of *all* processes and its gradient.

The KL term: the decision applies to the live KL of every PPO epoch through
``safecontrol.torch.kl_penalty``, so the penalty carries gradient (SPEC §2.1–§2.2).
``penalty_mode="detached"`` reproduces the published SAFE code for the ablation: the same penalty
value, added as a constant.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist

from safecontrol.contract import DeadBandDecision
from safecontrol.torch import global_masked_mean, global_means, kl_penalty

from .config import TrainConfig


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-level generalised advantage estimation (Schulman et al. 2016).

    ``rewards``, ``values`` and ``mask`` are (B, T); positions outside ``mask`` have no value and
    end the episode. Returns (advantages, returns), zero outside ``mask``.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        next_value = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean) / std over the masked tokens of every process (sums and counts reduced)."""
    mean = global_masked_mean(x, mask).to(x.dtype)
    variance = global_masked_mean((x - mean) ** 2, mask).to(x.dtype)
    return (x - mean) * torch.rsqrt(variance + eps) * mask.to(x.dtype)


def clipped_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO-clip loss per token, plus its clip fraction and approx KL(π_old ‖ π) (k3), all
    per-token tensors for the caller to reduce."""
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = torch.maximum(unclipped, clipped)
    clip_fraction = ((ratio - 1.0).abs() > clip_range).to(logp.dtype)
    approx_kl = (ratio - 1.0) - log_ratio
    return loss, clip_fraction.detach(), approx_kl.detach()


def token_share(mask: torch.Tensor) -> float:
    """W · n_local / N_global: what turns this process's masked mean into its share of the global
    one once DDP averages gradients over the W processes (1.0 in one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1.0
    world = dist.get_world_size()
    n_local = float(mask.sum())
    count = torch.tensor([n_local], device=mask.device)
    n_global = global_means(n=count)["n"] * world  # the mean of one count per rank
    return world * n_local / max(n_global, 1.0)


def global_token_mean(x: torch.Tensor, mask: torch.Tensor, share: float) -> torch.Tensor:
    """The mean of ``x`` over the masked tokens of *all* processes, differentiably.

    Its value is the exact global mean; its gradient, once DDP has averaged gradients over the
    W processes, is the gradient of that global mean (``share`` = ``token_share(mask)``). In one
    process this is the plain masked mean.
    """
    weights = mask.to(x.dtype)
    local_mean = (x * weights).sum() / weights.sum().clamp(min=1.0)
    if not (dist.is_available() and dist.is_initialized()):
        return local_mean
    contribution = local_mean * share
    value = global_means(x=(x.detach(), mask))["x"]
    return contribution - contribution.detach() + value


def kl_loss_is_linear(decision: Any, config: TrainConfig) -> bool:
    """Whether ``kl_loss`` has one slope at every KL (every decision but the dead-band hinge):
    then its gradient over micro-batches is that slope times the live KL's, known up front."""
    return not (isinstance(decision, DeadBandDecision) and config.penalty_mode == "hinge")


def kl_slope(live_kl: float, decision: Any, config: TrainConfig) -> float:
    """d kl_loss / d KL at ``live_kl``: what the live KL's gradient is scaled by (0 for the
    published detached penalty)."""
    kl = torch.tensor(live_kl, dtype=torch.float64, requires_grad=True)
    term = kl_loss(kl, decision, config)
    if not term.requires_grad:
        return 0.0
    (slope,) = torch.autograd.grad(term, kl)
    return float(slope)


def kl_loss(live_kl: torch.Tensor, decision: Any, config: TrainConfig) -> torch.Tensor:
    """The KL term for the live batch KL (a 0-d tensor with graph)."""
    if not isinstance(decision, DeadBandDecision):
        return kl_penalty(live_kl, decision)
    if config.penalty_mode == "detached":
        kl = float(live_kl.detach())
        if not math.isfinite(kl):  # the loss turns non-finite too: the trainer's guard stops it
            return live_kl.detach()
        return live_kl.new_tensor(decision.loss_at(kl))  # the published bug: no gradient flows
    return kl_penalty(live_kl, decision, mode=config.penalty_mode)
