"""Sampling continuations and scoring them with the same forward the update uses.

Two traps fake instabilities here (SPEC §6): a plain forward on left-padded input does not derive
``position_ids`` from the attention mask (``generate`` does), and ``min_new_tokens`` blocks EOS only
while sampling. ``sequence_forward`` passes explicit position ids and masks EOS exactly as
``generate`` did, so its log-probs of the sampled tokens are the sampling log-probs
(tests/trainer/test_rollout.py checks it against ``generate``'s scores).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Rollout:
    """One batch of prompts and their sampled continuations."""

    input_ids: torch.Tensor
    """(B, P + T): left-padded prompt, then the continuation (pad after EOS)."""
    attention_mask: torch.Tensor
    """(B, P + T): 1 on prompt tokens and on continuation tokens up to and including EOS."""
    response_mask: torch.Tensor
    """(B, T) bool: continuation tokens that count (up to and including the first EOS)."""
    prompt_length: int
    prompts: list[str]
    completions: list[str]

    @property
    def response_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_length :]

    def __len__(self) -> int:
        return len(self.prompts)

    def rows(self, rows: slice) -> Rollout:
        """The sequences ``rows`` of this batch (a micro-batch; the padding stays as it is)."""
        return Rollout(
            self.input_ids[rows],
            self.attention_mask[rows],
            self.response_mask[rows],
            self.prompt_length,
            self.prompts[rows],
            self.completions[rows],
        )


def position_ids_from(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over the real tokens of each row; padding positions get 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    min_new_tokens: int,
    temperature: float,
) -> Rollout:
    """Sample one continuation per prompt from the full (untruncated) distribution."""
    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = encoded["input_ids"].to(device), encoded["attention_mask"].to(device)
    output = model.generate(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        do_sample=True,
        temperature=temperature,
        top_k=0,
        top_p=1.0,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    prompt_length = prompt_ids.shape[1]
    response = output[:, prompt_length:]
    is_eos = response == tokenizer.eos_token_id
    # Tokens after the first EOS are padding that generate appended.
    after_eos = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    response_mask = ~after_eos
    attention_mask = torch.cat([prompt_mask, response_mask.long()], dim=1)
    completions = tokenizer.batch_decode(
        torch.where(response_mask & ~is_eos, response, tokenizer.pad_token_id),
        skip_special_tokens=True,
    )
    return Rollout(output, attention_mask, response_mask, prompt_length, list(prompts), completions)


@dataclass
class ForwardResult:
    logp: torch.Tensor
    """(B, T) log-probs of the sampled continuation tokens."""
    logits: torch.Tensor
    """(B, T, V) the (temperature-scaled, EOS-masked) logits that produced them."""
    hidden: torch.Tensor
    """(B, T, h) last hidden state at the position that predicts each continuation token."""


def concatenate(parts: list[ForwardResult]) -> ForwardResult:
    """The forward of a batch from the forwards of its micro-batches, in order."""
    return ForwardResult(
        torch.cat([p.logp for p in parts]),
        torch.cat([p.logits for p in parts]),
        torch.cat([p.hidden for p in parts]),
    )


def sequence_forward(
    model: torch.nn.Module,
    rollout: Rollout,
    temperature: float,
    min_new_tokens: int,
    eos_token_id: int,
) -> ForwardResult:
    """The policy's view of the sampled tokens, exactly as sampling saw them."""
    out = model(
        input_ids=rollout.input_ids,
        attention_mask=rollout.attention_mask,
        position_ids=position_ids_from(rollout.attention_mask),
        output_hidden_states=True,
    )
    start = rollout.prompt_length - 1
    logits = out.logits[:, start:-1].float() / temperature
    if min_new_tokens > 0:
        blocked = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        blocked[:min_new_tokens] = True
        eos_column = logits[..., eos_token_id]
        logits = logits.clone()
        logits[..., eos_token_id] = torch.where(blocked, float("-inf"), eos_column)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, rollout.response_ids[..., None])[..., 0]
    hidden = out.hidden_states[-1][:, start:-1]
    return ForwardResult(logp, logits, hidden)
