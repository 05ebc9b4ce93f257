"""State as data: one typed record per controller and one codec for all of them.

A state dict is a plain JSON-serialisable dict::

    {"format_version": 1, "type": "PID", "config": {...}, "state": {...}}

``config`` holds the constructor arguments, ``state`` everything an update changes. Floats survive
a JSON round trip exactly (``repr`` is shortest-round-trip), so a controller restored from
``json.loads(json.dumps(c.state_dict()))`` continues bit-identically. Every value is finite, so
the dict is strict JSON (``json.dumps(..., allow_nan=False)`` accepts it). Loading checks the
type, the format version and that the config matches, so state never lands in a controller that
would interpret it differently.

As in optax, a controller's whole state is one ``NamedTuple`` record (``self._state``), replaced
(never mutated) by every update: immutable and typed like a frozen dataclass, but about six times
cheaper to build, which matters for a record built once per update. A composite's record holds
its parts' records (``DualEMAState(short: EMAState, long: EMAState)``, SAFE's record holds the
tracker's, the velocity's, the phase detector's and the threshold's), so a composite's update
builds its new record from its parts' pure transitions and assigns it once: a rejected update
changes nothing because nothing is assigned before the end.

One codec serves every record. ``encode`` writes a record as a dict of its fields, recursively
(nested records as nested dicts, tuples as lists; a field may be saved under another key, see
``json_keys``). ``decode`` rebuilds a record from such a dict, checking every field against the
record's type annotations: ``int`` is a counter ≥ 0, ``float`` is finite, ``str``, ``bool``,
``X | None`` and ``tuple[float, ...]`` as written, a nested record recursively, and a type with
``_from_plain`` (e.g. ``SafeDecision``) by that. The range and consistency rules only a controller
knows (an integral inside its limits, a coefficient that matches its terms) are its
``_check_state`` hook, which a composite calls for its parts. A rejected load changes nothing.

So a stateful class declares only: its record type (``_record``), its constructor arguments
(``_config``), its record after construction (``_initial_state``) and, where needed, the range
rules of a loaded record (``_check_state``). ``Stateful`` does the rest: ``state_dict``,
``load_state_dict``, ``reset`` and the read-only ``state``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from ._validation import _show, as_float

FORMAT_VERSION = 1

S = TypeVar("S")
R = TypeVar("R")
T = TypeVar("T")


def _plain(obj: Any) -> Any:
    """The strict-JSON form of ``obj`` (tuples become lists; NaN and inf raise ``ValueError``)."""
    return json.loads(json.dumps(obj, allow_nan=False))


# ---------------------------------------------------------------- keys
_KEYS: dict[type, tuple[tuple[str, str], ...]] = {}


def json_keys(**keys: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: save the record's fields ``field=key`` under ``key``.

    For a field whose natural key would shadow a ``tuple`` method (``count``): the record names
    it otherwise (``seen``) and the state dict keeps the key it has always had.
    """

    def declare(cls: type[T]) -> type[T]:
        unknown = sorted(set(keys) - set(_names(cls)))
        if unknown:
            raise TypeError(f"{cls.__name__} has no fields {unknown}")
        _KEYS[cls] = tuple((name, keys.get(name, name)) for name in _names(cls))
        return cls

    return declare


def _keys(cls: type) -> tuple[tuple[str, str], ...]:
    """(field, key) for every field of ``cls``, in order."""
    keys = _KEYS.get(cls)
    if keys is None:
        keys = _KEYS[cls] = tuple((name, name) for name in _names(cls))
    return keys


def _names(cls: type) -> tuple[str, ...]:
    """The fields of a ``NamedTuple`` or a dataclass."""
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    names: tuple[str, ...] = getattr(cls, "_fields")  # noqa: B009 (typed: tuple has no _fields)
    return names


def _is_record(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields")


# ---------------------------------------------------------------- encode
def _tree(value: Any) -> Any:
    if isinstance(value, tuple):
        if _is_record(type(value)):
            return {key: _tree(getattr(value, name)) for name, key in _keys(type(value))}
        return [_tree(v) for v in value]
    to_plain = getattr(value, "_to_plain", None)
    return value if to_plain is None else to_plain()


def encode(record: Any) -> dict[str, Any]:
    """A state record as plain strict JSON: a dict of its fields (by their keys), nested records
    as nested dicts, tuples as lists, a value with ``_to_plain`` as that returns."""
    plain: dict[str, Any] = _plain(_tree(record))
    return plain


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

    return _nested(check) if getattr(inner, "nested", False) else check


def _sequence(inner: Checker, length: int | None) -> Checker:
    def check(label: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{label} must be a list, got {type(value).__name__} {_show(value)}")
        if length is not None and len(value) != length:
            raise ValueError(f"{label} must have {length} entries, got {len(value)}")
        return tuple(inner(f"{label}[{i}]", v) for i, v in enumerate(value))

    return check


def _nested(check: Checker) -> Checker:
    """Mark ``check`` as one of a nested record: it is called with the record's owner
    (``"SafeController.kl_tracker"``) instead of a field's label."""
    check.nested = True  # type: ignore[attr-defined]
    return check


def _record_checker(cls: type) -> Checker:
    return _nested(lambda owner, value: decode(cls, value, owner))


def _unchecked(label: str, value: Any) -> Any:
    return value


def _checker(hint: Any) -> Checker:
    """The check for one annotation; a type it does not know is left to the owner's
    ``_check_state``."""
    if hint is int:
        return counter_field
    if hint is float:
        return finite_field
    if hint is bool or hint is str:
        return _exact(hint)
    if _is_record(hint):
        return _record_checker(hint)
    from_plain = getattr(hint, "_from_plain", None)
    if from_plain is not None:
        return _nested(lambda owner, value: from_plain(value, owner))
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


def validated_fields(cls: type, data: Any, owner: str) -> dict[str, Any]:
    """``data``'s entries checked against the annotations of ``cls`` (a ``NamedTuple`` or a
    dataclass): exactly one per field (under its key), each converted to its plain Python type;
    returned by field name. A ``ValueError`` names the first bad key."""
    if not isinstance(data, dict):
        raise ValueError(f"{owner} state must be a dict, got {type(data).__name__} {_show(data)}")
    keys = _keys(cls)
    expected = [key for _, key in keys]
    if set(data) != set(expected):
        missing = sorted(set(expected) - set(data))
        unknown = sorted(str(k) for k in set(data) - set(expected))
        raise ValueError(f"{owner} state: missing fields {missing}, unknown fields {unknown}")
    checkers = _field_checkers(cls)
    out = {}
    for name, key in keys:
        check = checkers[name]
        label = f"{owner}.{key}" if getattr(check, "nested", False) else f"{owner} state: {key}"
        out[name] = check(label, data[key])
    return out


def decode(cls: type[S], data: Any, owner: str) -> S:
    """The record ``cls`` that ``encode`` wrote as ``data``, every field checked by its
    annotation (nested records recursively); a ``ValueError`` names the first bad one."""
    return cls(**validated_fields(cls, data, owner))


def require(condition: bool, owner: str, field: str, rule: str, value: Any) -> None:
    """Raise ``ValueError("{owner} state: {field} must {rule}, got {value}")`` unless
    ``condition``: the form of every range and consistency check on a loaded state."""
    if not condition:
        raise ValueError(f"{owner} state: {field} must {rule}, got {_show(value)}")


build_record = tuple.__new__
"""``build_record(Record, (field, …))``: a ``NamedTuple`` record from every field, in declared
order, without the generated ``__new__`` (a Python-level call that doubles the cost of building a
small record); for the records an update builds. It checks nothing, not even the field count:
use it only where every field is passed in order (the record's tests rebuild it by keyword)."""


def view(part: T, record: Any) -> T:
    """A copy of ``part`` (a composite's part) holding ``record``, for introspection: the
    composite's record is the state, so changing the copy changes nothing in the composite."""
    snapshot = copy.deepcopy(part)
    snapshot._state = record  # type: ignore[attr-defined]
    return snapshot


class Stateful(Generic[R]):
    """Mixin: ``state_dict``, ``load_state_dict``, ``reset`` and ``state`` from a declaration.

    A subclass sets ``_record`` (the type of its state record ``self._state``) and defines
    ``_config`` (its constructor arguments), ``_initial_state`` and, for range and consistency
    rules beyond the field types, ``_check_state``. ``_upgrade_state_dict`` lets a class read
    state dicts saved before it gained a setting.
    """

    _record: ClassVar[type[Any]]
    _state: R
    _state_format_version: ClassVar[int] = FORMAT_VERSION

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    def _initial_state(self) -> R:
        raise NotImplementedError

    def _check_state(self, record: R, owner: str) -> None:
        """Range and consistency rules of a loaded record (``ValueError`` via ``require``);
        the field types are already checked. ``owner`` names the record in messages."""

    def _upgrade_state_dict(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """A state dict of an older release, rewritten in today's form (a private copy)."""
        return state_dict

    @property
    def state(self) -> R:
        """The current state record (immutable; every update replaces it)."""
        return self._state

    def reset(self) -> None:
        """Return to the state right after construction."""
        self._state = self._initial_state()

    def state_dict(self) -> dict[str, Any]:
        """A plain, strict-JSON snapshot; see ``load_state_dict``."""
        return {
            "format_version": self._state_format_version,
            "type": type(self).__name__,
            "config": _plain(self._config()),
            "state": encode(self._state),
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
            expected = self._state_format_version
            raise ValueError(
                f"{name} state format_version {_show(version)} is not supported: this release "
                f"reads format_version {expected} only. A state dict of a newer release loads "
                f"with that release (upgrade safecontrol); to migrate one by hand, rewrite its "
                f"'config' and 'state' in the layout of this release's {name}(...).state_dict() "
                f"and set 'format_version' to {expected}"
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
            record = decode(self._record, state_dict["state"], name)
            self._check_state(record, name)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"{name}.load_state_dict: malformed state ({exc!r})") from exc
        self._state = record
