"""PPO's pieces as the reference trainer uses them: GAE, advantage whitening, the clipped loss."""

from __future__ import annotations

import torch

from safecontrol.torch import global_masked_mean


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
