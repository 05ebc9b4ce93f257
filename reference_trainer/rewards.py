"""Reward scorers: VADER sentiment (default), any callable, or a sequence-classification model.

Every scorer is ``reward_fn(prompts, completions) -> list[float]``; ``checked_rewards`` verifies
what a user's function returned (count, finiteness) so a broken scorer stops the run with a clear
error instead of poisoning the controller and the checkpoint.
"""

from __future__ import annotations

import math
import numbers
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

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


_PYTHON_REWARD = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_python_reward(spec: str) -> bool:
    """Whether ``spec`` names a Python callable as ``module:function``."""
    return bool(_PYTHON_REWARD.match(spec))


def python_reward(spec: str) -> RewardFn:
    """The callable ``function`` of the importable module ``module`` (``spec`` = "module:function"),
    called as ``function(prompts, completions)``."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"reward {spec!r}: cannot import module {module_name!r}: {exc}") from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"reward {spec!r}: module {module_name!r} has no callable {attribute!r}")
    return function  # type: ignore[no-any-return]


def make_reward(spec: str, label: int = -1) -> RewardFn:
    """ "vader", "module:function" (a Python callable), or a local path / Hub name of a
    sequence-classification model."""
    if spec == "vader":
        return vader_reward()
    if is_python_reward(spec):
        return python_reward(spec)
    return classifier_reward(spec, label)


def checked_rewards(
    reward_fn: RewardFn, prompts: list[str], completions: list[str], timeout: float = 0.0
) -> list[float]:
    """Call ``reward_fn`` and insist on a sequence of one real number per completion.

    Strings, bytes, bools and mappings are refused, not coerced (a dict's keys would otherwise
    become rewards). ``timeout`` > 0: a call that has not returned after that many seconds
    stops the run instead of hanging it.
    """
    values = _call(reward_fn, prompts, completions, timeout)
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise ValueError(
            f"reward function must return a sequence of numbers, got {type(values).__name__}"
        )
    values = list(values)
    if len(values) != len(completions):
        raise ValueError(
            f"reward function returned {len(values)} values for {len(completions)} completions"
        )
    out = []
    for i, value in enumerate(values):
        if hasattr(value, "detach") or isinstance(value, np.ndarray):  # a 0-d tensor or array
            value = value.item() if getattr(value, "ndim", 1) == 0 else value
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise ValueError(
                f"reward function returned {value!r} ({type(value).__name__}) for completion "
                f"{i}; rewards must be real numbers"
            )
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(
                f"reward function returned a non-finite reward {x!r} for completion {i} "
                f"({completions[i]!r})"
            )
        out.append(x)
    return out


def _call(reward_fn: RewardFn, prompts: list[str], completions: list[str], timeout: float) -> Any:
    """``reward_fn(prompts, completions)``, in a daemon thread when there is a timeout (a hung
    scorer cannot be killed, but it no longer holds the run or the process's exit)."""
    if timeout <= 0:
        try:
            return reward_fn(prompts, completions)
        except Exception as exc:
            raise RuntimeError(f"reward function {reward_fn!r} raised {exc!r}") from exc
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = reward_fn(prompts, completions)
        except Exception as exc:  # handed to the caller's thread below
            result["error"] = exc

    worker = threading.Thread(target=target, name="reward-fn", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise RuntimeError(
            f"reward function {reward_fn!r} did not return within reward_timeout={timeout} s"
        )
    if "error" in result:
        exc = result["error"]
        raise RuntimeError(f"reward function {reward_fn!r} raised {exc!r}") from exc
    return result["value"]
