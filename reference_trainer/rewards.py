"""Reward scorers: VADER sentiment (default), any callable, or a sequence-classification model.

Every scorer is ``reward_fn(prompts, completions) -> list[float]``; ``checked_rewards`` verifies
what a user's function returned (count, finiteness) so a broken scorer stops the run with a clear
error instead of poisoning the controller and the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

RewardFn = Callable[[list[str], list[str]], Sequence[float]]


def vader_reward() -> RewardFn:
    """VADER compound sentiment of the continuation, in [−1, 1] (TRL's classic positive task)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()

    def score(prompts: list[str], completions: list[str]) -> list[float]:
        return [analyzer.polarity_scores(text)["compound"] for text in completions]

    return score


def classifier_reward(path: str, label: int = -1) -> RewardFn:
    """The logit ``label`` of an ``AutoModelForSequenceClassification`` on prompt + completion."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    except OSError as exc:
        raise ValueError(f"reward model {path!r} could not be loaded: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    @torch.no_grad()
    def score(prompts: list[str], completions: list[str]) -> list[float]:
        texts = [p + c for p, c in zip(prompts, completions, strict=True)]
        batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
        return model(**batch).logits[:, label].float().tolist()

    return score


def make_reward(spec: str, label: int = -1) -> RewardFn:
    """ "vader", or a local path / Hub name of a sequence-classification model."""
    return vader_reward() if spec == "vader" else classifier_reward(spec, label)


def checked_rewards(reward_fn: RewardFn, prompts: list[str], completions: list[str]) -> list[float]:
    """Call ``reward_fn`` and insist on one finite float per completion."""
    try:
        values = list(reward_fn(prompts, completions))
    except Exception as exc:
        raise RuntimeError(f"reward function {reward_fn!r} raised {exc!r}") from exc
    if len(values) != len(completions):
        raise ValueError(
            f"reward function returned {len(values)} values for {len(completions)} completions"
        )
    out = []
    for i, value in enumerate(values):
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(
                f"reward function returned a non-finite reward {x!r} for completion {i} "
                f"({completions[i]!r})"
            )
        out.append(x)
    return out
