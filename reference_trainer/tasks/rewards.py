"""Reward scorers: VADER sentiment (default), any callable, or a sequence-classification model.

Every scorer is ``reward_fn(prompts, completions) -> list[float]``; ``checked_rewards`` verifies
what a user's function returned (shape, count, finiteness, float32 range) and how it ended (what
it raised, a hang) so a broken scorer stops the run with a clear error naming it instead of
poisoning the controller and the checkpoint, or ending the run as if it had finished.
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


FLOAT32_MAX = float(np.finfo(np.float32).max)
"""The largest reward the trainer can hold: scores become a float32 tensor."""


def reward_name(reward_fn: RewardFn) -> str:
    """``module:function`` as a user names a Python reward, else the callable's repr."""
    module = getattr(reward_fn, "__module__", None)
    qualname = getattr(reward_fn, "__qualname__", None)
    return f"{module}:{qualname}" if module and qualname else repr(reward_fn)


def checked_rewards(
    reward_fn: RewardFn, prompts: list[str], completions: list[str], timeout: float = 0.0
) -> list[float]:
    """Call ``reward_fn`` and insist on a sequence of one real number per completion, each
    within float32's range; every error names the function.

    Strings, bytes, bools and mappings are refused, not coerced (a dict's keys would otherwise
    become rewards); a tensor or array must be one-dimensional. ``timeout`` > 0: a call that
    has not returned after that many seconds stops the run instead of hanging it.
    """
    name = reward_name(reward_fn)
    values = _call(reward_fn, prompts, completions, timeout)
    shape = getattr(values, "shape", None)
    if shape is not None and len(shape) != 1:  # list() of a 0-d tensor is a bare TypeError
        raise ValueError(
            f"reward function {name} returned a {type(values).__name__} of shape "
            f"{tuple(shape)}; expected one number per completion, shape ({len(completions)},)"
        )
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise ValueError(
            f"reward function {name} must return a sequence of numbers, got {type(values).__name__}"
        )
    values = list(values)
    if len(values) != len(completions):
        raise ValueError(
            f"reward function {name} returned {len(values)} values for {len(completions)} "
            f"completions"
        )
    out = []
    for i, value in enumerate(values):
        if hasattr(value, "detach") or isinstance(value, np.ndarray):  # a 0-d tensor or array
            value = value.item() if getattr(value, "ndim", 1) == 0 else value
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise ValueError(
                f"reward function {name} returned {value!r} ({type(value).__name__}) for "
                f"completion {i}; rewards must be real numbers"
            )
        x = float(value)  # float64: a value float32 cannot hold is still seen as returned
        if not math.isfinite(x):
            raise ValueError(
                f"reward function {name} returned a non-finite reward {x!r} for completion {i} "
                f"({completions[i]!r})"
            )
        if abs(x) > FLOAT32_MAX:
            raise ValueError(
                f"reward function {name} returned {x!r} for completion {i}, beyond float32's "
                f"range (±{FLOAT32_MAX:.4g}) in which the trainer holds rewards"
            )
        out.append(x)
    return out


def _call(reward_fn: RewardFn, prompts: list[str], completions: list[str], timeout: float) -> Any:
    """``reward_fn(prompts, completions)``; whatever it raises, ``SystemExit`` included, is a
    ``RuntimeError`` naming it: a scorer calling ``sys.exit(0)`` must not end the run as if it
    had finished.

    ``timeout`` > 0: the call runs in a daemon thread (a hung scorer cannot be killed, but it no
    longer holds the run or the process's exit). Signals reach only the main thread, so a
    ``KeyboardInterrupt`` there is the scorer's own; Ctrl-C interrupts the main thread's wait
    and stops the run as anywhere else. ``timeout`` = 0: called in the main thread, where a
    ``KeyboardInterrupt`` may be Ctrl-C and is left to stop the run.
    """
    if timeout <= 0:
        try:
            return reward_fn(prompts, completions)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise _failed(reward_fn, exc) from exc
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = reward_fn(prompts, completions)
        except BaseException as exc:  # handed to the caller's thread below
            result["error"] = exc

    worker = threading.Thread(target=target, name="reward-fn", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise RuntimeError(
            f"reward function {reward_name(reward_fn)} did not return within "
            f"reward_timeout={timeout} s (raise it, or set 0 for no limit, if it is only slow)"
        )
    if "error" in result:
        exc = result["error"]
        raise _failed(reward_fn, exc) from exc
    return result["value"]


def _failed(reward_fn: RewardFn, exc: BaseException) -> RuntimeError:
    return RuntimeError(f"reward function {reward_name(reward_fn)} raised {exc!r}")
