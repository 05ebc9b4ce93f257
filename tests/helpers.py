"""Shared test helpers."""

from __future__ import annotations

import copy
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


def with_changes(state_dict: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of a controller's state dict with ``changes`` made under its ``state``: each key a
    dotted path ("steering.kls"), each value the new value or a function of the old one."""
    out = copy.deepcopy(state_dict)
    for path, value in changes.items():
        node = out["state"]
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value(node[last]) if callable(value) else value
    return out


def replaced(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of ``obj`` with the node at ``path`` (as ``nodes`` gives it) set to ``value``."""
    out = copy.deepcopy(obj)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def loads_or_is_refused_naming(
    controller: Any, state: dict[str, Any], path: tuple[Any, ...]
) -> bool:
    """Load ``state`` (a hostile value at ``path``): True when it loaded; False when it was refused
    with an error naming the field (or the part of the dict it broke), the controller unchanged."""
    before = controller.state_dict()
    try:
        controller.load_state_dict(state)
    except ValueError as exc:
        keys = [str(k) for k in path if isinstance(k, str)]
        named = [keys[-1], "config", "state_dict is for", "format_version", "state must"]
        assert any(n in str(exc) for n in named), str(exc)
        assert controller.state_dict() == before
        return False
    return True
