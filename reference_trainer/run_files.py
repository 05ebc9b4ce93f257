"""Reading the run directory's files so that a failure names the file: a decoder error becomes a
``ValueError`` naming the file (and the line of a ``.jsonl``). Writes go through
``safecontrol._atomic`` (temporary file, fsync, rename).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
