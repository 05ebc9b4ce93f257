"""Global batch statistics across ranks, reduced as sums and counts (never a mean of means).

Ranks usually hold different numbers of tokens (different response lengths), so the average of
per-rank means is biased toward the ranks with fewer tokens (SPEC §2.6, trl#6380). Every function
here all-reduces the sums and the counts together and divides once, so every rank gets the exact
token-weighted (or sample-weighted) global mean, and a controller fed with it takes the same
decision on every rank. Without an initialised ``torch.distributed`` process group they reduce
over the local tensors only.

The controller needs host floats; ``global_means`` makes the one device → host transfer of an
update (all statistics in one tensor, one all-reduce, one ``tolist``). Results are statistics, for
controllers and logs: they carry no gradient.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from .kl import check_same_shape

Measurement = torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` process group is initialised (and so used)."""
    return dist.is_available() and dist.is_initialized()


def global_sum(x: torch.Tensor, group: Any = None) -> torch.Tensor:
    """A copy of ``x`` summed elementwise over all ranks (``x`` itself is left unchanged)."""
    total = x.detach().clone()
    if is_distributed():
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
    return total


def _sum_and_count(values: torch.Tensor, mask: torch.Tensor | None, name: str) -> torch.Tensor:
    """``[Σ values·mask, Σ mask]`` in float64, masked-out entries excluded even if not finite."""
    if not isinstance(values, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(values).__name__}")
    values = values.detach().to(torch.float64)
    if mask is None:
        return torch.stack([values.sum(), values.new_tensor(float(values.numel()))])
    check_same_shape(f"{name} mask", mask, name, values)
    weights = mask.detach().to(torch.float64)
    kept = torch.where(weights != 0, values * weights, values.new_zeros(()))
    return torch.stack([kept.sum(), weights.sum()])


def global_masked_mean(
    x: torch.Tensor, mask: torch.Tensor | None = None, group: Any = None
) -> torch.Tensor:
    """Σ_ranks Σ x·mask / Σ_ranks Σ mask as a 0-d float64 tensor (0 when no rank has weight)."""
    total, count = global_sum(_sum_and_count(x, mask, "x"), group).unbind()
    return torch.where(count == 0, total.new_zeros(()), total / torch.where(count == 0, 1.0, count))


def global_means(*, group: Any = None, **measurements: Measurement) -> dict[str, float]:
    """Exact global means of named statistics, as Python floats, in one all-reduce.

    Each keyword is a tensor (mean over its elements on all ranks) or a ``(values, mask)`` pair
    (mask-weighted mean; ``mask`` of ``values``' shape). A statistic with no weight on any rank
    is NaN, so that a controller rejects (or skips) it instead of reading a fake 0.

    This is where a device value becomes a host float: once per call, for all statistics.
    """
    if not measurements:
        raise ValueError("global_means needs at least one named measurement")
    rows = []
    for name, value in measurements.items():
        values, mask = value if isinstance(value, tuple) else (value, None)
        rows.append(_sum_and_count(values, mask, name))
    devices = {row.device for row in rows}
    if len(devices) > 1:
        raise ValueError(f"measurements must be on one device, got {sorted(map(str, devices))}")
    sums = global_sum(torch.stack(rows), group).tolist()  # the single device -> host sync
    return {
        name: (total / count if count != 0 else float("nan"))
        for name, (total, count) in zip(measurements, sums, strict=True)
    }


def global_measurements(
    *,
    kl: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
    reward: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    group: Any = None,
) -> dict[str, float]:
    """``kl=``, ``entropy=``, ``reward=`` for ``controller.update(**...)``, exact across ranks.

    Args:
        kl: per-token KL estimates (e.g. ``kl_per_token(...)``), token-weighted by ``mask``.
        entropy: per-token entropies (e.g. ``entropy_from_logits(...)``), token-weighted by
            ``mask``.
        reward: one reward per sample, sample-weighted (every sample on every rank counts once).
        mask: bool or 0/1 token mask of the shape of ``kl`` and ``entropy``; ``None`` counts all.
        group: the process group (default: the world).

    Only the statistics given appear in the result. Example::

        stats = global_measurements(kl=kl_tok, entropy=ent_tok, reward=scores, mask=response_mask)
        decision = controller.update(**stats)
    """
    named: dict[str, Measurement] = {}
    if kl is not None:
        named["kl"] = (kl, mask)
    if entropy is not None:
        named["entropy"] = (entropy, mask)
    if reward is not None:
        named["reward"] = reward
    if not named:
        raise ValueError("global_measurements needs at least one of kl, entropy, reward")
    return global_means(group=group, **named)
