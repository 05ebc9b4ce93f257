"""Frozen dataclasses to JSON and back: ``dataclasses.asdict`` out, ``decode`` in.

``decode(kind, data)`` rebuilds ``kind`` from what ``json.loads`` returned, field by field from
the dataclass's type hints: nested dataclasses, ``X | None``, ``tuple[X, ...]``, fixed tuples and
``dict[str, X]``. A field missing from ``data`` takes its default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def decode(kind: type[T], data: Any) -> T:
    """``data`` (JSON values) as an instance of the dataclass ``kind``."""
    value: T = _decode(kind, data)
    return value


def _decode(kind: Any, data: Any) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(
            **{
                f.name: _decode(hints[f.name], data[f.name])
                for f in dataclasses.fields(kind)
                if f.name in data
            }
        )
    if origin in (types.UnionType, typing.Union):
        if data is None:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _decode(inner, data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], x) for x in data)
        return tuple(_decode(a, x) for a, x in zip(args, data, strict=True))
    if origin in (dict, Mapping):
        return {key: _decode(args[1], x) for key, x in data.items()}
    if kind is float:
        return float(data)
    return data
