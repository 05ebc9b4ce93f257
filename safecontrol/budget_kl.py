"""A KL controller that needs no β: it holds a KL budget and an entropy floor it derives from the
run, and limits every optimizer step.

The user's question is not "which β" but "how far may the policy move from the reference". This
controller answers it in the run's own scale and leaves the β search to a Lagrange multiplier::

    H₀  = the first batch's entropy per token (the reference policy's own scale)
    b   = max(budget_ratio · H₀, min_budget)              (unless ``budget`` is given)
    e_KL = KL_t / (setpoint · b) − 1                      (unit-free: 0 at the set point)
    e_H  = (1 − H_t / H₀) / max_entropy_drop − 1          (0 when a fifth of H₀ is lost)
    e_t = max(e_KL, e_H)                                  (the constraint that binds)
    g   = √(max(budget_ratio · H₀, min_budget) / b)       (1 at the derived budget)
    P_t = EMA(e_t)
    I_t = clip(I_{t−1} + e_t, 0, max_coef / (g · ki))     (anti-windup through the clip)
    β_t = clip(g · (kp · P_t + ki · I_t), 0, max_coef)
    max_preview_kl = step_ratio · min(H₀, b / budget_ratio)   (a trust region on each step)

- **Two limits, one multiplier.** The KL budget is the user's leash ("at most b nats per token
  from the reference"). The entropy floor is what the run measures of over-optimisation: a policy
  that hacks its reward narrows onto a few tokens, and its entropy falls. β rises when either is
  crossed; raising β pulls the policy back toward the reference, which restores both. Below both
  the error is negative, the integral stays at 0 and β ≈ 0: the policy learns unhindered (no
  fixed β can do that and still stop it later), and even at β = 0 entropy cannot collapse.
- **Scale-aware.** KL(π‖π_ref) and H₀ are both nats per token; "spend at most about a third of
  the initial entropy on moving away from the reference, and lose at most a fifth of it" are
  statements about the policy, not the task or vocabulary, so one default serves every task.
  (The defaults were chosen before the final sweep, on its seed 0: of budget_ratio 0.5 with set
  point 0.8, 0.35 with 0.75, and the latter with a step limit narrowing near the budget, the
  second had the best worst-case gold regret over the three tasks × two learning rates.)
- **The step limit.** At a learning rate where one optimizer step moves the policy further than
  a budget can absorb, no penalty can hold it (the penalty acts only after the step). The
  decision therefore carries ``max_preview_kl``: a training loop that previews its steps (the
  reference trainer's ``preview_steps``) shrinks any step whose KL to the pre-step policy exceeds
  it, which bounds the effective learning rate whatever the optimizer's. A step may spend the
  same share of any budget as of the derived one (step_ratio / budget_ratio ≈ 0.3%), so a budget
  tighter than the derived one gets proportionally smaller steps.

The error is unit-free, so the gains are too: a sustained excess of 100% over the set point adds
``ki`` = 0.05 to β per batch, and ``kp`` = 2 answers a sudden one at once, at the derived budget.
The proportional term is what damps the loop. β moves KL only through the steps it shapes, so KL
integrates β's effect, and a loop led by its integral cycles: with kp 0.5 on an EMA of decay 0.5,
KL passed 1.1 × the budget in bursts every ~11 batches (peaks 1.3–1.45 b; 0.91–0.95 of the
frontier's steps within 1.1 b in four of its 18 budget × cell pairs). kp 2 on a quicker EMA (0.2)
answers KL's rise before it overshoots (seed 0 of five budget × cell pairs: 0.98–1.0, before
0.91–0.99; ``tests/test_budget_kl.py`` shows the cycle on an integrating plant).

A given budget b scales both gains by g: near the reference KL ≈ ½ δᵀFδ, so the pull of β·KL
back toward it grows as ‖∇KL‖ ∝ √KL, and holding a tighter budget needs proportionally more β
(before the scaling, budget 0.1 nats per token was held on 86–95% of the frontier's steps).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._state import require
from ._validation import MAX_MEASUREMENT, all_finite, clamp, non_negative, positive
from ._validation import decay as check_decay
from .classic import CoefControllerBase, _batch_shape
from .decision import BudgetDecision, _construct
from .filters import EMA, EMAState, check_ema_state


class BudgetKLState(NamedTuple):
    budget: float
    """b, nats per token; 0.0 until the first update when it is derived from the entropy."""
    coef: float
    """β, the KL coefficient to use from now on."""
    integral: float
    """I, the accumulated relative excess (≥ 0, ≤ max_coef / ki), before ki."""
    proportional: float = 0.0
    """P, the smoothed relative excess of the last update, before kp."""
    initial_entropy: float | None = None
    """H₀, nats per token: the first measured entropy (None until one is measured)."""
    step: int = 0
    skipped: int = 0


class BudgetKLFullState(NamedTuple):
    controller: BudgetKLState
    error_ema: EMAState
    """EMA of the relative excess e (P is its bias-corrected value)."""


class BudgetKL(CoefControllerBase[BudgetKLFullState]):
    """KL coefficient from a PI Lagrangian on a KL budget and an entropy floor, both set by the
    initial entropy, plus a per-step KL limit.

    Args:
        budget: KL budget b in nats per token (> 0); None: ``budget_ratio`` × the first
            measured entropy (nats per token).
        budget_ratio: b / H₀ when ``budget`` is None, in (0, 10] (default 0.35).
        min_budget: the smallest derived budget, > 0 (default 0.01 nats per token: a nearly
            deterministic reference still leaves the policy room to learn).
        setpoint: the share of the budget KL is steered to, in (0, 1] (default 0.75).
        max_entropy_drop: the share of H₀ the policy may lose before β rises, in (0, 1]
            (default 0.2); None: no entropy floor.
        kp: proportional gain ≥ 0 on the relative excess (default 2).
        ki: integral gain > 0 (default 0.05).
        p_decay: EMA decay of the proportional term, in (0, 1) (default 0.2).
        max_coef: the largest β, > 0 (default 10; the integral stops there: anti-windup).
        step_ratio: ``max_preview_kl`` = step_ratio × min(H₀, b / budget_ratio), the largest KL
            (nats per token) one optimizer step may move the policy, > 0 (default 0.001); None:
            no step limit.
        on_nonfinite: "raise" or "skip" a NaN/inf measurement.
    """

    _record = BudgetKLFullState

    def __init__(
        self,
        budget: float | None = None,
        budget_ratio: float = 0.35,
        min_budget: float = 0.01,
        setpoint: float = 0.75,
        max_entropy_drop: float | None = 0.2,
        kp: float = 2.0,
        ki: float = 0.05,
        p_decay: float = 0.2,
        max_coef: float = 10.0,
        step_ratio: float | None = 0.001,
        on_nonfinite: str = "raise",
    ) -> None:
        super().__init__(on_nonfinite)
        self.budget = None if budget is None else positive("budget", budget)
        self.budget_ratio = positive("budget_ratio", budget_ratio)
        if self.budget_ratio > 10.0:
            raise ValueError(f"budget_ratio must be <= 10, got {budget_ratio!r}")
        self.min_budget = positive("min_budget", min_budget)
        self.setpoint = positive("setpoint", setpoint)
        if self.setpoint > 1.0:
            raise ValueError(f"setpoint must be <= 1, got {setpoint!r}")
        self.max_entropy_drop = (
            None if max_entropy_drop is None else positive("max_entropy_drop", max_entropy_drop)
        )
        if self.max_entropy_drop is not None and self.max_entropy_drop > 1.0:
            raise ValueError(f"max_entropy_drop must be <= 1, got {max_entropy_drop!r}")
        self.kp = non_negative("kp", kp)
        self.ki = positive("ki", ki)
        self.p_decay = check_decay("p_decay", p_decay)
        self.max_coef = positive("max_coef", max_coef)
        self.step_ratio = None if step_ratio is None else positive("step_ratio", step_ratio)
        self._error_ema = EMA(self.p_decay)
        initial = BudgetKLState(budget=self.budget or 0.0, coef=0.0, integral=0.0)
        self._initial = BudgetKLFullState(initial, EMAState())
        self.reset()

    def update(
        self,
        *,
        kl: float,
        entropy: float | None = None,
        reward: float | None = None,
        n_steps: int | None = None,
        tokens_per_sequence: float | None = None,
    ) -> BudgetDecision:
        """One update per rollout batch with the batch KL and entropy per token (the first
        entropy sets H₀; without a given ``budget`` the first update must have it)."""
        _batch_shape(n_steps, tokens_per_sequence)
        m = self._measurements("kl", kl=kl, entropy=entropy, reward=reward)
        if m is None:
            return self._skip()
        s = self._state
        c = s.controller
        h = m["entropy"]
        h0 = c.initial_entropy if c.initial_entropy is not None else h
        budget = c.budget
        if budget == 0.0:
            if h0 is None:
                raise ValueError(
                    "the first update needs the entropy to set the budget (budget_ratio × "
                    "entropy), got None; pass entropy= or construct with budget="
                )
            budget = max(self.budget_ratio * h0, self.min_budget)
        error = m["kl"] / (self.setpoint * budget) - 1.0
        if self.max_entropy_drop is not None and h is not None and h0 is not None and h0 > 0.0:
            error = max(error, (1.0 - h / h0) / self.max_entropy_drop - 1.0)
        gain = self._gain(budget, h0)
        integral = clamp(c.integral + error, 0.0, self.max_coef / (gain * self.ki))
        error_ema, proportional = self._error_ema._step(s.error_ema, error)
        coef = clamp(gain * (self.kp * proportional + self.ki * integral), 0.0, self.max_coef)
        if not all_finite(error, integral, proportional, coef):
            raise ValueError(
                f"kl {m['kl']!r} / entropy {h!r} overflow the budget controller's state"
            )
        controller = BudgetKLState(budget, coef, integral, proportional, h0, c.step + 1, c.skipped)
        self._state = BudgetKLFullState(controller, error_ema)
        return self.decision

    @property
    def decision(self) -> BudgetDecision:
        """The current decision (before the first entropy is measured: no step limit)."""
        c = self._state.controller
        h0, limit = c.initial_entropy, float("inf")
        if self.step_ratio is not None and h0 is not None and h0 > 0.0 and c.budget > 0.0:
            limit = self.step_ratio * min(h0, c.budget / self.budget_ratio)
        fields = {
            "coef": c.coef,
            "budget": c.budget,
            "max_preview_kl": limit,
            "step": c.step,
            "skipped": c.skipped,
        }
        return _construct(BudgetDecision, fields)

    @property
    def coef(self) -> float:
        return self._state.controller.coef

    def _gain(self, budget: float, initial_entropy: float | None) -> float:
        """g: how much more β a budget tighter than the derived one needs (1 without H₀)."""
        if initial_entropy is None or budget <= 0.0:
            return 1.0
        return float((max(self.budget_ratio * initial_entropy, self.min_budget) / budget) ** 0.5)

    def _skip(self) -> BudgetDecision:
        s = self._state
        self._state = s._replace(controller=s.controller._replace(skipped=s.controller.skipped + 1))
        return self.decision

    def _config(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "budget_ratio": self.budget_ratio,
            "min_budget": self.min_budget,
            "setpoint": self.setpoint,
            "max_entropy_drop": self.max_entropy_drop,
            "kp": self.kp,
            "ki": self.ki,
            "p_decay": self.p_decay,
            "max_coef": self.max_coef,
            "step_ratio": self.step_ratio,
            "on_nonfinite": self.on_nonfinite,
        }

    def _check_state(self, state: BudgetKLFullState, owner: str) -> None:
        c = state.controller
        h0 = c.initial_entropy
        if h0 is not None:  # the first accepted update's entropy, as update checked it
            require(
                0.0 <= h0 <= MAX_MEASUREMENT,
                owner,
                "initial_entropy",
                f"lie in [0, {MAX_MEASUREMENT:g}] (an entropy in nats per token)",
                h0,
            )
            require(c.step > 0, owner, "initial_entropy", "be null before the first update", h0)
        # The budget is given, or derived from H₀ by the first update and fixed from then on:
        # one that disagrees with H₀ would be held while the step limit and gain follow H₀.
        if self.budget is not None:
            require(c.budget == self.budget, owner, "budget", f"equal {self.budget!r}", c.budget)
        elif c.step == 0:
            require(
                c.budget == 0.0,
                owner,
                "budget",
                "be 0 before the first update derives it",
                c.budget,
            )
        elif h0 is None:
            require(
                False,
                owner,
                "initial_entropy",
                "be set after an update (it derives the budget)",
                h0,
            )
        else:
            derived = max(self.budget_ratio * h0, self.min_budget)
            require(
                c.budget == derived,
                owner,
                "budget",
                f"equal max(budget_ratio · initial_entropy, min_budget) = {derived!r} for "
                f"initial_entropy {h0!r}",
                c.budget,
            )
        gain = self._gain(c.budget, h0)
        # The gain follows from the budget and H₀: a bound or a β that disagrees names both.
        of = f"gain {gain!r} of budget {c.budget!r} and initial_entropy {h0!r}"
        most = self.max_coef / (gain * self.ki)
        require(
            0.0 <= c.integral <= most,
            owner,
            "integral",
            f"lie in [0, max_coef / (gain · ki) = {most!r}] ({of})",
            c.integral,
        )
        expected = clamp(
            gain * (self.kp * c.proportional + self.ki * c.integral), 0.0, self.max_coef
        )
        require(
            c.coef == expected,
            owner,
            "coef",
            f"be clip(gain · (kp·proportional + ki·integral), 0, max_coef) = {expected!r} ({of})",
            c.coef,
        )
        check_ema_state(state.error_ema, f"{owner}.error_ema")
        require(state.error_ema.seen == c.step, owner, "error_ema.count", "equal step", c.step)
