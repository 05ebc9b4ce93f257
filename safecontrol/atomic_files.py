"""Atomic file writes, the one helper every writer of this project uses (controller state files
of the integrations, the reference trainer's run files and checkpoints, benchmark results).

The content goes to a uniquely named temporary file beside the target, is flushed and fsynced,
then renamed over the target, and the directory entry is fsynced: a reader (or a crash, or a
full disk) sees the old file or the complete new one, never half, and no temporary file stays.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """A handle whose content replaces ``path`` when the block succeeds; on any error the
    temporary file is removed, ``path`` is untouched, and an ``OSError`` names ``path``."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # a full disk, a permission: say which file
            raise OSError(exc.errno, f"could not write {target}: {exc.strerror or exc}") from exc
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_file(path) as handle:
        handle.write(text)


def write_json_atomic(path: str | os.PathLike[str], data: Any, indent: int = 2) -> None:
    """Strict JSON (NaN and inf refused before anything is written), keys sorted. Data that is
    not strict JSON raises json's own error type, naming ``path`` (which keeps its content)."""
    try:
        text = json.dumps(data, indent=indent, sort_keys=True, allow_nan=False)
    except (ValueError, TypeError) as exc:  # NaN, inf, an object json cannot hold
        raise type(exc)(f"could not write {path}: {exc}") from exc
    write_text_atomic(path, text)
