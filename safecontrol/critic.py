"""SAFE's soft-min aggregation of N value heads (SPEC §1.1).

    V_soft = −α · log( (1/N) · Σ_i exp(−V_i / α) )

min(V) ≤ V_soft ≤ min(min(V) + α·log N, mean(V)); V_soft → min(V) as α → 0 and → mean(V) as
α → ∞, and equals V when all heads agree. A pessimistic value estimate that is smooth in the heads.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._validation import integer, positive, real_array


def soft_min(values: ArrayLike, alpha: float = 0.3, dim: int = -1) -> np.ndarray:
    """Soft minimum of ``values`` over the N heads along ``dim``, with temperature α (the numpy
    twin of ``safecontrol.torch.soft_min``: same name, arguments and defaults).

    Computed stably as ``m − α·log(mean(exp(−(V − m)/α)))`` with m = min(V) along ``dim``: every
    exponent is ≤ 0, so nothing overflows and the result is never below the minimum.

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
    with np.errstate(over="ignore"):  # an exponent overflowing to −inf weighs exp(−inf) = 0
        mean_weight = np.mean(np.exp(-(v - lowest) / a), axis=axis)
    aggregate: np.ndarray = np.squeeze(lowest, axis=axis) - a * np.log(mean_weight)
    return aggregate
