"""The ``prepare`` step of the offline default (SPEC §6): tokenizer, small GPT-2, SFT, prompts.

``prepare(config)`` builds, once per config, in ``config.directory()``:

- ``tokenizer/``: a byte-level BPE trained with ``tokenizers`` on the training texts, with an EOS
  ``<|endoftext|>`` (also BOS) and a distinct PAD ``<|pad|>``, padding on the left for generation;
- ``model/``: a GPT-2 causal LM (tied embeddings, no dropout, so that the RL trainer's first
  PPO epoch sees a ratio of exactly 1) trained on next-token cross-entropy over packed blocks of
  the training texts, each followed by EOS;
- ``prompts.json``: the first ``prompt_words`` words of held-out texts, never seen in SFT;
- ``prepare.json``: config, corpus sizes, parameter count, validation perplexity, SFT seconds,
  sample continuations and library versions. It is written last, and the whole directory is built
  in a temporary sibling and moved into place with one ``os.replace``, so a killed prepare never
  leaves a directory that looks finished.

Same config → same tokenizer, weights and prompts on CPU (seeded; the caller's RNG state and
thread count are restored afterwards).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import PrepareConfig, as_dict
from .corpus import load_corpus
from .sft import blocks, build_model, log_stage, sft

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
MANIFEST = "prepare.json"
PROMPTS = "prompts.json"
REQUIRED_FILES = (
    MANIFEST,
    PROMPTS,
    "tokenizer/tokenizer.json",
    "model/config.json",
    "model/model.safetensors",
)
FORMAT_VERSION = 2
"""Bumped whenever the artefacts change meaning; a directory of another format is rebuilt."""
HELDOUT_FRACTION = 0.1
"""Share of the texts kept out of SFT: the validation split and the source of the RL prompts."""
VAL_MAX_BLOCKS = 256
"""Validation perplexity is measured on at most this many ``sft_seq_len`` blocks."""
PROMPT_CONTEXT_SHARE = 0.5
"""A prompt may take at most this share of ``n_positions``; the rest is the continuation's."""
N_SAMPLES = 3
SAMPLE_NEW_TOKENS = 24
SAMPLE_MIN_NEW_TOKENS = 4
"""EOS is blocked this long, as in the RL rollouts, so that a sample is never empty."""


def is_prepared(directory: Path) -> bool:
    """Whether ``directory`` holds a finished prepare: a readable manifest and every artefact."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("format") == FORMAT_VERSION and all(
        (directory / name).is_file() for name in REQUIRED_FILES
    )


def prepare(config: PrepareConfig, progress: bool = True) -> Path:
    """Build (or find cached) the offline default for ``config``; return its directory."""
    final = config.directory()
    if is_prepared(final):
        log_stage(f"prepare: cached at {final}")
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_temporaries(final)
    tmp = Path(
        tempfile.mkdtemp(prefix=f"{_temporary_prefix(final)}{os.getpid()}-", dir=final.parent)
    )
    try:
        tmp.chmod(0o755)  # mkdtemp's 0o700 would make a shared cache private
        _build(config, tmp, progress)
        if is_prepared(final):  # a concurrent prepare of the same config finished first
            shutil.rmtree(tmp, ignore_errors=True)
            return final
        if final.exists():  # damaged by hand: a finished one can only appear whole
            shutil.rmtree(final)
        try:
            os.replace(tmp, final)
        except OSError:
            if not is_prepared(final):  # anything but a concurrent prepare that won the race
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log_stage(f"prepare: wrote {final}")
    return final


def load_prepared(config: PrepareConfig) -> tuple[Any, Any, list[str]]:
    """``(model in eval mode, tokenizer, prompts)`` of a finished prepare for ``config``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = config.directory()
    if not is_prepared(directory):
        raise FileNotFoundError(
            f"no finished prepare at {directory}; run the prepare step first "
            "(reference_trainer.prepare.prepare(config)) with the same PrepareConfig"
        )
    tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer")
    model = AutoModelForCausalLM.from_pretrained(directory / "model").eval()
    prompts = json.loads((directory / PROMPTS).read_text())
    return model, tokenizer, prompts


def _build(config: PrepareConfig, out: Path, progress: bool) -> None:
    import tokenizers
    import torch
    import transformers

    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            texts, source = load_corpus(config.corpus)
            train_texts, heldout_texts = split_texts(texts, config.seed)
            log_stage(f"prepare: corpus {source}, {len(texts)} texts; training tokenizer")
            tokenizer = train_tokenizer(train_texts, config)
            train_ids = _token_stream(tokenizer, train_texts)
            heldout_ids = _token_stream(tokenizer, heldout_texts)
            train_blocks = blocks(train_ids, config.sft_seq_len)
            val_blocks = blocks(heldout_ids, config.sft_seq_len)[:VAL_MAX_BLOCKS]
            if len(train_blocks) == 0 or len(val_blocks) == 0:
                raise ValueError(f"corpus {source!r} is too small for sft_seq_len")
            model = build_model(tokenizer, config)
            n_parameters = sum(p.numel() for p in model.parameters())
            log_stage(f"prepare: {n_parameters} parameters, {len(train_ids)} train tokens")
            start, start_cpu = time.perf_counter(), time.process_time()
            history = sft(model, train_blocks, val_blocks, config)
            sft_seconds = time.perf_counter() - start
            sft_cpu_seconds = time.process_time() - start_cpu
            prompts = make_prompts(heldout_texts, tokenizer, config)
            torch.manual_seed(config.seed)
            samples = sample_continuations(model, tokenizer, prompts[:N_SAMPLES])
    finally:
        torch.set_num_threads(threads)

    tokenizer.save_pretrained(out / "tokenizer")
    with _progress_bars(progress):
        model.save_pretrained(out / "model")
    (out / PROMPTS).write_text(json.dumps(prompts, indent=0, ensure_ascii=False))
    manifest = {
        "format": FORMAT_VERSION,
        "key": config.key(),
        "config": as_dict(config),
        "corpus": {
            "source": source,
            "texts": len(texts),
            "train_texts": len(train_texts),
            "heldout_texts": len(heldout_texts),
            "tokens": len(train_ids) + len(heldout_ids),
            "train_tokens": len(train_ids),
            "val_tokens": val_blocks.numel(),
        },
        "vocab_size": len(tokenizer),
        "parameters": n_parameters,
        "sft_seconds": round(sft_seconds, 2),
        "sft_cpu_seconds": round(sft_cpu_seconds, 2),
        "val_perplexity": history[-1]["val_perplexity"],
        "sft_history": history,
        "prompts": {
            "count": len(prompts),
            "distinct": len(set(prompts)),
            "max_tokens": max(len(ids) for ids in tokenizer(prompts)["input_ids"]),
        },
        "samples": samples,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def split_texts(texts: list[str], seed: int) -> tuple[list[str], list[str]]:
    """``(train, heldout)``: a seeded shuffle, ``HELDOUT_FRACTION`` (at least one) held out."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_heldout = max(1, round(HELDOUT_FRACTION * len(texts)))
    return [texts[i] for i in order[n_heldout:]], [texts[i] for i in order[:n_heldout]]


def train_tokenizer(texts: list[str], config: PrepareConfig) -> Any:
    """A byte-level BPE with ``config.vocab_size`` entries, as ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        padding_side="left",
        model_max_length=config.n_positions,
    )


def make_prompts(heldout_texts: list[str], tokenizer: Any, config: PrepareConfig) -> list[str]:
    """The first ``prompt_words`` words of held-out texts that have more words than that and fit
    in ``PROMPT_CONTEXT_SHARE`` of the context, in the split's seeded order; fewer such texts
    than ``n_prompts`` are reused cyclically (warned)."""
    max_tokens = int(PROMPT_CONTEXT_SHARE * config.n_positions)
    words = [t.split() for t in heldout_texts]
    candidates = [" ".join(w[: config.prompt_words]) for w in words if len(w) > config.prompt_words]
    encodings = tokenizer.backend_tokenizer.encode_batch(candidates)
    prompts = [p for p, e in zip(candidates, encodings, strict=True) if len(e.ids) <= max_tokens]
    if not prompts:
        raise ValueError(
            f"no held-out text gives a prompt of prompt_words={config.prompt_words} words "
            f"within {max_tokens} tokens"
        )
    if len(prompts) < config.n_prompts:
        import warnings

        warnings.warn(
            f"only {len(prompts)} held-out prompts for n_prompts={config.n_prompts}; they repeat",
            stacklevel=2,
        )
    return [prompts[i % len(prompts)] for i in range(config.n_prompts)]


def sample_continuations(model: Any, tokenizer: Any, prompts: list[str]) -> list[dict[str, str]]:
    """One sampled continuation (temperature 1, no top-k, at least ``SAMPLE_MIN_NEW_TOKENS``) of
    each prompt, for eyeballing; a prompt too long for the context keeps its last tokens."""
    import torch

    new_tokens = min(SAMPLE_NEW_TOKENS, model.config.n_positions // 2)
    samples = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        ids = ids[:, -(model.config.n_positions - new_tokens) :]
        with torch.no_grad():
            output = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                top_k=0,
                top_p=1.0,
                temperature=1.0,
                max_new_tokens=new_tokens,
                min_new_tokens=min(SAMPLE_MIN_NEW_TOKENS, new_tokens),
                pad_token_id=tokenizer.pad_token_id,
            )
        continuation = tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)
        samples.append({"prompt": prompt, "continuation": continuation})
    return samples


def _token_stream(tokenizer: Any, texts: list[str]) -> list[int]:
    """All texts' token ids, each text followed by EOS."""
    stream: list[int] = []
    for encoding in tokenizer.backend_tokenizer.encode_batch(texts):
        stream.extend(encoding.ids)
        stream.append(tokenizer.eos_token_id)
    return stream


def _temporary_prefix(final: Path) -> str:
    return f".{final.name}.tmp-{socket.gethostname()}-"


def _remove_abandoned_temporaries(final: Path) -> None:
    """Delete this config's temporaries left by killed prepares on this host (pid not alive)."""
    prefix = _temporary_prefix(final)
    for path in final.parent.glob(f"{prefix}*"):
        pid_text = path.name[len(prefix) :].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: an existence check, nothing is sent
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """transformers' tqdm bars off for the block unless ``enabled``, then as they were."""
    from transformers.utils import logging

    if enabled or not logging.is_progress_bar_enabled():
        yield
        return
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.enable_progress_bar()
