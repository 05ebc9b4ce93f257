"""Reading and writing the run directory's files so that a failure names the file.

Writes are atomic (``safecontrol._atomic``): a crash or a full disk leaves the previous version
intact and no temporary file behind. Reads of JSON turn a decoder error into a ``ValueError``
naming the file (and the line of a ``.jsonl``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safecontrol._atomic import atomic_file, write_json_atomic, write_text_atomic

__all__ = [
    "atomic_file",
    "read_json",
    "read_step_records",
    "write_json_atomic",
    "write_text_atomic",
]


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
