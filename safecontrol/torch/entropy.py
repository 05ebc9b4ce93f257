"""Exact per-token entropy of a categorical policy, in chunks along batch × sequence.

    H(z) = logsumexp(z) − Σ_i softmax(z)_i · z_i  =  log s − Σ_i e_i · (z_i − m) / s

with m = max_i z_i, e_i = exp(z_i − m), s = Σ_i e_i (the shifted form never exponentiates a large
number). The naive form materialises softmax(z) and softmax(z)·z for every token at once: two
extra copies of the logits, 5 GB for 8 × 512 tokens at a 152k vocabulary in float32. Here the
positions are processed a chunk at a time in two reusable float32 buffers, so the extra memory is
O(chunk × vocab); the gradient, dH/dz = −p ⊙ (z − Σ_i p_i z_i), is computed the same way in the
backward pass. Half and bfloat16 logits are upcast chunk by chunk and accumulated in float32.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .._validation import positive_int
from .kl import check_same_shape

CPU_CHUNK_ELEMENTS = 2**23
"""Auto chunk on CPU: rows × vocab ≈ 2**23 floats (32 MiB a buffer, 64 MiB in all).

Measured for 8 × 512 tokens on a shared 2-core x86 CPU (benchmarks/results/entropy_from_logits*.md):
with one thread, chunks of 2**19 to 2**23 elements were 3–7× faster than the naive form (2**19,
cache-resident, the fastest). But every chunk runs a handful of OpenMP parallel regions, and with
two threads on an oversubscribed CPU their barriers stall whenever a thread is descheduled:
2**19 chunks were then 6.6× *slower* than the naive form while 2**23 chunks stayed 2× faster.
2**23 is the robust default; pass a smaller ``chunk_size`` on a dedicated CPU.
"""
ACCELERATOR_CHUNK_ELEMENTS = 2**25
"""Auto chunk elsewhere (GPU): 128 MiB a buffer, so launches do not dominate. Not yet tuned."""


def default_chunk_size(vocab_size: int, device: torch.device | str = "cpu") -> int:
    """Positions per chunk that ``entropy_from_logits`` uses when ``chunk_size`` is ``None``."""
    vocab_size = positive_int("vocab_size", vocab_size)
    on_cpu = torch.device(device).type == "cpu"
    budget = CPU_CHUNK_ELEMENTS if on_cpu else ACCELERATOR_CHUNK_ELEMENTS
    return max(1, budget // vocab_size)


def entropy_from_logits(
    logits: torch.Tensor, mask: torch.Tensor | None = None, chunk_size: int | None = None
) -> torch.Tensor:
    """Per-token entropy (nats) of ``Categorical(logits=logits)``, chunked to bound memory.

    Args:
        logits: ``(..., vocab)`` unnormalised log-probabilities; ``-inf`` entries are allowed.
        mask: optional bool or 0/1 tensor of shape ``logits.shape[:-1]``; masked positions are 0
            in the result and get exactly zero gradient, even padding rows of all ``-inf``.
        chunk_size: positions (rows of the flattened ``(..., vocab)``) per chunk; ``None`` picks
            ``default_chunk_size(vocab, logits.device)``.

    Returns a tensor of shape ``logits.shape[:-1]``: float32 for half/bfloat16 logits, else the
    logits' dtype. Differentiable (once) with respect to ``logits``; the extra memory of both
    passes is two ``chunk × vocab`` float32 buffers, beside the gradient itself (no other
    temporary of that size: the products are formed in place).
    """
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dim() < 1 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have a non-empty vocab axis, got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    if chunk_size is None:
        chunk_size = default_chunk_size(logits.shape[-1], logits.device)
    chunk_size = positive_int("chunk_size", chunk_size)
    entropy: torch.Tensor = _ChunkedEntropy.apply(logits, chunk_size)  # type: ignore[no-untyped-call]
    if mask is None:
        return entropy
    check_same_shape("mask", mask, "logits.shape[:-1]", entropy)
    return torch.where(mask.bool(), entropy, entropy.new_zeros(()))


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _row_blocks(x: torch.Tensor) -> Iterator[torch.Tensor]:
    """2-D views ``(rows, vocab)`` of ``x`` covering its positions in row-major order, no copies.

    One view when the leading axes flatten without a copy; otherwise (e.g. ``logits[:, :-1]``)
    one block per index of the first axis, recursively.
    """
    if x.dim() == 1:
        yield x.unsqueeze(0)
        return
    try:
        yield x.view(-1, x.shape[-1])
    except RuntimeError:
        for sub in x:
            yield from _row_blocks(sub)


def _chunks(x: torch.Tensor, chunk_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """``(offset, chunk)``: row chunks of ``x`` and the flat position of their first row."""
    offset = 0
    for block in _row_blocks(x):
        for start in range(0, block.shape[0], chunk_size):
            chunk = block[start : start + chunk_size]
            yield offset, chunk
            offset += chunk.shape[0]


def _shifted_exp(chunk: torch.Tensor, shifted: torch.Tensor, exp: torch.Tensor) -> torch.Tensor:
    """Fill ``shifted = z − max z`` (−inf clamped to finite), ``exp = e^shifted``; return Σ exp."""
    top = chunk.amax(dim=-1, keepdim=True).to(shifted.dtype)
    torch.sub(chunk, top, out=shifted)  # also upcasts half/bf16 chunks into the float32 buffer
    shifted.clamp_(min=torch.finfo(shifted.dtype).min)  # 0·(−inf) would poison the sums
    torch.exp(shifted, out=exp)
    return exp.sum(dim=-1)


class _ChunkedEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, chunk_size: int) -> torch.Tensor:
        vocab = logits.shape[-1]
        dtype = _compute_dtype(logits.dtype)
        rows = min(chunk_size, max(1, logits.numel() // vocab))
        shifted = torch.empty(rows, vocab, dtype=dtype, device=logits.device)
        exp = torch.empty_like(shifted)
        entropy = torch.empty(logits.shape[:-1], dtype=dtype, device=logits.device)
        flat = entropy.view(-1)
        for offset, chunk in _chunks(logits, chunk_size):
            n = chunk.shape[0]
            total = _shifted_exp(chunk, shifted[:n], exp[:n])
            mean_shifted = exp[:n].mul_(shifted[:n]).sum(dim=-1) / total  # in place: no temporary
            flat[offset : offset + n] = torch.log(total) - mean_shifted
        ctx.save_for_backward(logits)
        ctx.chunk_size = chunk_size
        return entropy

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_entropy: torch.Tensor) -> tuple[torch.Tensor, None]:
        (logits,) = ctx.saved_tensors
        vocab = logits.shape[-1]
        dtype = _compute_dtype(logits.dtype)
        rows = min(ctx.chunk_size, max(1, logits.numel() // vocab))
        shifted = torch.empty(rows, vocab, dtype=dtype, device=logits.device)
        exp = torch.empty_like(shifted)
        grad_logits = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
        grad_rows = grad_logits.view(-1, vocab)
        grad_flat = grad_entropy.reshape(-1).to(dtype)
        for offset, chunk in _chunks(logits, ctx.chunk_size):
            n = chunk.shape[0]
            sh, ex = shifted[:n], exp[:n]
            total = _shifted_exp(chunk, sh, ex)
            # dH/dz_i = −p_i (z_i − Σ_j p_j z_j) with p = exp / total (the shift cancels),
            # built in the two buffers: sh ← e·z, ex ← e·E[z], sh ← −(g / total)(sh − ex).
            mean_shifted = sh.mul_(ex).sum(dim=-1) / total
            ex.mul_(mean_shifted.unsqueeze(-1))
            grad = grad_flat[offset : offset + n]
            sh.sub_(ex).mul_((-grad / total).unsqueeze(-1))
            # A row that receives no gradient (masked) passes none on, even where its entropy
            # is undefined (an all −inf padding row makes sh NaN); fused with the copy out
            # unless half/bf16 logits need the float32 buffer cast on the way.
            live, zero = (grad != 0).unsqueeze(-1), sh.new_zeros(())
            out = grad_rows[offset : offset + n]
            if out.dtype == sh.dtype:
                torch.where(live, sh, zero, out=out)
            else:
                out.copy_(torch.where(live, sh, zero, out=sh))
        return grad_logits, None
