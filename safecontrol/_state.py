"""The ``state_dict`` / ``load_state_dict`` contract shared by every controller.

A state dict is a plain JSON-serialisable dict::

    {"format_version": 1, "type": "PID", "config": {...}, "state": {...}}

``config`` holds the constructor arguments, ``state`` everything an update changes. Floats survive
a JSON round trip exactly (``repr`` is shortest-round-trip), so a controller restored from
``json.loads(json.dumps(c.state_dict()))`` continues bit-identically. Every value is finite, so
the dict is strict JSON (``json.dumps(..., allow_nan=False)`` accepts it). Loading checks the
type, the format version and that the config matches, so state never lands in a controller that
would interpret it differently.

Each controller's state is one ``NamedTuple`` record, replaced (never mutated) by every update:
immutable and typed like a frozen dataclass, but about six times cheaper to build, which matters
for a record built once per update. ``record_from_dict`` validates every field of a loaded record
against the record's type annotations (``int`` is a counter ≥ 0, ``float`` is finite, ``str``,
``bool``, ``X | None`` and ``tuple[float, ...]`` as written), then hands the record to the
controller's own ``check`` for the range and consistency rules only it knows. A controller's
``_set_state`` validates every part before it assigns any, so a rejected load changes nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from ._validation import _show, as_float

FORMAT_VERSION = 1

S = TypeVar("S")


def _plain(obj: Any) -> Any:
    """The strict-JSON form of ``obj`` (tuples become lists; NaN and inf raise ``ValueError``)."""
    return json.loads(json.dumps(obj, allow_nan=False))


def record_to_dict(record: Any) -> dict[str, Any]:
    """A ``NamedTuple`` state record as a plain dict (tuples as lists)."""
    return _plain(record._asdict())


# ---------------------------------------------------------------- field checks by annotation
Checker = Callable[[str, Any], Any]

MAX_COUNT = 2**53
"""Largest counter a loaded state may hold: beyond it a count is no longer exact as a float
(the filters divide by it), and no run makes 9·10^15 updates."""


def counter_field(label: str, value: Any) -> int:
    """A loaded counter: a Python int in [0, ``MAX_COUNT``] (not a bool, a float or a string)."""
    if type(value) is not int:
        raise ValueError(f"{label} must be an integer, got {type(value).__name__} {_show(value)}")
    if not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{label} must lie in [0, 2**53], got {_show(value)}")
    return value


def finite_field(label: str, value: Any) -> float:
    """A loaded float: a finite Python int or float (not a bool or a string), as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{label} must be a number, got {type(value).__name__} {_show(value)}")
    x = as_float(label, value)
    if not math.isfinite(x):
        raise ValueError(f"{label} must be finite, got {x!r}")
    return x


def _exact(kind: type) -> Checker:
    def check(label: str, value: Any) -> Any:
        if type(value) is not kind:
            raise ValueError(
                f"{label} must be a {kind.__name__}, got {type(value).__name__} {_show(value)}"
            )
        return value

    return check


def _optional(inner: Checker) -> Checker:
    def check(label: str, value: Any) -> Any:
        return None if value is None else inner(label, value)

    return check


def _sequence(inner: Checker, length: int | None) -> Checker:
    def check(label: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{label} must be a list, got {type(value).__name__} {_show(value)}")
        if length is not None and len(value) != length:
            raise ValueError(f"{label} must have {length} entries, got {len(value)}")
        return tuple(inner(f"{label}[{i}]", v) for i, v in enumerate(value))

    return check


def _unchecked(label: str, value: Any) -> Any:
    return value


def _checker(hint: Any) -> Checker:
    """The check for one annotation; a type it does not know is left to the owner's ``check``."""
    if hint is int:
        return counter_field
    if hint is float:
        return finite_field
    if hint is bool or hint is str:
        return _exact(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return _optional(_checker(inner))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence(_checker(args[0]), None)
        if len(set(args)) == 1:
            return _sequence(_checker(args[0]), len(args))
    return _unchecked


_CHECKERS: dict[type, dict[str, Checker]] = {}


def _field_checkers(cls: type) -> dict[str, Checker]:
    checkers = _CHECKERS.get(cls)
    if checkers is None:
        hints = typing.get_type_hints(cls)
        checkers = {name: _checker(hints[name]) for name in _names(cls)}
        _CHECKERS[cls] = checkers
    return checkers


def _names(cls: type) -> tuple[str, ...]:
    """The fields of a ``NamedTuple`` or a dataclass."""
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    return cls._fields  # type: ignore[attr-defined,no-any-return]


def validated_fields(
    cls: type, data: Any, owner: str, names: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """``data``'s fields checked against the annotations of ``cls`` (a ``NamedTuple`` or a
    dataclass): exactly the fields ``names`` (default all of them), each converted to its plain
    Python type; a ``ValueError`` names the first bad one."""
    if not isinstance(data, dict):
        raise ValueError(f"{owner} state must be a dict, got {type(data).__name__} {_show(data)}")
    expected = _names(cls) if names is None else names
    if set(data) != set(expected):
        missing = sorted(set(expected) - set(data))
        unknown = sorted(str(k) for k in set(data) - set(expected))
        raise ValueError(f"{owner} state: missing fields {missing}, unknown fields {unknown}")
    checkers = _field_checkers(cls)
    return {name: checkers[name](f"{owner} state: {name}", data[name]) for name in expected}


def parts_of(state: Any, names: tuple[str, ...], owner: str) -> dict[str, Any]:
    """A composite's state: a dict with exactly the keys ``names`` (its parts' states)."""
    if not isinstance(state, dict) or set(state) != set(names):
        got = sorted(map(str, state)) if isinstance(state, dict) else _show(state)
        raise ValueError(f"{owner} state must have exactly the fields {sorted(names)}, got {got}")
    return state


def record_from_dict(
    cls: type[S], data: Any, owner: str, check: Callable[[S], None] | None = None
) -> S:
    """Rebuild a ``NamedTuple`` state record from ``data``, validating every field by its
    annotation and then with ``check`` (which raises ``ValueError`` naming the field)."""
    record = cls(**validated_fields(cls, data, owner))
    if check is not None:
        check(record)
    return record


def require(condition: bool, owner: str, field: str, rule: str, value: Any) -> None:
    """Raise ``ValueError("{owner} state: {field} must {rule}, got {value}")`` unless
    ``condition``: the form of every range and consistency check on a loaded state."""
    if not condition:
        raise ValueError(f"{owner} state: {field} must {rule}, got {_show(value)}")


class Stateful:
    """Mixin: subclasses provide ``_config``, ``_get_state`` and ``_set_state``.

    ``_set_state`` validates the whole state before it assigns anything: a rejected load leaves
    the controller exactly as it was. ``_upgrade_state_dict`` lets a class read state dicts saved
    before it gained a setting.
    """

    _state_format_version: ClassVar[int] = FORMAT_VERSION

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    def _get_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _upgrade_state_dict(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """A state dict of an older release, rewritten in today's form (a private copy)."""
        return state_dict

    def state_dict(self) -> dict[str, Any]:
        """A plain, strict-JSON snapshot; see ``load_state_dict``."""
        return {
            "format_version": self._state_format_version,
            "type": type(self).__name__,
            "config": _plain(self._config()),
            "state": _plain(self._get_state()),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a snapshot taken by ``state_dict``; raises ``ValueError`` on any mismatch or
        invalid value, and then changes nothing."""
        if not isinstance(state_dict, dict):
            raise ValueError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        name = type(self).__name__
        for key in ("format_version", "type", "config", "state"):
            if key not in state_dict:
                raise ValueError(f"{name}.load_state_dict: missing key {key!r}")
        kind, version = state_dict["type"], state_dict["format_version"]
        if not isinstance(kind, str) or kind != name:
            raise ValueError(f"state_dict is for {_show(kind)}, not {name!r}")
        if type(version) is not int or version != self._state_format_version:
            raise ValueError(
                f"{name} state format_version {_show(version)} is not supported "
                f"(expected {self._state_format_version})"
            )
        try:
            state_dict = self._upgrade_state_dict(copy.deepcopy(state_dict))
            theirs = _plain(state_dict["config"])
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"{name}.load_state_dict: config is not plain JSON ({exc})") from None
        mine = _plain(self._config())
        if not isinstance(theirs, dict):
            raise ValueError(f"{name}.load_state_dict: config must be a dict, got {_show(theirs)}")
        if mine != theirs:
            changed = sorted(
                str(k) for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k)
            )
            raise ValueError(f"{name}.load_state_dict: config differs in {changed}")
        try:
            self._set_state(state_dict["state"])
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"{name}.load_state_dict: malformed state ({exc!r})") from exc
