"""Argument checks shared by every controller.

Each check converts its input to a Python float (so numpy scalars and 0-d tensors are accepted)
and raises ``ValueError`` naming the argument and the offending value. Controllers validate all of
an update's inputs before touching their state, so a rejected update changes nothing.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any, SupportsFloat

NONFINITE_POLICIES = ("raise", "skip")


def as_float(name: str, value: Any) -> float:
    """``float(value)``, with a ``ValueError`` naming ``name`` when that is impossible."""
    if type(value) is float:  # the common case, and float(value) would return value itself
        return value
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got bool {value!r}")
    if hasattr(value, "detach"):  # a 0-d tensor: read its value, never its graph
        value = value.detach()
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real number, got {value!r}") from exc


def finite(name: str, value: SupportsFloat) -> float:
    x = as_float(name, value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return x


def positive(name: str, value: SupportsFloat) -> float:
    x = finite(name, value)
    if x <= 0.0:
        raise ValueError(f"{name} must be > 0, got {x!r}")
    return x


def non_negative(name: str, value: SupportsFloat) -> float:
    x = finite(name, value)
    if x < 0.0:
        raise ValueError(f"{name} must be >= 0, got {x!r}")
    return x


def decay(name: str, value: SupportsFloat) -> float:
    """An exponential-smoothing decay, strictly inside (0, 1)."""
    x = finite(name, value)
    if not 0.0 < x < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {x!r}")
    return x


def positive_int(name: str, value: Any) -> int:
    """A strictly positive integer (Python or numpy int; bools and floats rejected)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if n <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return n


def one_of(name: str, value: Any, options: Iterable[str]) -> str:
    options = tuple(options)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return str(value)


def limits(
    name: str, value: tuple[SupportsFloat | None, SupportsFloat | None]
) -> tuple[float | None, float | None]:
    """A ``(lower, upper)`` pair where ``None`` means unbounded; NaN and lower > upper rejected."""
    try:
        lower, upper = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (lower, upper) pair, got {value!r}") from None
    lo = None if lower is None else as_float(f"{name}[0]", lower)
    hi = None if upper is None else as_float(f"{name}[1]", upper)
    for label, x in ((f"{name}[0]", lo), (f"{name}[1]", hi)):
        if x is not None and math.isnan(x):
            raise ValueError(f"{label} must not be NaN, got {x!r}")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{name}: lower limit {lo!r} is greater than upper limit {hi!r}")
    return lo, hi


def clamp(x: float, lo: float | None, hi: float | None) -> float:
    if lo is not None and x < lo:
        return lo
    if hi is not None and x > hi:
        return hi
    return x
