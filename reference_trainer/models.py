"""Loading the policy, its tokenizer and prompts; building the reference and the critics.

``TrainConfig.model`` is either empty (the prepared offline default), a prepared directory
(``model/``, ``tokenizer/``, ``prompts.json``), or anything ``from_pretrained`` accepts: a local
Hugging Face model directory or a Hub name (prompts then come from the corpus).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

from safecontrol.torch import SoftMinCritic

from .config import TrainConfig
from .prepare.corpus import load_corpus
from .prepare.default_model import PROMPTS, is_prepared


def prompts_from_texts(texts: list[str], n_words: int, n_prompts: int, seed: int) -> list[str]:
    """The first ``n_words`` words of ``n_prompts`` texts drawn without replacement."""
    import random

    candidates = [t for t in texts if len(t.split()) > n_words]
    chosen = random.Random(seed).sample(candidates, min(n_prompts, len(candidates)))
    return [" ".join(t.split()[:n_words]) for t in chosen]


def load_policy(config: TrainConfig) -> tuple[torch.nn.Module, Any, list[str]]:
    """(policy, tokenizer with left padding, prompts)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = config.policy_source()
    prepared = is_prepared(Path(source))
    looks_local = str(source).startswith((".", "/", "~")) or Path(source).exists()
    if config.model and looks_local and not Path(source).expanduser().is_dir():
        raise ValueError(f"model {config.model!r}: no such directory")
    if not config.model and not prepared:
        raise FileNotFoundError(
            f"the offline default is not prepared in {source}; run "
            f"`python -m reference_trainer prepare` (with the same data_dir) first"
        )
    try:
        if prepared:
            directory = Path(source)
            tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer")
            model = AutoModelForCausalLM.from_pretrained(directory / "model")
            prompts = json.loads((directory / PROMPTS).read_text())
        else:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source)
            texts, _ = load_corpus()
            prompts = prompts_from_texts(texts, 4, 4096, config.seed)
    except OSError as exc:
        raise ValueError(f"model {str(source)!r} could not be loaded: {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if not prompts:
        raise ValueError(f"the prompt set of {str(source)!r} is empty")
    if config.lora_rank:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, task_type="CAUSAL_LM"),
        )
    return model, tokenizer, prompts


def frozen_reference(policy: torch.nn.Module, config: TrainConfig) -> torch.nn.Module | None:
    """A frozen copy of the initial policy; ``None`` with LoRA (the base model with its adapters
    disabled is the reference, at no memory cost)."""
    if config.lora_rank:
        return None
    reference = copy.deepcopy(policy).eval()
    reference.requires_grad_(False)
    return reference


def make_critics(
    policy: torch.nn.Module, config: TrainConfig
) -> tuple[SoftMinCritic, SoftMinCritic]:
    """The online critic and its Polyak target, on the policy's last hidden state."""
    hidden_size = policy.config.hidden_size if hasattr(policy, "config") else None
    if hidden_size is None:
        raise ValueError("the policy has no config.hidden_size to size the critic from")
    critic = SoftMinCritic(hidden_size, n_heads=config.n_critic_heads, alpha=config.soft_min_alpha)
    target = copy.deepcopy(critic)
    target.requires_grad_(False)
    return critic, target


def check_context_length(policy: Any, tokenizer: Any, prompts: list[str], new: int) -> None:
    """Prompt plus continuation must fit the model's positions (else generate misbehaves)."""
    limit = getattr(policy.config, "n_positions", None) or getattr(
        policy.config, "max_position_embeddings", None
    )
    if limit is None:
        return
    longest = max(len(ids) for ids in tokenizer(prompts)["input_ids"])
    if longest + new > limit:
        raise ValueError(
            f"max_new_tokens={new} plus the longest prompt ({longest} tokens) exceeds the "
            f"model's {limit} positions"
        )
