"""SAFE's double soft-min critic, its loss and the Polyak target update (SPEC §1.1).

    V_soft = −α · log( (1/N) · Σ_i exp(−V_i / α) )        α = 0.3

computed as the numpy ``safecontrol.critic.soft_min`` computes it (its tensor twin). It lies
between min V_i and min(min V_i + α·log N, mean V_i): a pessimistic but smooth aggregate of N
value heads, the min as α → 0 and the mean as α → ∞.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import boolean, integer, positive, positive_int
from ..critic import SERIES_LIMIT
from .kl import check_same_shape, masked_mean


def soft_min(values: torch.Tensor, alpha: float = 0.3, dim: int = -1) -> torch.Tensor:
    """−α · log(mean_i exp(−V_i / α)) over ``dim``, differentiable in ``values``.

    Computed as the numpy ``safecontrol.critic.soft_min``, accurate for every finite α > 0: with
    m = min V along ``dim`` (held constant for the gradient, which is then exactly the softmax
    weights), d = V − m and x = d/α, ``m − α·log1p(mean(expm1(−x)))`` (every exponent ≤ 0:
    nothing overflows), or ``m + mean(d) − Var(d)/(2α)`` where spread / α ≤ ``SERIES_LIMIT``.
    An α below the dtype's smallest normal number gives min V: the exact value lies within
    α·log N of it, and dividing by that α would give 0/0 where the dtype cannot hold it (float32
    rounds α = 1e-320 to 0) or where CUDA divides through its reciprocal (inf). An α beyond the
    dtype's largest number (float32: 3.4e38) is applied in float64. Integer values are promoted to
    the default float dtype. ``alpha`` must be finite and > 0; ``dim`` must name a non-empty
    axis. Non-finite values are not checked (that would cost a device sync) and propagate.
    """
    alpha = positive("alpha", alpha)
    if not isinstance(values, torch.Tensor):
        raise ValueError(f"values must be a torch.Tensor, got {type(values).__name__}")
    if values.dtype == torch.bool or values.is_complex():
        raise ValueError(f"values must hold real numbers, got dtype {values.dtype}")
    if values.dim() == 0:
        raise ValueError("values must have at least one dimension (the heads), got a 0-d tensor")
    dim = integer("dim", dim)
    if not -values.dim() <= dim < values.dim():
        raise ValueError(f"dim {dim!r} is not an axis of values of shape {tuple(values.shape)}")
    n = values.shape[dim]
    if n == 0:
        raise ValueError(f"values must have at least one head along dim {dim}, got {n}")
    if not values.is_floating_point():
        values = values.to(torch.get_default_dtype())
    if n == 1:
        return values.squeeze(dim)
    limits = torch.finfo(values.dtype)
    if alpha < limits.tiny:
        return values.amin(dim=dim)
    work = values if alpha <= limits.max else values.double()
    lowest = work.detach().amin(dim=dim, keepdim=True)
    # Non-finite heads (a spread that is NaN or inf) take the exact form, which gives their limit.
    series = work.detach().amax(dim=dim, keepdim=True) - lowest <= SERIES_LIMIT * alpha
    # An infinite minimum (heads at −inf, or all at +inf) is its own limit: shift by 0 instead.
    lowest = torch.where(torch.isfinite(lowest), lowest, lowest.new_zeros(()))
    shifted = work - lowest
    # Each form gets only its own slices (zeros elsewhere): an inf or NaN in the form torch.where
    # does not pick would still poison the gradient of the one it picks (0 · inf = NaN).
    far = torch.where(series, 0.0, shifted)
    exact = torch.log1p(torch.expm1(far / -alpha).mean(dim=dim)) * -alpha
    near = torch.where(series, shifted, 0.0)
    mean = near.mean(dim=dim, keepdim=True)
    centred = near - mean
    expansion = mean.squeeze(dim) - (centred * (centred / alpha)).mean(dim=dim) / 2.0
    aggregate = lowest.squeeze(dim) + torch.where(series.squeeze(dim), expansion, exact)
    return aggregate.to(values.dtype)


class SoftMinCritic(nn.Module):
    """N value heads on a policy's hidden states, aggregated by soft-min (SPEC §1.1).

    Args:
        hidden_size: width h of the hidden states.
        n_heads: number of value heads N; 1 gives an ordinary value head (value == the head).
        alpha: soft-min temperature α (published default 0.3).
        layernorm: apply a LayerNorm shared by the heads first (the published design).

    Each head is Linear(h, h/4) → GELU → Linear(h/4, 1).
    """

    def __init__(
        self, hidden_size: int, n_heads: int = 2, alpha: float = 0.3, layernorm: bool = True
    ) -> None:
        super().__init__()
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.n_heads = positive_int("n_heads", n_heads)
        self.alpha = positive("alpha", alpha)
        boolean("layernorm", layernorm)  # "false" would be truthy
        inner = max(1, self.hidden_size // 4)
        self.norm: nn.Module = nn.LayerNorm(self.hidden_size) if layernorm else nn.Identity()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(self.hidden_size, inner), nn.GELU(), nn.Linear(inner, 1))
            for _ in range(self.n_heads)
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None = None,
        last_token: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(heads, value)`` for hidden states of shape ``(..., seq, h)`` (or ``(..., h)``).

        Per token: ``heads`` is ``(..., seq, n_heads)`` and ``value`` is ``(..., seq)``. With
        ``last_token=True`` only the last position whose ``mask`` is set (the last position when
        ``mask`` is ``None``; works for left and right padding) is scored: ``(..., n_heads)`` and
        ``(...)``. ``mask`` has shape ``(..., seq)``.
        """
        boolean("last_token", last_token)
        if not isinstance(hidden_states, torch.Tensor):
            raise ValueError(
                f"hidden_states must be a torch.Tensor, got {type(hidden_states).__name__}"
            )
        if hidden_states.dim() < 1 or hidden_states.shape[-1] != self.hidden_size:
            raise ValueError(
                f"hidden_states must end in hidden_size {self.hidden_size}, "
                f"got shape {tuple(hidden_states.shape)}"
            )
        if last_token:
            hidden_states = _last_position(hidden_states, mask)
        normed = self.norm(hidden_states)
        heads = torch.cat([head(normed) for head in self.heads], dim=-1)
        return heads, soft_min(heads, self.alpha, dim=-1)


def _last_position(hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if hidden_states.dim() < 2:
        raise ValueError(
            f"hidden_states must be (..., seq, h) with last_token=True, "
            f"got shape {tuple(hidden_states.shape)}"
        )
    if mask is None:
        return hidden_states[..., -1, :]
    check_same_shape("mask", mask, "hidden_states.shape[:-1]", hidden_states[..., 0])
    seq = hidden_states.shape[-2]
    positions = torch.arange(seq, device=hidden_states.device)
    # Index of the last set position; a row with none set falls back to position 0.
    last = torch.where(mask.bool(), positions, 0).amax(dim=-1)
    index = last[..., None, None].expand(*last.shape, 1, hidden_states.shape[-1])
    return hidden_states.gather(-2, index).squeeze(-2)


def critic_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    targets: torch.Tensor,
    clip: float | None = 0.2,
    huber_delta: float = 0.5,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """SAFE's value loss: the mean of the Huber loss and its value-clipped version (SPEC §1.1).

        L = ½ · [Huber_δ(V − R) + Huber_δ(V_old + clip(V − V_old, −ε, ε) − R)]

    Args:
        values: predictions V, shaped like ``targets`` or with a trailing heads axis (every head
            is trained on the same target; the loss averages over heads).
        old_values: V_old, the rollout-time predictions, shaped like ``values``.
        targets: value targets R (returns).
        clip: ε, the value clip around V_old (published 0.2); ``None`` turns clipping off.
        huber_delta: δ of the Huber loss (published 0.5).
        mask: bool or 0/1 weights of ``targets``' shape; the loss is the masked mean.

    Note the published code averages the two terms where PPO implementations take their max.
    """
    delta = positive("huber_delta", huber_delta)
    epsilon = None if clip is None else positive("clip", clip)
    if not isinstance(values, torch.Tensor):
        raise ValueError(f"values must be a torch.Tensor, got {type(values).__name__}")
    check_same_shape("old_values", old_values, "values", values)
    if not isinstance(targets, torch.Tensor):
        raise ValueError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if targets.shape == values.shape:
        per_head = False
    elif values.dim() >= 1 and values.shape[:-1] == targets.shape:
        per_head = True
        targets = targets.unsqueeze(-1)
    else:
        raise ValueError(
            f"targets must have the shape of values {tuple(values.shape)} or of values without "
            f"its heads axis, got {tuple(targets.shape)}"
        )

    targets = targets.expand_as(values)
    loss = nn.functional.huber_loss(values, targets, reduction="none", delta=delta)
    if epsilon is not None:
        clipped = old_values + (values - old_values).clamp(-epsilon, epsilon)
        clipped_loss = nn.functional.huber_loss(clipped, targets, reduction="none", delta=delta)
        loss = 0.5 * (loss + clipped_loss)
    if per_head:
        loss = loss.mean(dim=-1)
    return masked_mean(loss, mask)


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float = 0.05) -> None:
    """θ_target ← (1 − τ)·θ_target + τ·θ_online for every parameter and float buffer, in place.

    Non-float buffers (counters) are copied. ``tau = 1`` copies the online module exactly. The
    two modules must have the same parameter and buffer names and shapes.
    """
    tau = positive("tau", tau)
    if tau > 1.0:
        raise ValueError(f"tau must be in (0, 1], got {tau!r}")
    target_state = dict(target.named_parameters()) | dict(target.named_buffers())
    online_state = dict(online.named_parameters()) | dict(online.named_buffers())
    if target_state.keys() != online_state.keys():
        missing = sorted(online_state.keys() - target_state.keys())
        extra = sorted(target_state.keys() - online_state.keys())
        raise ValueError(f"target and online differ: target lacks {missing}, has extra {extra}")
    # Every pair is checked before any tensor moves: a refused update changes nothing.
    for name, tensor in target_state.items():
        source = online_state[name]
        if tensor.shape != source.shape:
            raise ValueError(
                f"target {name} has shape {tuple(tensor.shape)}, online {tuple(source.shape)}"
            )
    for name, tensor in target_state.items():
        source = online_state[name]
        if tau == 1.0 or not tensor.is_floating_point():
            tensor.copy_(source)
        else:  # lerp_ needs one dtype and device; .to is a no-op when they already agree
            tensor.lerp_(source.to(device=tensor.device, dtype=tensor.dtype), tau)
