"""Argument checks shared by every controller: the one place where a value becomes a number.

A number is a Python ``int`` or ``float`` (never a ``bool``), a numpy integer or floating scalar,
a 0-d numpy array of such a dtype, or a 0-d tensor of an integer or floating dtype (read through
``detach``, so its graph is never touched; the core never imports torch). Everything else —
strings and bytes (``"0.5"``), bools of any kind (``np.True_``, a bool tensor), complex numbers,
arrays or tensors of shape (1,), lists, ``None`` — is rejected with a ``ValueError`` that names
the argument and the offending value. The checks return plain Python ``float``/``int``/``bool``/
``str`` values, so what a controller stores (and writes into its state dict) is always plain JSON.

Controllers validate all of an update's inputs before touching their state, so a rejected update
changes nothing.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any, SupportsFloat

import numpy as np

NONFINITE_POLICIES = ("raise", "skip")

MAX_MEASUREMENT = 1e150
"""Largest magnitude a controller accepts as a measurement (a KL, entropy or reward).

Nothing a training run measures comes near it; a value beyond it is a bug upstream, and accepting
it would let the controllers' second moments (squares of differences, sums over a window)
overflow, leaving a controller that rejects every later, ordinary measurement. With inputs below
1e150 every square stays below 1e301."""

_REPR_LIMIT = 80


def _show(value: Any) -> str:
    """``repr(value)``, shortened: a rejected megabyte string must not become the message."""
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."


def _not_a_number(name: str, value: Any, why: str = "") -> ValueError:
    detail = f" ({why})" if why else ""
    return ValueError(
        f"{name} must be a real number{detail}, got {type(value).__name__} {_show(value)}"
    )


def _int_to_float(name: str, value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large to be a float, got {_show(value)}") from None


def as_float(name: str, value: Any) -> float:
    """``value`` as a Python float; a ``ValueError`` naming ``name`` when it is not a number.

    Accepts Python ints and floats (not bools), numpy integer/floating scalars and 0-d arrays,
    and 0-d integer/floating tensors. NaN and inf pass (see ``finite``).
    """
    kind = type(value)
    if kind is float:  # the common case, and float(value) would return value itself
        x: float = value
        return x
    if kind is int:
        return _int_to_float(name, value)
    return _as_float_slow(name, value)


def _as_float_slow(name: str, value: Any) -> float:
    if isinstance(value, bool | np.bool_):
        raise _not_a_number(name, value, "not a bool")
    if isinstance(value, float):  # float subclasses, np.float64 among them
        return float(value)
    if isinstance(value, int):
        return _int_to_float(name, int(value))
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise _not_a_number(name, value, f"a scalar, not an array of shape {value.shape}")
        value = value[()]
    if isinstance(value, np.generic):
        if value.dtype.kind in "iu":
            return _int_to_float(name, int(value))
        if value.dtype.kind == "f":
            return float(value)
        raise _not_a_number(name, value, f"dtype {value.dtype} is not integer or floating")
    if hasattr(value, "detach") and hasattr(value, "dtype"):  # a tensor
        return float(_scalar_tensor(name, value))
    raise _not_a_number(name, value)


def _scalar_tensor(name: str, value: Any) -> Any:
    """The detached 0-d tensor ``value`` of an integer or floating dtype."""
    if getattr(value, "ndim", None) != 0:
        shape = tuple(getattr(value, "shape", ()))
        raise _not_a_number(name, value, f"a scalar, not a tensor of shape {shape}")
    dtype = value.dtype
    if getattr(dtype, "is_complex", False) or "complex" in str(dtype) or _is_bool_dtype(dtype):
        raise _not_a_number(name, value, f"dtype {dtype} is not integer or floating")
    _check_holds_values(name, value)
    return value.detach()


def _check_holds_values(name: str, value: Any) -> None:
    """Refuse a meta tensor: it has a shape and a dtype but no data, so reading it fails deep in
    torch (``.item()``) with an error that names no argument."""
    if getattr(value, "is_meta", False) is True:
        raise ValueError(
            f"{name} is a tensor on the meta device, which holds no values (only a shape and a "
            f"dtype); pass one on a real device, got {_show(value)}"
        )


def _is_bool_dtype(dtype: Any) -> bool:
    return str(dtype).rsplit(".", 1)[-1] == "bool"


def finite(name: str, value: SupportsFloat) -> float:
    x = as_float(name, value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return x


def measurement(name: str, value: SupportsFloat) -> float:
    """A finite measurement of magnitude at most ``MAX_MEASUREMENT``."""
    x = finite(name, value)
    if not -MAX_MEASUREMENT <= x <= MAX_MEASUREMENT:
        raise ValueError(f"{name} must have magnitude <= {MAX_MEASUREMENT:g}, got {x!r}")
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


def integer(name: str, value: Any) -> int:
    """``value`` as a Python int: a Python or numpy integer, or a 0-d integer array or tensor.

    Bools, floats (even integral ones), strings and arrays of shape (1,) are rejected.
    """
    if type(value) is int:
        return value
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be an integer, not a bool, got {_show(value)}")
    if hasattr(value, "detach") and hasattr(value, "dtype"):
        dtype = value.dtype
        if getattr(value, "ndim", None) != 0 or _is_bool_dtype(dtype):
            raise ValueError(f"{name} must be an integer, got {_show(value)}")
        _check_holds_values(name, value)
    elif isinstance(value, np.ndarray) and value.ndim != 0:
        raise ValueError(f"{name} must be an integer, got an array of shape {value.shape}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(
            f"{name} must be an integer, got {type(value).__name__} {_show(value)}"
        ) from None


def positive_int(name: str, value: Any) -> int:
    """A strictly positive integer (see ``integer`` for what counts as one)."""
    n = integer(name, value)
    if n <= 0:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return n


def real_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a float64 array, which must hold real numbers: arrays of strings, bools,
    complex numbers or objects (``None``) are rejected rather than converted."""
    if isinstance(value, str | bytes) or hasattr(value, "detach"):
        raise ValueError(f"{name} must be an array of real numbers, got {_show(value)}")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers ({exc})") from None
    if array.dtype.kind not in "iuf":
        raise ValueError(
            f"{name} must be an array of real numbers, got dtype {array.dtype}: {_show(value)}"
        )
    return array.astype(np.float64, copy=False)


def non_negative_int(name: str, value: Any) -> int:
    n = integer(name, value)
    if n < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    return n


def boolean(name: str, value: Any) -> bool:
    """``True`` or ``False`` exactly: ``"false"``, 0, 1 and ``np.bool_`` are rejected, because
    ``bool("false")`` is True."""
    if type(value) is not bool:
        raise ValueError(f"{name} must be True or False, got {type(value).__name__} {_show(value)}")
    return value


def text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__} {_show(value)}")
    return str(value)


def one_of(name: str, value: Any, options: Iterable[str]) -> str:
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {_show(value)}")
    return str(value)


def limits(
    name: str, value: tuple[SupportsFloat | None, SupportsFloat | None]
) -> tuple[float | None, float | None]:
    """A ``(lower, upper)`` pair where ``None`` means unbounded; NaN and lower > upper rejected.

    An infinite bound on its own side (−inf below, +inf above) means unbounded and becomes
    ``None``, so it never reaches a state dict as non-standard JSON; +inf as the lower bound or
    −inf as the upper one bounds nothing finite and is rejected.
    """
    if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a (lower, upper) pair, got {_show(value)}")
    try:
        lower, upper = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (lower, upper) pair, got {_show(value)}") from None
    lo = None if lower is None else as_float(f"{name}[0]", lower)
    hi = None if upper is None else as_float(f"{name}[1]", upper)
    for label, x in ((f"{name}[0]", lo), (f"{name}[1]", hi)):
        if x is not None and math.isnan(x):
            raise ValueError(f"{label} must not be NaN, got {x!r}")
    if lo == -math.inf:
        lo = None
    if hi == math.inf:
        hi = None
    if lo == math.inf or hi == -math.inf:
        raise ValueError(f"{name} must bound a finite range, got {_show(value)}")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{name}: lower limit {lo!r} is greater than upper limit {hi!r}")
    return lo, hi


def clamp(x: float, lo: float | None, hi: float | None) -> float:
    if lo is not None and x < lo:
        return lo
    if hi is not None and x > hi:
        return hi
    return x


def all_finite(*values: float) -> bool:
    """Whether every value is finite: one ``isfinite`` on the sum in the common case (a sum of
    floats is NaN or inf if any term is), the values one by one only when the sum overflowed."""
    return math.isfinite(sum(values)) or all(map(math.isfinite, values))
