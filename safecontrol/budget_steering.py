"""The steered budget of ``BudgetKL`` (its ``budget_growth`` setting): the window of batches over
which the proxy's gain per nat of KL is measured, and the growth of the budget that gain allows.

**Steered budget** (``budget_growth`` = γ; off by default, and then every decision is as above).
A fixed budget cannot be loose while the proxy still pays for KL and tight once it stops paying
(on one task the best fixed β's KL rose usefully from 1.37 to 1.60 nats per token by iteration
300 while this controller held it at 1.37). With γ set, the budget grows while the proxy's gain
per nat of KL holds up, measured on the rewards the controller is given::

    W_t    = the last w = gain_window batches' (KL, R)       (R: the proxy's batch-mean reward)
    ΔKL, ΔR = mean over W_t's newer half − mean over its older half
    κ_t    = γ · setpoint · b_{t−1}                         (the KL one growth step opens)
    G_t    = ΔR / max(ΔKL, κ_t)                             (proxy per nat of KL)
    G_ref  = G_w                                            (the first full window's gain)
    b₀     = b above (given or derived);   b_max = max(b₀, max_budget_ratio · H₀)
    b_t    = min((1 + γ) · b_{t−1}, b_max)   if KL_t ≥ setpoint · b_{t−1} and G_ref > 0
                                               and G_t ≥ gain_floor · G_ref
           = b_{t−1}                         otherwise
    (e_KL, g, the integral's clip and max_preview_kl of update t then use b_t)

- **It grows only where the budget binds** (KL at its set point): a leash that is not pulled
  tells nothing about what more KL would buy, and room opened ahead of the policy is what an
  exploit spends first. KL then has to catch up with each step before the next, so the budget
  grows at the pace the policy actually takes it.
- **G_ref is the run's own scale**: the proxy per nat while the policy first moves away from
  the reference. The budget grows while the marginal gain keeps ``gain_floor`` of it; where the
  proxy did not pay even then (G_ref ≤ 0) it never grows.
- **κ is one growth step's KL**, not a token constant: where KL stalls at the set point, the
  proxy must rise by what one step would pay at ``gain_floor`` · G_ref before the leash opens,
  not by any amount above zero. Means of the window's halves rather than its two end batches
  measure the same ratio on a trend, with √(w / 2) less of one batch's noise. Reward noise
  larger than that threshold still opens it now and then after the proxy has stopped paying,
  and a budget that never shrinks keeps each step: b_max bounds that creep, a longer
  ``gain_window`` slows it.
- **It never shrinks** (b ≥ b₀ always): when G_t turns negative the policy is spending KL on
  the proxy's exploits, and a hacking policy narrows, so the entropy floor already raises β
  against it, where shrinking the budget too would pull twice on one cause and move β with
  every swing of a noisy G_t.
- The step limit keeps its formula in the current budget (above the derived budget it is
  step_ratio · H₀: growing does not enlarge the steps), and g = √(derived / b) falls as the
  budget grows, as for a looser given budget. Without γ the steering settings neither act nor
  enter the state dict, which keeps the fixed budget's layout (its checkpoints load unchanged).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ._state import require
from ._validation import MAX_MEASUREMENT
from .proxy_hold import half_change


class BudgetSteeringState(NamedTuple):
    kls: tuple[float, ...] = ()
    """KL of the last min(step, gain_window) batches, nats per token, oldest first."""
    rewards: tuple[float, ...] = ()
    """The proxy's batch-mean reward of the same batches, oldest first."""
    reference_gain: float | None = None
    """G_ref, proxy reward per nat of KL over the first full window (None until it is full)."""


def window_gain(kls: tuple[float, ...], rewards: tuple[float, ...], min_kl_change: float) -> float:
    """G: the change of the mean reward from the window's older half to its newer half, per nat
    of the change of the mean KL (the middle batch of an odd window is in neither half).

    A KL change below ``min_kl_change`` (nats per token, > 0) counts as that much: a stalled or
    falling KL does not divide by zero, and at a stalled KL only a reward rise worth that much KL
    counts as a gain. Means of halves rather than the window's two end batches: for a trend they
    measure the same ratio, with √(window / 2) less of one batch's noise (``half_change``)."""
    kl_change, reward_change = half_change(kls), half_change(rewards)
    scale = max(kl_change, min_kl_change)
    if not scale > 0.0:
        raise ValueError(
            f"the gain window's smallest KL change {min_kl_change!r} underflows to zero "
            "(budget_growth · setpoint · budget); use larger settings"
        )
    return reward_change / scale


class BudgetSteering:
    """The transition and state checks of a steered budget, for validated settings (``BudgetKL``
    validates them and owns the state record).

    Args:
        growth: γ, the budget's relative growth on an update that allows it, in (0, 1].
        window: w, the batches over which the gain is measured (≥ 2).
        floor: the budget grows while G ≥ floor · G_ref (≥ 0).
    """

    def __init__(self, growth: float, window: int, floor: float) -> None:
        self.growth = growth
        self.factor = 1.0 + growth
        self.window = window
        self.floor = floor

    def min_kl_change(self, set_point_kl: float) -> float:
        """κ in nats per token: the KL by which one growth step raises the set point."""
        return self.growth * set_point_kl

    def step(
        self,
        s: BudgetSteeringState,
        kl: float,
        reward: float,
        budget: float,
        set_point_kl: float,
        most: float,
    ) -> tuple[BudgetSteeringState, float]:
        """The record after a batch's (finite) KL and reward, and the budget from then on:
        ``budget`` × (1 + γ), at most ``most`` (≥ ``budget``), when KL reached ``set_point_kl``
        (the set point of ``budget``) and the proxy still pays for KL; else ``budget``."""
        w = self.window
        kls, rewards = (*s.kls, kl)[-w:], (*s.rewards, reward)[-w:]
        if len(kls) < w:
            return BudgetSteeringState(kls, rewards, None), budget
        gain = window_gain(kls, rewards, self.min_kl_change(set_point_kl))
        reference = gain if s.reference_gain is None else s.reference_gain
        if not math.isfinite(reference):
            raise ValueError(
                f"kl {kl!r} / reward {reward!r} overflow the gain window's reference gain"
            )
        if kl >= set_point_kl and reference > 0.0 and gain >= self.floor * reference:
            budget = min(budget * self.factor, most)
        return BudgetSteeringState(kls, rewards, reference), budget

    def check(
        self,
        s: BudgetSteeringState | None,
        owner: str,
        step: int,
        grown: bool,
        start_set_point_kl: float | None,
    ) -> None:
        """The rules of a loaded record after ``step`` accepted updates; ``grown``: the budget
        lies above its start; ``start_set_point_kl``: the set point of the start budget (None
        before it exists)."""
        if s is None:
            require(False, owner, "steering", "be a record when budget_growth is set", s)
            return
        n = min(step, self.window)
        rule = f"hold min(step, gain_window) = {n} entries (step {step})"
        for name, values in (("kls", s.kls), ("rewards", s.rewards)):
            require(len(values) == n, owner, f"steering.{name}", rule, values)
            require(
                all(-MAX_MEASUREMENT <= v <= MAX_MEASUREMENT for v in values),
                owner,
                f"steering.{name}",
                f"hold measurements of magnitude <= {MAX_MEASUREMENT:g}",
                values,
            )
        reference = s.reference_gain
        full = step >= self.window
        require(
            (reference is not None) == full,
            owner,
            "steering.reference_gain",
            "be set from the first full window (step >= gain_window) on and null before it",
            reference,
        )
        if step == self.window and start_set_point_kl is not None:
            # The window is still the first full one: G_ref is its gain.
            expected = window_gain(s.kls, s.rewards, self.min_kl_change(start_set_point_kl))
            require(
                reference == expected,
                owner,
                "steering.reference_gain",
                f"equal the gain of the first full window, {expected!r}",
                reference,
            )
        require(
            not grown or (reference is not None and reference > 0.0),
            owner,
            "steering.reference_gain",
            "be > 0 for a budget grown above its start (growth never starts at a gain <= 0)",
            reference,
        )
