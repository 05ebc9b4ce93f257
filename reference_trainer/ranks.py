"""The processes of a run (torchrun): how many, which one this is, and what they must share.

One process: every helper here is the identity or a no-op. Under torchrun the process group is
NCCL when the run trains on CUDA and gloo otherwise; every rank draws the same prompts, samples
its own shard of them, and must reach the same controller decision.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def world_size_from_environment() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when unset); anything else is an error naming it."""
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        world = int(text)
    except ValueError:
        world = 0
    if world < 1:
        raise ValueError(
            f"environment variable WORLD_SIZE must be a positive integer, got {text!r}"
        )
    return world


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK``, 0 when unset): its CUDA device."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def start_process_group(cuda: bool) -> None:
    """Join torchrun's process group: NCCL for a run on CUDA (this process on its LOCAL_RANK's
    GPU), gloo for one on the CPU."""
    if dist.is_initialized():
        return
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if cuda else "gloo")


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The model a ``DistributedDataParallel`` wraps (the model itself in one process)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def average_gradients(params: list[torch.Tensor]) -> None:
    """What DDP does at a synchronised backward, for gradients accumulated under ``no_sync``:
    each gradient becomes its mean over the ranks."""
    if world() == 1:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world()


def check_ranks_agree(decision: Any) -> None:
    """Every rank must hold the same decision: the controllers saw the same global stats."""
    if world() == 1:
        return
    decisions: list[Any] = [None] * world()
    dist.all_gather_object(decisions, decision.as_dict())
    if any(d != decisions[0] for d in decisions):
        raise RuntimeError(f"controller decisions differ across ranks: {decisions}")


def gather_strings(items: list[str]) -> list[str]:
    """Every rank's items, in rank order."""
    if world() == 1:
        return list(items)
    gathered: list[list[str]] = [[] for _ in range(world())]
    dist.all_gather_object(gathered, items)
    return [x for part in gathered for x in part]


def rank_rng_states(device: torch.device) -> dict[str, list[torch.Tensor]]:
    """Every rank's sampling streams, for rank 0 to write into the checkpoint: ``rank_rng`` the
    CPU generators and, on CUDA, ``rank_cuda_rng`` the devices'."""
    states = {"rank_rng": torch.get_rng_state()}
    if device.type == "cuda":
        states["rank_cuda_rng"] = torch.cuda.get_rng_state(device)
    if world() == 1:
        return {key: [state] for key, state in states.items()}
    gathered: list[Any] = [None] * world()
    dist.all_gather_object(gathered, states)
    return {key: [ranks_states[key] for ranks_states in gathered] for key in states}
