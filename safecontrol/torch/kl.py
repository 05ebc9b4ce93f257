"""Per-token KL estimators and the masked mean, on tensors (SPEC §3).

With r = log π_ref(a) − log π(a) for tokens a sampled from π:

    k1 = −r                 unbiased, can be negative per token and in a small batch
    k2 = r² / 2             ≥ 0, biased
    k3 = (e^r − 1) − r      ≥ 0, unbiased, low variance (Schulman's "approximating KL")

These are the tensor twins of ``safecontrol.estimators.kl_estimate`` (same kinds, same formulas);
they stay differentiable so the penalty built from them carries gradient (SPEC §2.1). Unlike the
numpy version, ``logp`` and ``logp_ref`` must have the same shape (no silent broadcasting).
"""

from __future__ import annotations

import torch

from .._validation import one_of
from ..estimators import KL_ESTIMATORS


def check_same_shape(name: str, x: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """``ValueError`` naming ``name`` unless ``x`` has exactly the shape of ``ref``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.shape != ref.shape:
        raise ValueError(
            f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, got {tuple(x.shape)}"
        )


def kl_per_token(logp: torch.Tensor, logp_ref: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(π ‖ π_ref) from log-probs of the sampled tokens.

    Args:
        logp: log π(a) of the sampled tokens under the policy (any shape).
        logp_ref: log π_ref(a) of the same tokens under the reference; same shape as ``logp``.
        kind: ``"k1"``, ``"k2"`` or ``"k3"`` (see the module docstring).

    Returns a tensor of ``logp``'s shape; reduce it with ``masked_mean``.
    """
    kind = one_of("kind", kind, KL_ESTIMATORS)
    if not isinstance(logp, torch.Tensor):
        raise ValueError(f"logp must be a torch.Tensor, got {type(logp).__name__}")
    check_same_shape("logp_ref", logp_ref, "logp", logp)
    log_ratio = logp_ref - logp
    if kind == "k1":
        return -log_ratio
    if kind == "k2":
        return 0.5 * log_ratio.square()
    # Rounding can leave expm1(r) − r a hair below 0 for tiny r; the true value is ≥ 0 and the
    # gradient there is e^r − 1 ≈ 0, so clamping changes nothing else (as in kl_estimate).
    return (torch.expm1(log_ratio) - log_ratio).clamp_min(0.0)


def masked_mean(
    x: torch.Tensor, mask: torch.Tensor | None = None, dim: int | tuple[int, ...] | None = None
) -> torch.Tensor:
    """Σ x·mask / Σ mask over ``dim`` (all dimensions when ``None``).

    ``mask`` has ``x``'s shape: bool, or non-negative weights (1 for a real token, 0 for padding).
    Masked-out entries never reach the result, even when they hold NaN or ±inf (padding log-probs
    often do), and receive zero gradient. A slice with no weight has mean 0, not NaN.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if mask is None:
        return x.mean() if dim is None else x.mean(dim=dim)
    check_same_shape("mask", mask, "x", x)
    weights = mask.to(x.dtype) if mask.dtype == torch.bool else mask
    kept = mask != 0
    total = torch.where(kept, x * weights, torch.zeros((), dtype=x.dtype, device=x.device))
    if dim is None:
        total, count = total.sum(), weights.sum()
    else:
        total, count = total.sum(dim=dim), weights.sum(dim=dim)
    count = count.to(total.dtype)
    empty = count == 0
    return torch.where(empty, torch.zeros_like(total), total / torch.where(empty, 1.0, count))
