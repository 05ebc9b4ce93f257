"""The SAFE dead-band KL penalty (SPEC §1.2) and the preview step scaling.

    P(KL) = c · g · max(0, KL − τ)²        dP/dKL = 2 · c · g · max(0, KL − τ)

Zero at or below the threshold τ, continuous, convex and once differentiable above it. These are
the float forms a controller reports; ``safecontrol.torch.kl_penalty`` applies the same formula to
a live tensor so the penalty carries gradient.
"""

from __future__ import annotations

import math

from ._validation import finite, non_negative, positive


def dead_band_penalty(kl: float, threshold: float, gate: float, coef: float) -> float:
    """P = coef · gate · max(0, kl − threshold)²; ``ValueError`` if that overflows."""
    return _finite_result(_penalty_unchecked(*_checked(kl, threshold, gate, coef)), kl)


def dead_band_slope(kl: float, threshold: float, gate: float, coef: float) -> float:
    """dP/dKL = 2 · coef · gate · max(0, kl − threshold): the equivalent β at ``kl``;
    ``ValueError`` if that overflows."""
    return _finite_result(_slope_unchecked(*_checked(kl, threshold, gate, coef)), kl)


def _finite_result(value: float, kl: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"kl {kl!r} overflows the penalty for this threshold, gate and coef")
    return value


def _checked(
    kl: float, threshold: float, gate: float, coef: float
) -> tuple[float, float, float, float]:
    """The penalty's arguments as floats: kl and threshold finite, coef and gate ≥ 0."""
    kl, threshold = finite("kl", kl), finite("threshold", threshold)
    coef, gate = non_negative("coef", coef), non_negative("gate", gate)
    return kl, threshold, gate, coef


def _penalty_unchecked(kl: float, threshold: float, gate: float, coef: float) -> float:
    excess = max(0.0, kl - threshold)
    return coef * gate * excess * excess


def _slope_unchecked(kl: float, threshold: float, gate: float, coef: float) -> float:
    excess = max(0.0, kl - threshold)
    return 2.0 * coef * gate * excess


def preview_step_scale(preview_kl: float, max_preview_kl: float) -> float:
    """SAFE's preview scaling: ``min(1, max_preview_kl / preview_kl)``.

    ``preview_kl`` is the KL between the policy before and after a tentative update; a step that
    would move the policy further than ``max_preview_kl`` is shrunk proportionally.
    """
    preview = finite("preview_kl", preview_kl)
    limit = positive("max_preview_kl", max_preview_kl)
    if preview <= limit:
        return 1.0
    return limit / preview
