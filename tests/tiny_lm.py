"""A tiny causal LM and tokenizer built locally in a second (no downloads, no prepare step)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reference_trainer.config import TrainConfig
from reference_trainer.prepare.corpus import python_reference
from reference_trainer.prepare.default_model import FORMAT_VERSION, MANIFEST


def build_tiny(directory: Path, seed: int = 0) -> Path:
    """A prepared-style directory: tokenizer/, model/ (random init), prompts.json, prepare.json."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    texts = python_reference()
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<|endoftext|>", "<|pad|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        pad_token="<|pad|>",
        padding_side="left",
    )
    tokenizer.save_pretrained(directory / "tokenizer")
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=48,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(directory / "model")
    prompts = [" ".join(t.split()[: 2 + i % 3]) for i, t in enumerate(texts[:300])]
    (directory / "prompts.json").write_text(json.dumps(prompts))
    (directory / MANIFEST).write_text(json.dumps({"format": FORMAT_VERSION, "tiny": True}))
    return directory


def tiny_config(model: Path, run_dir: Path, **overrides: Any) -> TrainConfig:
    """A short run of the tiny model: 8 prompts × 6 tokens, one thread, lr 0.01, 2 steps."""
    settings: dict[str, Any] = {
        "model": str(model),
        "run_dir": str(run_dir),
        "batch_size": 8,
        "max_new_tokens": 6,
        "min_new_tokens": 1,
        "threads": 1,
        "lr": 1e-2,
        "steps": 2,
    }
    return TrainConfig(**{**settings, **overrides})


TIMING_PREFIXES = ("seconds_", "tokens_per")


def deterministic_rows(run_dir: Path) -> list[dict[str, Any]]:
    """A run's metrics rows without its timings (equal for equal seeds and configs)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING_PREFIXES)} for r in rows]
