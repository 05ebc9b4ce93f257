"""Shared test helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def json_roundtrip(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A state dict as it comes back from a JSON checkpoint file (proves it is plain JSON)."""
    return json.loads(json.dumps(state_dict, allow_nan=False))


def nodes(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value in a nested dict/list: the leaves and the containers."""
    if path:
        yield path
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from nodes(value, (*path, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from nodes(value, (*path, i))
