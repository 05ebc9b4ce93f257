"""The run metrics of SPEC §5, on plain per-step arrays (a plant ``Trajectory`` or your own logs).

- Training-average reward: the mean over all steps of the batch-mean reward.
- Reward crash: the rolling mean (window w = 10) of the batch-mean reward falls more than
  ``margin = max(3·σ, 0.3·range)`` below its running maximum, where ``range`` is the run's reward
  range (max − min of the batch-mean reward) and σ the batch reward's standard deviation, by
  default estimated from the run as the noise of one batch mean: 1.4826·MAD(Δr)/√2, the robust
  std of step-to-step changes over √2 (a crash's few large changes do not inflate it). A crash
  ends when the rolling mean recovers to within margin/2 of its running maximum; crashes are
  counted by their onsets.
- Volatility: std of step-to-step changes of the batch-mean reward.
- KL control: mean, p95 and max of the per-token KL, and the fraction of steps above a threshold
  or target.
- Entropy collapse: steps whose per-token entropy is below 10% of the initial entropy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._validation import finite, positive, positive_int

CRASH_WINDOW = 10
CRASH_STDS = 3.0
CRASH_RANGE_FRACTION = 0.3
COLLAPSE_FRACTION = 0.1


def _series(name: str, values: ArrayLike) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d sequence, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite, got {x[~np.isfinite(x)][0]!r}")
    return x


def rolling_mean(values: ArrayLike, window: int = CRASH_WINDOW) -> np.ndarray:
    """Trailing mean over the last ``window`` steps (fewer at the start), same length as input."""
    x = _series("values", values)
    window = positive_int("window", window)
    sums = np.cumsum(np.concatenate(([0.0], x)))
    ends = np.arange(1, x.size + 1)
    starts = np.maximum(ends - window, 0)
    means: np.ndarray = (sums[ends] - sums[starts]) / (ends - starts)
    return means


def volatility(reward: ArrayLike) -> float:
    """Std of step-to-step changes of the batch-mean reward (0.0 for a single step)."""
    x = _series("reward", reward)
    return float(np.std(np.diff(x))) if x.size > 1 else 0.0


def batch_noise_std(reward: ArrayLike) -> float:
    """Robust estimate of one batch mean's noise: 1.4826·MAD(Δr)/√2."""
    x = _series("reward", reward)
    if x.size < 3:
        return 0.0
    diffs = np.diff(x)
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    return 1.4826 * mad / math.sqrt(2.0)


def crash_margin(reward: ArrayLike, reward_std: float | None = None) -> float:
    """``max(3·σ, 0.3·range)``; σ defaults to ``batch_noise_std(reward)``."""
    x = _series("reward", reward)
    sigma = batch_noise_std(x) if reward_std is None else finite("reward_std", reward_std)
    if sigma < 0.0:
        raise ValueError(f"reward_std must be >= 0, got {sigma!r}")
    return max(CRASH_STDS * sigma, CRASH_RANGE_FRACTION * float(np.ptp(x)))


def crash_onsets(
    reward: ArrayLike, window: int = CRASH_WINDOW, reward_std: float | None = None
) -> tuple[int, ...]:
    """Steps at which a reward crash begins (SPEC §5; see the module docstring)."""
    x = _series("reward", reward)
    margin = crash_margin(x, reward_std)
    if margin <= 0.0:
        return ()
    smooth = rolling_mean(x, window)
    peak = np.maximum.accumulate(smooth)
    onsets: list[int] = []
    crashed = False
    for t in range(x.size):
        drop = peak[t] - smooth[t]
        if not crashed and drop > margin:
            crashed = True
            onsets.append(t)
        elif crashed and drop <= margin / 2.0:
            crashed = False
    return tuple(onsets)


def count_crashes(
    reward: ArrayLike, window: int = CRASH_WINDOW, reward_std: float | None = None
) -> int:
    """The number of distinct reward crashes (SPEC §5)."""
    return len(crash_onsets(reward, window, reward_std))


def entropy_collapse_steps(entropy: ArrayLike, fraction: float = COLLAPSE_FRACTION) -> int:
    """Steps whose entropy is below ``fraction`` of the first step's entropy."""
    h = _series("entropy", entropy)
    return int(np.count_nonzero(h < positive("fraction", fraction) * h[0]))


def fraction_above(kl: ArrayLike, limit: ArrayLike) -> float:
    """Fraction of steps with KL above ``limit`` (a scalar, or one threshold per step)."""
    x = _series("kl", kl)
    bound = np.broadcast_to(np.asarray(limit, dtype=np.float64), x.shape)
    return float(np.mean(x > bound))


@dataclass(frozen=True)
class RunMetrics:
    """SPEC §5's measures of one run."""

    reward_mean: float
    """Training-average batch-mean reward."""
    reward_final: float
    """Mean reward of the last ``CRASH_WINDOW`` steps."""
    reward_peak: float
    """Maximum of the rolling-mean reward."""
    crashes: int
    first_crash: int | None
    """Step at which the first crash begins, None without a crash."""
    volatility: float
    kl_mean: float
    kl_p95: float
    kl_max: float
    kl_final: float
    """Mean KL of the last ``CRASH_WINDOW`` steps."""
    kl_above: float | None
    """Fraction of steps above ``kl_limit`` (None when no limit was given)."""
    entropy_initial: float
    entropy_min: float
    entropy_collapse_steps: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    reward: ArrayLike,
    kl: ArrayLike,
    entropy: ArrayLike,
    kl_limit: ArrayLike | None = None,
    reward_std: float | None = None,
) -> RunMetrics:
    """All of SPEC §5's measures from per-step batch-mean reward, per-token KL and entropy.

    ``kl_limit`` is the threshold or target for "fraction of steps above" (scalar or per step);
    ``reward_std`` overrides the estimated batch-reward std of the crash margin.
    """
    r, k, h = _series("reward", reward), _series("kl", kl), _series("entropy", entropy)
    if not r.size == k.size == h.size:
        raise ValueError(f"reward, kl, entropy lengths differ: {r.size}, {k.size}, {h.size}")
    onsets = crash_onsets(r, reward_std=reward_std)
    tail = slice(-CRASH_WINDOW, None)
    return RunMetrics(
        reward_mean=float(r.mean()),
        reward_final=float(r[tail].mean()),
        reward_peak=float(rolling_mean(r).max()),
        crashes=len(onsets),
        first_crash=onsets[0] if onsets else None,
        volatility=volatility(r),
        kl_mean=float(k.mean()),
        kl_p95=float(np.percentile(k, 95)),
        kl_max=float(k.max()),
        kl_final=float(k[tail].mean()),
        kl_above=None if kl_limit is None else fraction_above(k, kl_limit),
        entropy_initial=float(h[0]),
        entropy_min=float(h.min()),
        entropy_collapse_steps=entropy_collapse_steps(h),
    )


def summarize_trajectory(trajectory: Any, kl_limit: ArrayLike | None = None) -> RunMetrics:
    """``summarize`` of a plant ``Trajectory``: proxy reward, exact KL and entropy.

    Without ``kl_limit``, the trajectory's own thresholds are used when it has them (SAFE).
    """
    if kl_limit is None and np.all(np.isfinite(trajectory.threshold)):
        kl_limit = trajectory.threshold
    return summarize(trajectory.reward, trajectory.kl, trajectory.entropy, kl_limit)
