"""What a run trains on and logs: a task's (proxy, gold) pair, or the rewards a config names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TASKS, TrainConfig
from ..prepare.default_model import is_prepared
from .offline import (
    Fluency,
    TaskSource,
    fluency_baseline,
    sentiment_gold,
    topic_gold,
    topic_proxy,
    topic_words,
)
from .reward_model import reward_model_proxy
from .rewards import RewardFn, make_reward, vader_reward


@dataclass(frozen=True)
class Task:
    name: str
    proxy: RewardFn
    gold: RewardFn


def make_task(name: str, source: TaskSource, load: Callable[[], tuple[Any, Any]]) -> Task:
    """The task ``name`` on ``source``; ``load()`` gives a fresh (SFT model in eval mode,
    tokenizer with left padding). Cached artefacts are built on first use."""
    if name not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {name!r}")
    model, tokenizer = load()
    model.requires_grad_(False)
    fluency = Fluency(model, tokenizer, fluency_baseline(source, model, tokenizer))
    if name == "sentiment":
        return Task(name, vader_reward(), sentiment_gold(fluency))
    if name == "topic":
        topic = topic_words()
        return Task(name, topic_proxy(topic), topic_gold(topic, fluency))
    gold = sentiment_gold(fluency)
    return Task(name, reward_model_proxy(source, gold, load), gold)


def scorers(config: TrainConfig, prompts: list[str]) -> tuple[RewardFn, RewardFn | None]:
    """(proxy, gold or None) of a run: its task's pair, else ``reward`` and ``gold_reward`` as
    given."""
    if not config.task:
        gold = make_reward(config.gold_reward, config.reward_label) if config.gold_reward else None
        return make_reward(config.reward, config.reward_label), gold
    task = make_task(config.task, *task_source(config, prompts))
    return task.proxy, task.gold


def task_source(
    config: TrainConfig, prompts: list[str]
) -> tuple[TaskSource, Callable[[], tuple[Any, Any]]]:
    """What ``config``'s task is built from, and the loader of its frozen SFT model."""
    source_path = Path(config.policy_source())
    prepared = is_prepared(source_path)
    model_dir = source_path / "model" if prepared else source_path
    tokenizer_dir = source_path / "tokenizer" if prepared else source_path

    def load() -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        return AutoModelForCausalLM.from_pretrained(model_dir).eval(), tokenizer

    source = TaskSource(
        model_dir=str(model_dir),
        prompts=tuple(prompts),
        max_new_tokens=config.max_new_tokens,
        min_new_tokens=config.min_new_tokens,
        cache_dir=Path(config.data_dir),
    )
    return source, load
