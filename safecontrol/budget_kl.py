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
    β_t = clip(g · (kp · P_t + ki · I_t), min_coef, max_coef)
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

Two further mechanisms are off by default, each documented beside its arithmetic: the
**steered budget** (``budget_growth``: the budget grows while the proxy still pays for KL,
``safecontrol.budget_steering``) and the **proxy hold** (``hold_window``: the policy is held once
the proxy stops rising, ``safecontrol.proxy_hold``). Without them every decision is as above,
and neither enters the state dict (the fixed budget's layout, which its checkpoints have).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._state import require
from ._validation import MAX_MEASUREMENT, all_finite, clamp, non_negative, positive, positive_int
from ._validation import decay as check_decay
from .budget_steering import BudgetSteering, BudgetSteeringState
from .classic import CoefControllerBase, _batch_shape
from .decision import BudgetDecision, _construct
from .filters import EMA, EMAState, check_ema_state
from .proxy_hold import ProxyHold, ProxyHoldState

HELD_KL_RATIO = 1e-8
"""A held policy's ``max_preview_kl`` / the budget (``safecontrol.proxy_hold``)."""


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
    steering: BudgetSteeringState | None = None
    """The gain window of a steered budget (None without ``budget_growth``)."""
    hold: ProxyHoldState | None = None
    """The proxy's window and the hold (None without ``hold_window``)."""


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
        min_coef: the smallest β, in [0, max_coef] (default 0: below the budget the policy
            learns unhindered); a floor penalises the KL from the first step, as a fixed β does,
            and the budget still raises β above it.
        step_ratio: ``max_preview_kl`` = step_ratio × min(H₀, b / budget_ratio), the largest KL
            (nats per token) one optimizer step may move the policy, > 0 (default 0.001); None:
            no step limit.
        on_nonfinite: "raise" or "skip" a NaN/inf measurement.
        budget_growth: None (default): a fixed budget. γ in (0, 1]: the budget grows by a factor
            1 + γ on an update where KL is at its set point and the proxy still pays for KL
            (see ``safecontrol.budget_steering``; every update then needs ``reward``); a given
            ``budget`` is its start.
        max_budget_ratio: a steered budget stays within max_budget_ratio × H₀ (or its start,
            if larger), ≥ budget_ratio (default 1.0).
        gain_window: the updates over which the proxy's gain per nat of KL is measured, ≥ 2
            (default 10).
        gain_floor: a steered budget grows while the gain keeps at least gain_floor × the first
            window's gain, ≥ 0 (default 0.5).
        hold_window: None (default): no hold. w ≥ 2: hold the policy (``max_preview_kl``
            ``HELD_KL_RATIO`` × the budget) from the first update at which the newer half of
            the last w batches' mean proxy reward is no higher than the older half (see
            ``safecontrol.proxy_hold``; every update then needs ``reward``).
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
        min_coef: float = 0.0,
        step_ratio: float | None = 0.001,
        on_nonfinite: str = "raise",
        budget_growth: float | None = None,
        max_budget_ratio: float = 1.0,
        gain_window: int = 10,
        gain_floor: float = 0.5,
        hold_window: int | None = None,
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
        self.min_coef = non_negative("min_coef", min_coef)
        if self.min_coef > self.max_coef:
            raise ValueError(f"min_coef must be <= max_coef {self.max_coef!r}, got {min_coef!r}")
        self.step_ratio = None if step_ratio is None else positive("step_ratio", step_ratio)
        self.budget_growth = (
            None if budget_growth is None else positive("budget_growth", budget_growth)
        )
        if self.budget_growth is not None and self.budget_growth > 1.0:
            raise ValueError(f"budget_growth must be <= 1, got {budget_growth!r}")
        self.max_budget_ratio = positive("max_budget_ratio", max_budget_ratio)
        if self.budget_growth is not None and self.max_budget_ratio < self.budget_ratio:
            raise ValueError(
                f"max_budget_ratio must be >= budget_ratio {self.budget_ratio!r} (the budget "
                f"only grows), got {max_budget_ratio!r}"
            )
        self.gain_window = positive_int("gain_window", gain_window)
        if self.gain_window < 2:
            raise ValueError(
                f"gain_window must be >= 2 (the gain compares the window's older and newer "
                f"halves), got {gain_window!r}"
            )
        self.gain_floor = non_negative("gain_floor", gain_floor)
        self.hold_window = None if hold_window is None else positive_int("hold_window", hold_window)
        if self.hold_window is not None and self.hold_window < 2:
            raise ValueError(
                f"hold_window must be >= 2 (the hold compares the window's older and newer "
                f"halves), got {hold_window!r}"
            )
        self._hold = None if self.hold_window is None else ProxyHold(self.hold_window)
        self._steering = (
            None
            if self.budget_growth is None
            else BudgetSteering(self.budget_growth, self.gain_window, self.gain_floor)
        )
        self._error_ema = EMA(self.p_decay)
        initial = BudgetKLState(budget=self.budget or 0.0, coef=self.min_coef, integral=0.0)
        steering = None if self._steering is None else BudgetSteeringState()
        hold = None if self._hold is None else ProxyHoldState()
        self._initial = BudgetKLFullState(initial, EMAState(), steering, hold)
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
        entropy sets H₀; without a given ``budget`` the first update must have it) and, for a
        steered budget or a hold, the proxy's batch-mean reward."""
        _batch_shape(n_steps, tokens_per_sequence)
        m = self._measurements("kl", kl=kl, entropy=entropy, reward=reward)
        if m is None:
            return self._skip()
        if m["reward"] is None and self._steering is not None:
            raise ValueError(
                "budget_growth steers the budget by the proxy's gain per nat of KL: every "
                "update needs the batch's mean reward, got reward None; pass reward="
            )
        if m["reward"] is None and self._hold is not None:
            raise ValueError(
                "hold_window holds the policy once the proxy stops rising: every update needs "
                "the batch's mean reward, got reward None; pass reward="
            )
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
        steering = s.steering
        if self._steering is not None:
            assert steering is not None  # a record whenever budget_growth is set (load checks)
            most = self._largest_budget(self._start_budget(h0), h0)
            steering, budget = self._steering.step(
                steering, m["kl"], m["reward"], budget, self.setpoint * budget, most
            )
        error = m["kl"] / (self.setpoint * budget) - 1.0
        if self.max_entropy_drop is not None and h is not None and h0 is not None and h0 > 0.0:
            error = max(error, (1.0 - h / h0) / self.max_entropy_drop - 1.0)
        gain = self._gain(budget, h0)
        integral = clamp(c.integral + error, 0.0, self.max_coef / (gain * self.ki))
        error_ema, proportional = self._error_ema._step(s.error_ema, error)
        coef = clamp(
            gain * (self.kp * proportional + self.ki * integral), self.min_coef, self.max_coef
        )
        if not all_finite(error, integral, proportional, coef):
            raise ValueError(
                f"kl {m['kl']!r} / entropy {h!r} overflow the budget controller's state"
            )
        hold = s.hold
        if self._hold is not None:
            assert hold is not None  # a record whenever hold_window is set (load checks)
            hold = self._hold.step(hold, m["reward"], c.step + 1)
        controller = BudgetKLState(budget, coef, integral, proportional, h0, c.step + 1, c.skipped)
        self._state = BudgetKLFullState(controller, error_ema, steering, hold)
        return self.decision

    @property
    def decision(self) -> BudgetDecision:
        """The current decision (before the first entropy is measured: no step limit; held:
        ``HELD_KL_RATIO`` × the budget)."""
        c, hold = self._state.controller, self._state.hold
        h0, limit = c.initial_entropy, float("inf")
        if hold is not None and hold.held_at:  # a hold comes after updates: the budget exists
            limit = HELD_KL_RATIO * c.budget
        elif self.step_ratio is not None and h0 is not None and h0 > 0.0 and c.budget > 0.0:
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

    def _start_budget(self, initial_entropy: float | None) -> float:
        """b₀: the given budget, or the one H₀ derives (which must then be known)."""
        if self.budget is not None:
            return self.budget
        assert initial_entropy is not None, "a derived budget needs H₀"
        return max(self.budget_ratio * initial_entropy, self.min_budget)

    def _largest_budget(self, start: float, initial_entropy: float | None) -> float:
        """The most a steered budget may grow to: max_budget_ratio × H₀, or its start if that is
        larger (and its start while H₀ is unknown: no scale to grow to)."""
        if initial_entropy is None:
            return start
        return max(start, self.max_budget_ratio * initial_entropy)

    def _skip(self) -> BudgetDecision:
        s = self._state
        self._state = s._replace(controller=s.controller._replace(skipped=s.controller.skipped + 1))
        return self.decision

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
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
        if self.min_coef > 0.0:  # left out at 0 like the steering: older checkpoints load
            config["min_coef"] = self.min_coef
        # Without growth the steering settings act on nothing; leaving them out keeps the fixed
        # budget's config, so its checkpoints (saved before they existed) load unchanged.
        if self.budget_growth is not None:
            config["budget_growth"] = self.budget_growth
            config["max_budget_ratio"] = self.max_budget_ratio
            config["gain_window"] = self.gain_window
            config["gain_floor"] = self.gain_floor
        if self.hold_window is not None:  # left out when off, like the steering
            config["hold_window"] = self.hold_window
        return config

    def state_dict(self) -> dict[str, Any]:
        """As ``Stateful.state_dict``; without ``budget_growth`` the state has no ``steering``
        entry and without ``hold_window`` no ``hold`` (the fixed budget's layout, which its
        earlier checkpoints have)."""
        out = super().state_dict()
        if self._steering is None:
            del out["state"]["steering"]
        if self._hold is None:
            del out["state"]["hold"]
        return out

    def _upgrade_state_dict(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """A state without ``steering`` or ``hold`` (see ``state_dict``) has none."""
        state = state_dict.get("state")
        if isinstance(state, dict):
            state.setdefault("steering", None)
            state.setdefault("hold", None)
        return state_dict

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
        # A steered budget starts there and may only have grown, up to its largest.
        start = None
        if self.budget is None and c.step == 0:
            require(
                c.budget == 0.0,
                owner,
                "budget",
                "be 0 before the first update derives it",
                c.budget,
            )
        elif self.budget is None and h0 is None:
            require(
                False,
                owner,
                "initial_entropy",
                "be set after an update (it derives the budget)",
                h0,
            )
        else:
            start = self._start_budget(h0)
            self._check_budget(c.budget, start, h0, owner)
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
            gain * (self.kp * c.proportional + self.ki * c.integral), self.min_coef, self.max_coef
        )
        require(
            c.coef == expected,
            owner,
            "coef",
            f"be clip(gain · (kp·proportional + ki·integral), min_coef, max_coef) = {expected!r} "
            f"({of})",
            c.coef,
        )
        check_ema_state(state.error_ema, f"{owner}.error_ema")
        require(state.error_ema.seen == c.step, owner, "error_ema.count", "equal step", c.step)
        if self._steering is None:
            require(
                state.steering is None,
                owner,
                "steering",
                "be null without budget_growth",
                state.steering,
            )
        else:
            grown = start is not None and c.budget > start
            set_point = None if start is None else self.setpoint * start
            self._steering.check(state.steering, owner, c.step, grown, set_point)
        if self._hold is None:
            require(state.hold is None, owner, "hold", "be null without hold_window", state.hold)
        else:
            self._hold.check(state.hold, owner, c.step)

    def _check_budget(
        self, budget: float, start: float, initial_entropy: float | None, owner: str
    ) -> None:
        """The budget of a loaded state, once it exists: its start (fixed), or within
        [start, largest] (steered)."""
        if self._steering is not None:
            most = self._largest_budget(start, initial_entropy)
            require(
                start <= budget <= most,
                owner,
                "budget",
                f"lie in [{start!r}, {most!r}] (a steered budget grows from its start up to "
                f"max(start, max_budget_ratio · initial_entropy) for initial_entropy "
                f"{initial_entropy!r})",
                budget,
            )
        elif self.budget is not None:
            require(budget == self.budget, owner, "budget", f"equal {self.budget!r}", budget)
        else:
            require(
                budget == start,
                owner,
                "budget",
                f"equal max(budget_ratio · initial_entropy, min_budget) = {start!r} for "
                f"initial_entropy {initial_entropy!r}",
                budget,
            )
