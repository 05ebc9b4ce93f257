"""Reading and writing the run directory's files so that a failure names the file.

Writes are atomic (temporary file, then rename): a crash or a full disk leaves the previous
version intact and no temporary file behind. Reads of JSON turn a decoder error into a
``ValueError`` naming the file (and the line of a ``.jsonl``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write ``path`` through ``path.tmp``: renamed over ``path`` only when the block succeeds
    (after fsync); on any error the temporary file is removed and ``path`` is untouched."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):  # a full disk, a permission: say which file
            raise OSError(f"could not write {path}: {exc}") from exc
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_file(path) as handle:
        handle.write(text)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True))


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; a corrupt file is a ``ValueError`` naming it."""
    text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is corrupt (not valid JSON: {exc})") from exc


def read_step_records(
    path: Path, keep: Callable[[dict[str, Any]], bool] = lambda row: True
) -> list[dict[str, Any]]:
    """The per-step JSON objects of ``metrics.jsonl`` / ``samples.jsonl`` (blank lines skipped);
    a corrupt line is a ``ValueError`` naming the file and the line number."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} line {number} is corrupt (not valid JSON: {exc})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise ValueError(f"{path} line {number} is not a step record: {line[:80]!r}")
        if keep(row):
            rows.append(row)
    return rows
