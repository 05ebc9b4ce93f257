"""Per-token KL estimators and the masked mean, on tensors (SPEC §3).

With r = log π_ref(a) − log π(a) for tokens a sampled from π:

    k1 = −r                 unbiased, can be negative per token and in a small batch
    k2 = r² / 2             ≥ 0, biased
    k3 = (e^r − 1) − r      ≥ 0, unbiased, low variance (Schulman's "approximating KL")

These are the tensor twins of ``safecontrol.estimators.kl_per_token`` (same kinds, same formulas);
they stay differentiable so the penalty built from them carries gradient (SPEC §2.1). Unlike the
numpy version, ``logp`` and ``logp_ref`` must have the same shape (no silent broadcasting).
"""

from __future__ import annotations

import torch

from .._validation import integer, one_of
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

    Returns a tensor of ``logp``'s shape; reduce it with ``masked_mean``. Where the estimate is
    not finite (k2/k3 at padding holding −inf log-probs) it keeps its value but passes exactly
    zero gradient, so ``masked_mean`` over a mask that excludes those positions gives the policy
    a finite gradient. Finite positions get the plain formula's value and gradient, bit for bit.
    """
    kind = one_of("kind", kind, KL_ESTIMATORS)
    if not isinstance(logp, torch.Tensor):
        raise ValueError(f"logp must be a torch.Tensor, got {type(logp).__name__}")
    check_same_shape("logp_ref", logp_ref, "logp", logp)
    log_ratio = logp_ref - logp
    if kind == "k1":
        return -log_ratio  # its derivative is −1 everywhere: nothing to guard
    estimate = _k2 if kind == "k2" else _k3
    if not torch.is_grad_enabled() or not (logp.requires_grad or logp_ref.requires_grad):
        return estimate(log_ratio)
    # Padding often holds −inf log-probs, where the estimate is inf or NaN and so is its
    # derivative; masked_mean then sends a zero gradient, and 0 · inf = NaN would poison the
    # policy's gradient. The "double where": the nonlinearity only ever sees finite ratios, so a
    # position whose estimate is not finite gets exactly zero gradient and keeps its value.
    with torch.no_grad():
        value = estimate(log_ratio)
        usable = torch.isfinite(value)
    safe_ratio = torch.where(usable, log_ratio, log_ratio.new_zeros(()))
    return torch.where(usable, estimate(safe_ratio), value)


def _k2(log_ratio: torch.Tensor) -> torch.Tensor:
    return 0.5 * log_ratio.square()


def _k3(log_ratio: torch.Tensor) -> torch.Tensor:
    # Rounding can leave expm1(r) − r a hair below 0 for tiny r; the true value is ≥ 0 and the
    # gradient there is e^r − 1 ≈ 0, so clamping changes nothing else (as in kl_per_token).
    return (torch.expm1(log_ratio) - log_ratio).clamp_min(0.0)


def masked_mean(
    x: torch.Tensor, mask: torch.Tensor | None = None, dim: int | tuple[int, ...] | None = None
) -> torch.Tensor:
    """Σ x·mask / Σ mask over ``dim`` (all dimensions when ``None``).

    ``mask`` has ``x``'s shape: bool, or non-negative weights (1 for a real token, 0 for padding).
    Masked-out entries never reach the result, even when they hold NaN or ±inf (padding log-probs
    often do), and receive zero gradient. A slice with no weight (an all-zero mask, or no
    elements at all) has mean 0, not NaN. ``dim`` is an int or a non-empty tuple of ints.

    Integer ``x`` is averaged in the default float dtype (a mean of counts is a fraction, as in
    numpy); bool ``x`` is refused. A weight mask with a negative entry is refused (weights
    [1, −1] would sum to 0 and read as "empty"); checking it reads the mask's minimum, one device
    sync, which a bool mask does not need.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype == torch.bool:
        raise ValueError(f"x must hold numbers, got dtype {x.dtype}")
    if not (x.is_floating_point() or x.is_complex()):
        x = x.to(torch.get_default_dtype())
    dims = _reduced_dims(x, dim)
    if mask is None:
        if any(x.shape[d] == 0 for d in dims):
            return x.sum(dim=dims)  # zeros, still on x's graph (a plain mean would be NaN)
        return x.mean() if dim is None else x.mean(dim=dim)
    check_same_shape("mask", mask, "x", x)
    if mask.dtype != torch.bool:
        _check_weights(mask)
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


def _check_weights(mask: torch.Tensor) -> None:
    """``ValueError`` naming the smallest weight unless ``mask`` holds real weights >= 0."""
    if mask.is_complex():
        raise ValueError(f"mask must be bool or real weights >= 0, got dtype {mask.dtype}")
    if mask.numel() == 0 or mask.is_meta:  # a meta tensor has no values to check
        return
    smallest = float(mask.amin())
    if smallest < 0:
        raise ValueError(f"mask must be bool or weights >= 0, got a weight {smallest!r}")


def _reduced_dims(x: torch.Tensor, dim: int | tuple[int, ...] | None) -> tuple[int, ...]:
    """The dimensions ``dim`` reduces, non-negative; ``ValueError`` naming ``dim`` if invalid."""
    if dim is None:
        return tuple(range(x.dim()))
    if isinstance(dim, tuple):
        if not dim:
            raise ValueError("dim must be None, an int or a non-empty tuple of ints, got ()")
        dims = tuple(integer(f"dim[{i}]", d) for i, d in enumerate(dim))
    else:
        dims = (integer("dim", dim),)
    rank = max(x.dim(), 1)
    if any(not -rank <= d < rank for d in dims):
        raise ValueError(f"dim {dim!r} is out of range for x of shape {tuple(x.shape)}")
    return tuple(d % rank for d in dims) if x.dim() else ()
