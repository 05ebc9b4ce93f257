"""Atomic, checksummed checkpoints.

The file is a one-line header ``safecontrol-checkpoint sha256=<digest of the rest>`` followed by
``torch.save``'s bytes. Saving writes a temporary file, fsyncs and renames it over the old one, so
a process killed mid-write (or a full disk) leaves the previous checkpoint untouched and no
temporary file. Loading verifies the digest, so a flipped byte is an error instead of a silently
different resume, then unpickles tensors and plain containers only (``weights_only``).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from safecontrol.atomic_files import atomic_file

CHECKPOINT_NAME = "checkpoint.pt"
MAGIC = b"safecontrol-checkpoint sha256="
REQUIRED_KEYS = (
    "step",
    "config",
    "policy",
    "critic",
    "target_critic",
    "policy_optimizer",
    "critic_optimizer",
    "controller",
    "prompt_sampler",
    "torch_rng",
    "python_rng",
)


def save_atomic(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    with atomic_file(path, "wb") as handle:
        handle.write(MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n")
        handle.write(body)


def load(path: Path, required: tuple[str, ...] = REQUIRED_KEYS) -> dict[str, Any]:
    """Load a checkpoint written by ``save_atomic``; ``ValueError`` naming the file when it is
    corrupt, truncated, or lacks one of the ``required`` keys (not a checkpoint of this
    trainer)."""
    data = path.read_bytes()
    header, _, body = data.partition(b"\n")
    if not header.startswith(MAGIC):
        raise ValueError(f"checkpoint {path} is not a safecontrol checkpoint (no header)")
    if hashlib.sha256(body).hexdigest().encode() != header[len(MAGIC) :]:
        raise ValueError(f"checkpoint {path} is corrupt: its checksum does not match its contents")
    try:
        state = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {path} cannot be read: {exc}") from exc
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing}: it was not written by this trainer")
    return state
