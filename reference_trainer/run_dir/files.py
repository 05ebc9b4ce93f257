"""Reading the run directory's files so that a failure names the file: a decoder error becomes a
``ValueError`` naming the file (and the line of a ``.jsonl``). Whole files are written through
``safecontrol.atomic_files`` (temporary file, fsync, rename); ``write_all`` writes in place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; a corrupt file is a ``ValueError`` naming it."""
    text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is corrupt (not valid JSON: {exc})") from exc


def numbered_step_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each per-step JSON object of ``metrics.jsonl`` /
    ``samples.jsonl`` (blank lines skipped). A corrupt line is a ``ValueError`` naming the file
    and the line number; so is a ``NaN`` or ``Infinity`` token, which Python's decoder would
    accept: the trainer writes strict JSON, so one is an edit or another writer's."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_refuse_constant)
        except ValueError as exc:  # JSONDecodeError, or a constant refused
            raise ValueError(f"{path} line {number} is corrupt (not valid JSON: {exc})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise ValueError(f"{path} line {number} is not a step record: {line[:80]!r}")
        yield number, row


def read_step_records(
    path: Path, keep: Callable[[dict[str, Any]], bool] = lambda row: True
) -> list[dict[str, Any]]:
    """The records of ``numbered_step_records(path)`` that ``keep`` accepts."""
    return [row for _, row in numbered_step_records(path) if keep(row)]


def _refuse_constant(token: str) -> float:
    raise ValueError(f"{token} is not a JSON number")


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the open file ``fd``: ``os.write`` may write part of it, and a
    short write is followed by the error (a full disk) that explains it."""
    rest = memoryview(data)
    while rest:
        rest = rest[os.write(fd, rest) :]
