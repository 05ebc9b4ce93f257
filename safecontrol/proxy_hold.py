"""The proxy hold of ``BudgetKL`` (its ``hold_window`` setting): once the proxy's reward stops
rising, the controller holds the policy where it is.

**Proxy hold** (``hold_window`` = w; off by default). Inside a fixed budget the policy goes on
moving after the proxy has stopped paying, and what it then finds is the proxy's exploits: on
the sentiment task the batch gold fell from 0.41 (iterations 101–200) to 0.38 (201–300) at a
KL held at 1.37 nats per token, while the proxy crept from 0.82 to 0.83; at a learning rate
where the step limit binds, the held-out gold fell by 0.20–0.29 by iteration 300 on every
task. With w set, the controller holds the policy once the proxy stops rising::

    R_t     = the proxy's batch-mean reward of update t
    held    from the first update t ≥ w at which mean(newer half of R_{t−w+1..t})
                                             ≤ mean(older half), and from then on
    max_preview_kl = HELD_KL_RATIO · b while held     (1e-8 · b: every step shrunk to ~nothing)

- **Why a hold and not a tighter budget**: pulling the policy back toward the reference gives
  up the gold it has found with the exploits; holding keeps it where the proxy last paid.
- **Why the proxy**: it is what every run observes. None of the other signals measured fell
  where gold fell at equal KL (``benchmarks/steering``'s signal studies: entropy, distinct-1,
  a reward-model ensemble's disagreement); the proxy's own plateau says when more movement
  stops buying reward.
- **Half means over w batches** compare trends with √(w / 2) less of one batch's noise; a slow
  but real rise is still a rise. The hold is never released: a held policy's proxy no longer
  moves, so there is no later evidence to release it on.
- **Why not a limit of 0**: the decision contract's ``step_scale`` lies in (0, 1] (a loop may
  divide by it). KL grows with the square of a step, so n held steps in one direction move the
  policy by at most n² · 1e-8 · b (a hundredth of the budget after 1,000).
- It acts through the step limit, so a loop must honour ``max_preview_kl`` (the reference
  trainer, the TRL step-limit callback); one that does not is warned by the integration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ._state import require
from ._validation import MAX_MEASUREMENT


def half_change(values: Sequence[float]) -> float:
    """The mean of the window's newer half − the mean of its older half (an odd window's middle
    value is in neither). Means of halves rather than the two end values: for a trend they
    measure the same change, with √(len / 2) less of one value's noise."""
    half = len(values) // 2
    return (sum(values[-half:]) - sum(values[:half])) / half


class ProxyHoldState(NamedTuple):
    rewards: tuple[float, ...] = ()
    """The proxy's batch-mean reward of the last min(step, hold_window) batches, oldest first."""
    held_at: int = 0
    """The update from which the policy is held (0: not held)."""


class ProxyHold:
    """The transition and state checks of the hold, for a validated window (``BudgetKL``
    validates it and owns the state record).

    Args:
        window: w, the batches whose older and newer halves are compared (≥ 2).
    """

    def __init__(self, window: int) -> None:
        self.window = window

    def step(self, s: ProxyHoldState, reward: float, step: int) -> ProxyHoldState:
        """The record after update ``step`` (1 for the first) with the batch's (finite) mean
        reward: held from ``step`` on when a full window's newer half is no higher than its
        older half; a hold is never released (a held policy's proxy no longer moves)."""
        rewards = (*s.rewards, reward)[-self.window :]
        held_at = s.held_at
        if not held_at and len(rewards) == self.window and not half_change(rewards) > 0.0:
            held_at = step
        return ProxyHoldState(rewards, held_at)

    def check(self, s: ProxyHoldState | None, owner: str, step: int) -> None:
        """The rules of a loaded record after ``step`` accepted updates."""
        if s is None:
            require(False, owner, "hold", "be a record when hold_window is set", s)
            return
        n = min(step, self.window)
        require(
            len(s.rewards) == n,
            owner,
            "hold.rewards",
            f"hold min(step, hold_window) = {n} entries (step {step})",
            s.rewards,
        )
        require(
            all(-MAX_MEASUREMENT <= v <= MAX_MEASUREMENT for v in s.rewards),
            owner,
            "hold.rewards",
            f"hold measurements of magnitude <= {MAX_MEASUREMENT:g}",
            s.rewards,
        )
        if s.held_at:
            require(
                self.window <= s.held_at <= step,
                owner,
                "hold.held_at",
                f"be 0 or lie in [hold_window, step] = [{self.window}, {step}] (a hold needs "
                "a full window)",
                s.held_at,
            )
        if s.held_at == step and step >= self.window:
            require(
                not half_change(s.rewards) > 0.0,
                owner,
                "hold.held_at",
                "be the update whose window stopped rising, but this window still rises",
                s.held_at,
            )
        if not s.held_at and step >= self.window:
            require(
                half_change(s.rewards) > 0.0,
                owner,
                "hold.held_at",
                "be set: the last window's newer half is no higher than its older half",
                s.held_at,
            )
