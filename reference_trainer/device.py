"""Where a run computes and in which precision: ``device`` and ``dtype`` of a ``TrainConfig``.

bfloat16 is autocast (mixed precision): the weights, their gradients and the optimizer state stay
float32 (the master weights), the matrix products of the policy's, the reference's and the
critic's forwards (and so their backward) run in bfloat16, and everything a controller or a loss
reads (log-probabilities, KL, entropy, values) is cast back to float32 before it is used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .config import DEVICE_PATTERN
from .ranks import local_rank, world

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """The device ``name`` means on this machine, for this process; one that is not there is an
    error naming it. "auto" is CUDA when present, else the CPU; "cuda" is this process's GPU
    (``LOCAL_RANK`` under torchrun)."""
    if not DEVICE_PATTERN.fullmatch(name):  # a TrainConfig checked it; another caller may not
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("device='mps' but this torch build or machine has no MPS device")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but torch.cuda.is_available() is False here")
    if name == "cuda":
        return torch.device("cuda", local_rank())
    if world() > 1:
        raise ValueError(
            f"device={name!r} would put every process on one GPU; under torchrun use "
            f"device='cuda' (each process takes its LOCAL_RANK's GPU)"
        )
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device={name!r} but only {torch.cuda.device_count()} GPUs are visible")
    return device


@contextlib.contextmanager
def autocast(device: torch.device, dtype: str) -> Iterator[None]:
    """Mixed precision for the forwards inside (nothing at all for float32)."""
    if dtype == "float32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=TORCH_DTYPES[dtype]):
        yield
