"""Supervised pre-training of the offline default's GPT-2 (SPEC §6): model, loss, schedule.

``build_model`` makes a small GPT-2 from a ``PrepareConfig``; ``sft`` trains it on packed blocks
of the corpus with AdamW, a linear warm-up and a cosine decay, and measures validation
perplexity ``N_EVALS`` times. Used by ``reference_trainer.prepare``.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from ..config import PrepareConfig

N_EVALS = 4
LOG_EVERY_STEPS = 100
WARMUP_FRACTION = 0.05
FINAL_LR_FRACTION = 0.1


def log_stage(message: str) -> None:
    """A stage of the preparation on stderr, with or without progress bars: minutes of silence
    look like a hang."""
    print(message, file=sys.stderr, flush=True)


def build_model(tokenizer: Any, config: PrepareConfig) -> Any:
    """A freshly initialised GPT-2 sized by ``config``, with the tokenizer's special ids."""
    from transformers import GPT2Config, GPT2LMHeadModel

    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    model_config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        **special,
    )
    model = GPT2LMHeadModel(model_config)
    for name, value in special.items():
        setattr(model.generation_config, name, value)
    return model


def sft(
    model: Any, train_blocks: Any, val_blocks: Any, config: PrepareConfig
) -> list[dict[str, float]]:
    """Next-token cross-entropy with AdamW, linear warm-up then cosine decay to
    ``FINAL_LR_FRACTION`` × ``sft_lr``, gradients clipped to norm 1. Returns the evaluations."""
    import torch

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.sft_lr, betas=(0.9, 0.95), weight_decay=0.01
    )
    warmup = max(1, round(WARMUP_FRACTION * config.sft_steps))

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_01 = (step - warmup) / max(1, config.sft_steps - warmup)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress_01))
        return FINAL_LR_FRACTION + (1.0 - FINAL_LR_FRACTION) * cosine

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    eval_steps = {math.ceil(config.sft_steps * (i + 1) / N_EVALS) for i in range(N_EVALS)}
    batches = shuffled_batches(train_blocks, config.sft_batch_size, config.seed)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    model.train()
    for step in range(1, config.sft_steps + 1):
        batch = next(batches)
        loss = next_token_nll(model, batch).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % LOG_EVERY_STEPS == 0 or step == 1:
            elapsed = time.perf_counter() - start
            log_stage(
                f"sft step {step}/{config.sft_steps} loss {loss.item():.3f} {elapsed:.0f}s",
            )
        if step in eval_steps:
            ppl = perplexity(model, val_blocks, config.sft_batch_size)
            history.append({"step": step, "train_loss": loss.item(), "val_perplexity": ppl})
            log_stage(f"sft step {step}: validation perplexity {ppl:.1f}")
    model.eval()
    return history


def next_token_nll(model: Any, blocks: Any) -> Any:
    """−log p(x[t+1] | x[≤t]) for every position but the last: shape (batch, seq_len − 1)."""
    import torch

    logits = model(input_ids=blocks).logits[:, :-1].float()
    targets = blocks[:, 1:]
    nll = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), targets.flatten(), reduction="none"
    )
    return nll.view_as(targets)


def perplexity(model: Any, blocks: Any, batch_size: int) -> float:
    """exp(mean next-token negative log-likelihood) over every predicted token of ``blocks``."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in blocks.split(batch_size):
            nll = next_token_nll(model, batch)
            total += nll.sum().item()
            count += nll.numel()
    model.train(was_training)
    return math.exp(total / count)


def blocks(stream: list[int], seq_len: int) -> Any:
    """``stream`` cut into consecutive ``seq_len`` blocks (the ragged tail dropped)."""
    import torch

    n_blocks = len(stream) // seq_len
    return torch.tensor(stream[: n_blocks * seq_len], dtype=torch.long).view(n_blocks, seq_len)


def shuffled_batches(blocks: Any, batch_size: int, seed: int) -> Any:
    """Endless batches of ``blocks``: each epoch a fresh seeded permutation."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    queue: list[int] = []
    while True:
        while len(queue) < batch_size:
            queue.extend(torch.randperm(len(blocks), generator=generator).tolist())
        take, queue = queue[:batch_size], queue[batch_size:]
        yield blocks[take]
