"""Token means over all processes that keep DDP's gradient exact (the loss terms of an update).

A process's masked mean averaged by DDP over W processes weighs every process alike, whatever its
token count; these helpers give the mean over the tokens of *all* processes and its gradient.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from safecontrol.torch import global_means


def token_share(mask: torch.Tensor) -> float:
    """W · n_local / N_global: what turns this process's masked mean into its share of the global
    one once DDP averages gradients over the W processes (1.0 in one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1.0
    world = dist.get_world_size()
    n_local = float(mask.sum())
    n_global = global_means(n=torch.tensor([n_local]))["n"] * world  # mean of one count per rank
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
