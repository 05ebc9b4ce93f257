"""SAFE's soft-min aggregation of N value heads (SPEC §1.1).

    V_soft = −α · log( (1/N) · Σ_i exp(−V_i / α) )

min(V) ≤ V_soft ≤ min(min(V) + α·log N, mean(V)); V_soft → min(V) as α → 0 and → mean(V) as
α → ∞, and equals V when all heads agree. A pessimistic value estimate that is smooth in the heads.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._validation import integer, positive, real_array

SERIES_LIMIT = 1e-8
"""Largest spread / α (spread = max V − min V) at which V_soft is taken from its expansion in
1/α, mean(V) − Var(V)/(2α): the next term is below (spread/α)² · spread/6, under 2e-17 · spread.
Here the exponentials are within 1e-8 of 1, and for a spread / α below the smallest float they
would not even be representable (α ≥ 1e16 used to give the minimum instead of the mean)."""


def soft_min(values: ArrayLike, alpha: float = 0.3, dim: int = -1) -> np.ndarray:
    """Soft minimum of ``values`` over the N heads along ``dim``, with temperature α (the numpy
    twin of ``safecontrol.torch.soft_min``: same name, arguments and defaults).

    Accurate for every finite α > 0. With m = min(V), d = V − m ≥ 0 and x = d/α along ``dim``:
    ``m − α·log1p(mean(expm1(−x)))``, where every exponent is ≤ 0 (nothing overflows, the result
    is never below the minimum) and ``expm1``/``log1p`` keep the digits that ``exp``/``log``
    round away when x is small; where spread / α ≤ ``SERIES_LIMIT``, where x may be too small
    to be a float at all, ``m + mean(d) − Var(d)/(2α)``.

    Args:
        values: finite head values, any shape with at least one head along ``dim``.
        alpha: temperature α > 0, finite (default SAFE's 0.3).
        dim: the head axis (default the last).

    Returns:
        float64 values of ``values``' shape without ``dim``, with numpy's reduction convention
        (like ``np.min``): an ``np.float64`` scalar for 1-d input, else an ``np.ndarray``.
    """
    a = positive("alpha", alpha)
    v = real_array("values", values)
    axis = integer("dim", dim)
    if v.ndim == 0:
        raise ValueError("values must have at least one dimension (the heads), got a scalar")
    if not -v.ndim <= axis < v.ndim:
        raise ValueError(f"dim {axis!r} is out of range for values of shape {v.shape}")
    if v.shape[axis] == 0:
        raise ValueError(f"values must have at least one head along dim {axis}, got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("values must be finite, got NaN or inf")
    lowest = np.min(v, axis=axis, keepdims=True)
    shifted = v - lowest
    series = np.max(shifted, axis=axis, keepdims=True) <= SERIES_LIMIT * a
    # Each form gets only its own slices (zeros elsewhere), so neither warns about the other's.
    far = np.where(series, 0.0, shifted)
    near = np.where(series, shifted, 0.0)
    with np.errstate(over="ignore", under="ignore"):  # x overflowing to inf weighs exp(−inf) = 0
        exact = -a * np.log1p(np.mean(np.expm1(-far / a), axis=axis, keepdims=True))
        mean = np.mean(near, axis=axis, keepdims=True)
        centred = near - mean
        expansion = mean - np.mean(centred * (centred / a), axis=axis, keepdims=True) / 2.0
    aggregate = np.squeeze(lowest + np.where(series, expansion, exact), axis=axis)
    reduced: np.ndarray = aggregate[()]  # a 0-d result as an np.float64 scalar, like np.min's
    return reduced
