"""A PID-controlled Lagrange multiplier used as the KL coefficient (SPEC §3).

Stooke, Achiam & Abbeel 2020, "Responsive Safety in Reinforcement Learning by PID Lagrangian
Methods", Algorithm 2, with the KL as the constrained cost J and the KL budget as the limit d::

    Δ = J − d
    P = EMA_p(Δ)                              (smoothed proportional term, decay p_decay)
    I ← max(0, I + Δ)                         (integral, never negative)
    D = max(0, EMA_d(J) − EMA_d(J)_prev)      (rise of the smoothed cost only, decay d_decay)
    λ = max(0, Kp·P + Ki·I + Kd·D)

The integral alone is the classic Lagrangian (gradient ascent on λ); P damps its oscillation and D
reacts to a cost that is rising before it crosses the limit.

Choices where the paper leaves room: both EMAs are bias-corrected (``safecontrol.filters.EMA``),
so the first P equals the first Δ rather than a zero-started fraction of it, and D is 0 on the first
update (there is no previous smoothed cost); the derivative delay is one update. Before any update
λ = max(0, Ki·init_integral). An update whose λ, I, P or D would overflow (a KL near the largest
float with large gains) is rejected whole, naming ``kl``, so the state stays finite.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._state import require
from ._validation import all_finite, non_negative, positive
from ._validation import decay as check_decay
from .classic import CoefControllerBase, _batch_shape
from .decision import CoefDecision, _construct
from .filters import EMA, EMAState, check_ema_state


class PIDLagrangianState(NamedTuple):
    coef: float
    """λ, the KL coefficient to use from now on."""
    integral: float
    """I, the accumulated constraint violation (≥ 0), before Ki."""
    proportional: float = 0.0
    """P, the smoothed violation EMA_p(Δ) of the last update, before Kp."""
    derivative: float = 0.0
    """D, the last rise of the smoothed KL (≥ 0), before Kd."""
    step: int = 0
    skipped: int = 0


class PIDLagrangianKLState(NamedTuple):
    controller: PIDLagrangianState
    error_ema: EMAState
    """EMA_p of the violation Δ (P is its bias-corrected value)."""
    kl_ema: EMAState
    """EMA_d of the KL (D is the rise of its bias-corrected value)."""


class PIDLagrangianKL(CoefControllerBase[PIDLagrangianKLState]):
    """KL coefficient λ ≥ 0 from a PID Lagrangian on the KL constraint KL ≤ target.

    Args:
        target: the KL budget d > 0 (default 0.3 nats per token, SAFE's base threshold).
        kp: proportional gain ≥ 0 (default 0.5).
        ki: integral gain ≥ 0 (default 0.05).
        kd: derivative gain ≥ 0 (default 0.1).
        p_decay: EMA decay of the proportional term, in (0, 1) (default 0.9).
        d_decay: EMA decay of the KL used by the derivative term, in (0, 1) (default 0.9).
        init_integral: starting integral I ≥ 0 (default 0), so the initial λ is Ki·init_integral.
        on_nonfinite: "raise" or "skip" a NaN/inf measurement.

    The defaults are ours (the paper tunes per task): with a per-token KL of a few tenths, a
    sustained excess of 0.1 adds 0.005 to λ per update through the integral, and the P and D
    terms respond within about ten updates.
    """

    _record = PIDLagrangianKLState

    def __init__(
        self,
        target: float = 0.3,
        kp: float = 0.5,
        ki: float = 0.05,
        kd: float = 0.1,
        p_decay: float = 0.9,
        d_decay: float = 0.9,
        init_integral: float = 0.0,
        on_nonfinite: str = "raise",
    ) -> None:
        super().__init__(on_nonfinite)
        self.target = positive("target", target)
        self.kp = non_negative("kp", kp)
        self.ki = non_negative("ki", ki)
        self.kd = non_negative("kd", kd)
        self.p_decay = check_decay("p_decay", p_decay)
        self.d_decay = check_decay("d_decay", d_decay)
        self.init_integral = non_negative("init_integral", init_integral)
        # Transitions; their records live in this controller's.
        self._error_ema = EMA(self.p_decay)
        self._kl_ema = EMA(self.d_decay)
        initial = PIDLagrangianState(
            coef=max(0.0, self.ki * self.init_integral), integral=self.init_integral
        )
        self._initial = PIDLagrangianKLState(initial, EMAState(), EMAState())
        self.reset()

    def update(
        self,
        *,
        kl: float,
        entropy: float | None = None,
        reward: float | None = None,
        n_steps: int | None = None,
        tokens_per_sequence: float | None = None,
    ) -> CoefDecision:
        """One update per rollout batch with the batch KL J (in the unit of ``target``).

        ``entropy``, ``reward``, ``n_steps`` and ``tokens_per_sequence`` are unused and only
        validated.
        """
        _batch_shape(n_steps, tokens_per_sequence)
        m = self._measurements("kl", kl=kl, entropy=entropy, reward=reward)
        if m is None:
            return self._skip()
        j: float = m["kl"]
        s = self._state
        c = s.controller
        violation = j - self.target
        integral = max(0.0, c.integral + violation)
        had_previous = s.kl_ema.seen > 0
        previous = self._kl_ema._value(s.kl_ema)
        error_ema, proportional = self._error_ema._step(s.error_ema, violation)
        kl_ema, smoothed = self._kl_ema._step(s.kl_ema, j)
        derivative = max(0.0, smoothed - previous) if had_previous else 0.0
        coef = max(0.0, self.kp * proportional + self.ki * integral + self.kd * derivative)
        if not all_finite(coef, integral, proportional, smoothed, derivative):
            raise ValueError(f"kl {j!r} overflows the PID Lagrangian's state (λ, I, P or D)")
        controller = PIDLagrangianState(
            coef, integral, proportional, derivative, c.step + 1, c.skipped
        )
        self._state = PIDLagrangianKLState(controller, error_ema, kl_ema)
        return self.decision

    @property
    def decision(self) -> CoefDecision:
        """The current decision (before any update: λ = max(0, Ki·init_integral), step 0)."""
        c = self._state.controller
        return _construct(CoefDecision, {"coef": c.coef, "step": c.step, "skipped": c.skipped})

    @property
    def coef(self) -> float:
        return self._state.controller.coef

    def _skip(self) -> CoefDecision:
        s = self._state
        controller = s.controller._replace(skipped=s.controller.skipped + 1)
        self._state = s._replace(controller=controller)
        return self.decision

    @property
    def components(self) -> tuple[float, float, float]:
        """(Kp·P, Ki·I, Kd·D) of the last update; λ is their sum clipped at 0."""
        c = self._state.controller
        return (self.kp * c.proportional, self.ki * c.integral, self.kd * c.derivative)

    def _config(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kp": self.kp,
            "ki": self.ki,
            "kd": self.kd,
            "p_decay": self.p_decay,
            "d_decay": self.d_decay,
            "init_integral": self.init_integral,
            "on_nonfinite": self.on_nonfinite,
        }

    def _check_state(self, state: PIDLagrangianKLState, owner: str) -> None:
        record = state.controller
        for field in ("integral", "derivative"):
            value = getattr(record, field)
            require(value >= 0.0, owner, field, "be >= 0", value)
        p, i, d = record.proportional, record.integral, record.derivative
        expected = max(0.0, self.kp * p + self.ki * i + self.kd * d)
        require(
            record.coef == expected,
            owner,
            "coef",
            f"be max(0, kp·proportional + ki·integral + kd·derivative) = {expected!r}",
            record.coef,
        )
        for label, ema in (("error_ema", state.error_ema), ("kl_ema", state.kl_ema)):
            check_ema_state(ema, f"{owner}.{label}")
            require(ema.seen == record.step, owner, f"{label}.count", "equal step", ema.seen)
