"""The learned proxy of the ``reward-model`` task: Gao et al.'s synthetic RLHF setup, offline.

A gold labeller labels ``RM_SAMPLES`` samples of the SFT policy; a sequence-classification model
initialised from the SFT model (as reward models are in practice) is regressed on those labels and
saved as an ordinary Hugging Face model, so the proxy is exactly what ``--set reward=<dir>`` would
load (``rewards.classifier_reward``). It is built once per task source and cached; its held-out
correlation with the labeller is recorded beside it (``reward_model.json``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from safecontrol.atomic_files import write_json_atomic

from .offline import RM_HELD_OUT, RM_SAMPLES, TaskSource, sft_samples
from .rewards import RewardFn, classifier_reward

RM_EPOCHS = 8
RM_BATCH = 64
RM_LR = 1e-3
RM_SEED = 2


def reward_model_proxy(
    source: TaskSource,
    labeller: RewardFn,
    load: Callable[[], tuple[Any, Any]],
    seed: int = RM_SEED,
) -> RewardFn:
    """The reward model of ``seed`` (built on first use). The task's proxy is ``RM_SEED``'s;
    another seed labels its own draw of SFT samples and starts from its own head, which is how
    the steering study builds an ensemble beside the proxy to measure its disagreement."""
    # Named by its recipe, so a changed recipe never reuses an old model.
    directory = source.directory() / f"reward_model-n{RM_SAMPLES}-e{RM_EPOCHS}-s{seed}"
    if not (directory / "reward_model.json").is_file():
        train_reward_model(source, labeller, load, directory, seed)
    return classifier_reward(str(directory), label=0)


def train_reward_model(
    source: TaskSource,
    labeller: RewardFn,
    load: Callable[[], tuple[Any, Any]],
    directory: Path,
    seed: int = RM_SEED,
) -> dict[str, float]:
    """Label SFT samples with ``labeller``, regress a reward model on them, save it whole."""
    from transformers import AutoModelForSequenceClassification

    model, tokenizer = load()
    prompts, completions = sft_samples(source, model, tokenizer, RM_SAMPLES, seed=seed)
    labels = torch.tensor(labeller(prompts, completions), dtype=torch.float32)
    texts = [p + c for p, c in zip(prompts, completions, strict=True)]
    torch.manual_seed(seed)
    reward_model = AutoModelForSequenceClassification.from_pretrained(
        source.model_dir, num_labels=1, pad_token_id=tokenizer.pad_token_id
    )
    n_train = len(texts) - RM_HELD_OUT
    optimizer = torch.optim.AdamW(reward_model.parameters(), lr=RM_LR)
    reward_model.train()
    for _ in range(RM_EPOCHS):
        order = torch.randperm(n_train).tolist()
        for start in range(0, n_train, RM_BATCH):
            idx = order[start : start + RM_BATCH]
            batch = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True)
            predicted = reward_model(**batch).logits[:, 0]
            loss = torch.nn.functional.mse_loss(predicted, labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    reward_model.eval()
    with torch.no_grad():
        batch = tokenizer(texts[n_train:], return_tensors="pt", padding=True)
        held_out = reward_model(**batch).logits[:, 0]
    truth = labels[n_train:]
    correlation = float(torch.corrcoef(torch.stack([held_out, truth]))[0, 1])
    record = {
        "samples": RM_SAMPLES,
        "held_out": RM_HELD_OUT,
        "held_out_pearson_r": correlation,
        "held_out_rmse": float((held_out - truth).pow(2).mean().sqrt()),
        "label_mean": float(labels.mean()),
        "label_std": float(labels.std()),
    }
    # Built in a temporary sibling and renamed: a reader sees no model or a whole one.
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".reward_model.", dir=directory.parent))
    try:
        reward_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / "reward_model.json", record)
        if directory.exists():
            shutil.rmtree(directory)
        tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record
