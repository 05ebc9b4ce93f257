"""The classic KL-coefficient controllers we compare SAFE against (SPEC §3).

- ``FixedKL``: a constant β.
- ``AdaptiveKL``: Ziegler et al. 2019 ("Fine-Tuning Language Models from Human Preferences"), the
  old TRL ``AdaptiveKLController``: e = clip(KL/target − 1, −0.2, 0.2); β ← β·(1 + e·n/horizon).
- ``PPOAdaptiveKL``: Schulman et al. 2017 ("Proximal Policy Optimization Algorithms", §4):
  β ← β/2 if d < d_targ/1.5, β ← 2β if d > 1.5·d_targ.

All share one interface: ``update(*, kl, entropy=None, reward=None, n_steps=None)`` once per
rollout batch returns a ``CoefDecision`` whose ``coef`` is the β to use from now on. Measurements
a controller does not use are still accepted (so controllers are interchangeable) and still
checked to be finite and of magnitude at most ``MAX_MEASUREMENT``. Every input is checked before
the state changes: a rejected update changes nothing. With ``on_nonfinite="skip"`` a NaN/inf
measurement leaves the state alone except for the skip counter, and the previous decision is
returned with ``skipped`` incremented.

The multiplicative controllers (``AdaptiveKL``, ``PPOAdaptiveKL``) keep β inside ``coef_limits``
(default ``DEFAULT_COEF_LIMITS``; Ziegler's β is clamped into them, the PPO paper's skips a
halving or doubling that would leave them): unbounded, a run of low KL halves β towards 0, which is
absorbing (0·factor = 0: the penalty never returns), and a run of high KL doubles it to inf.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple, TypeVar

from ._state import Stateful, require
from ._validation import (
    MAX_MEASUREMENT,
    NONFINITE_POLICIES,
    _show,
    as_float,
    clamp,
    finite,
    non_negative,
    one_of,
    positive,
)
from ._validation import positive_int as check_positive_int
from .decision import CoefDecision, _construct

ZIEGLER_CLIP = 0.2
"""Bound on Ziegler's proportional error: β changes by at most 20% per ``horizon`` episodes."""

DEFAULT_COEF_LIMITS = (1e-6, 1e6)
"""Default (lower, upper) bounds on the β of ``AdaptiveKL`` and ``PPOAdaptiveKL``.

Twelve orders of magnitude either side of the usual β ≈ 0.01–1, so no run that worked before is
touched. The lower bound is a penalty that no longer matters (1e-6 · a KL of tens of nats is far
below any reward), yet from it PPO's doubling returns to β = 1 in 20 updates; the upper bound is a
penalty that already dominates every reward, and keeps β·KL finite."""


class CoefState(NamedTuple):
    coef: float
    """The coefficient to use from now on."""
    step: int = 0
    """Accepted updates."""
    skipped: int = 0
    """Updates skipped for a non-finite measurement."""


def _greater_than_one(name: str, value: Any) -> float:
    x = finite(name, value)
    if x <= 1.0:
        raise ValueError(f"{name} must be > 1, got {x!r}")
    return x


R = TypeVar("R")


class CoefControllerBase(Stateful[R]):
    """Shared machinery of the coefficient controllers: measurement checks and the skip policy.

    Subclasses set ``self._initial`` (their state record at step 0) and call ``reset()``.
    """

    kl_unit: ClassVar[str] = "per_token"
    """The unit of the controller's KL settings (``safecontrol.contract``)."""
    _initial: R

    def __init__(self, on_nonfinite: str) -> None:
        self.on_nonfinite = one_of("on_nonfinite", on_nonfinite, NONFINITE_POLICIES)

    def _initial_state(self) -> R:
        return self._initial

    def _measurements(self, required: str, **values: Any) -> dict[str, Any] | None:
        """The measurements as floats (optional ones may stay ``None``), or ``None`` to skip.

        A missing ``required`` measurement or a value that is not a number always raises; NaN and
        inf raise or skip according to ``on_nonfinite``.
        """
        if values[required] is None:
            raise ValueError(f"{required} is required, got None")
        out: dict[str, float | None] = {
            name: None if v is None else as_float(name, v) for name, v in values.items()
        }
        skip = False
        for name, x in out.items():
            if x is None:
                continue
            if not math.isfinite(x):
                if self.on_nonfinite == "raise":
                    raise ValueError(f"{name} must be finite, got {x!r}")
                skip = True
            elif not -MAX_MEASUREMENT <= x <= MAX_MEASUREMENT:
                raise ValueError(f"{name} must have magnitude <= {MAX_MEASUREMENT:g}, got {x!r}")
            elif name == "entropy" and x < 0.0:
                raise ValueError(f"entropy must be >= 0 (nats), got {x!r}")
        return None if skip else out


class CoefController(CoefControllerBase[CoefState]):
    """A coefficient controller whose whole state is one ``CoefState``."""

    _record = CoefState

    @property
    def decision(self) -> CoefDecision:
        """The current decision (before any update: the initial coefficient, step 0)."""
        s = self._state
        return _construct(CoefDecision, {"coef": s.coef, "step": s.step, "skipped": s.skipped})

    @property
    def coef(self) -> float:
        return self._state.coef

    def _skip(self) -> CoefDecision:
        self._state = self._state._replace(skipped=self._state.skipped + 1)
        return self.decision

    def _accept(self, **changes: Any) -> CoefDecision:
        self._state = self._state._replace(step=self._state.step + 1, **changes)
        return self.decision

    def _check_state(self, record: CoefState, owner: str) -> None:
        require(record.coef >= 0.0, owner, "coef", "be >= 0", record.coef)


class _BoundedCoef(CoefController):
    """A ``CoefController`` whose β is kept inside ``coef_limits``."""

    coef_limits: tuple[float, float]

    def _check_limits(self, coef_limits: Any, init_coef: Any) -> float:
        """Validate and store ``coef_limits``; returns ``init_coef``, which must lie inside."""
        if isinstance(coef_limits, str | bytes | dict) or not hasattr(coef_limits, "__iter__"):
            raise ValueError(f"coef_limits must be a (lower, upper) pair, got {_show(coef_limits)}")
        try:
            lower, upper = coef_limits
        except (TypeError, ValueError):
            raise ValueError(
                f"coef_limits must be a (lower, upper) pair, got {_show(coef_limits)}"
            ) from None
        lo, hi = positive("coef_limits[0]", lower), positive("coef_limits[1]", upper)
        if lo > hi:
            raise ValueError(f"coef_limits: lower limit {lo!r} is greater than upper limit {hi!r}")
        self.coef_limits = (lo, hi)
        beta = finite("init_coef", init_coef)
        if not lo <= beta <= hi:
            raise ValueError(f"init_coef must lie in coef_limits [{lo!r}, {hi!r}], got {beta!r}")
        return beta

    def _check_state(self, record: CoefState, owner: str) -> None:
        lo, hi = self.coef_limits
        require(lo <= record.coef <= hi, owner, "coef", f"lie in [{lo!r}, {hi!r}]", record.coef)

    def _upgrade_state_dict(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """State dicts saved before ``coef_limits`` existed (no such config key) were saved by a
        controller with today's default limits, unbounded then; they load into one with the
        default limits, their β clamped into them (a collapsed β = 0 resumes at the lower limit)."""
        config, state = state_dict.get("config"), state_dict.get("state")
        if isinstance(config, dict) and "coef_limits" not in config:
            config["coef_limits"] = list(DEFAULT_COEF_LIMITS)
            if isinstance(state, dict):
                coef = state.get("coef")
                if type(coef) is float and not math.isnan(coef):
                    state["coef"] = clamp(coef, *DEFAULT_COEF_LIMITS)
        return state_dict


def _batch_shape(n_steps: Any, tokens_per_sequence: Any) -> tuple[int | None, float | None]:
    """The batch's episodes and mean response length, validated (``None`` when not given)."""
    n = None if n_steps is None else check_positive_int("n_steps", n_steps)
    length = (
        None
        if tokens_per_sequence is None
        else positive("tokens_per_sequence", tokens_per_sequence)
    )
    return n, length


class FixedKL(CoefController):
    """A constant KL coefficient β (the baseline).

    Args:
        coef: β ≥ 0.
        on_nonfinite: "raise" or "skip" a NaN/inf measurement.
    """

    def __init__(self, coef: float, on_nonfinite: str = "raise") -> None:
        super().__init__(on_nonfinite)
        self._coef = non_negative("coef", coef)
        self._initial = CoefState(coef=self._coef)
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
        """Count the update; β never changes. All arguments are only validated."""
        _batch_shape(n_steps, tokens_per_sequence)
        if self._measurements("kl", kl=kl, entropy=entropy, reward=reward) is None:
            return self._skip()
        return self._accept()

    def _config(self) -> dict[str, Any]:
        return {"coef": self._coef, "on_nonfinite": self.on_nonfinite}

    def _check_state(self, record: CoefState, owner: str) -> None:
        require(record.coef == self._coef, owner, "coef", f"be {self._coef!r}", record.coef)


class AdaptiveKL(_BoundedCoef):
    """Ziegler et al. 2019's proportional KL controller (old TRL ``AdaptiveKLController``), on
    the per-sequence KL = kl per token × tokens_per_sequence::

        e = clip(KL_seq / target − 1, −0.2, 0.2)
        β ← β · (1 + e · n_steps / horizon)

    Args:
        init_coef: β0, inside ``coef_limits`` (default 0.2).
        target: target KL per sequence > 0, in nats (default 6.0, Ziegler's and TRL's).
        horizon: episodes over which β may change by up to 20% (> 0, default 10000).
        on_nonfinite: "raise" or "skip" a NaN/inf measurement.
        coef_limits: (lower, upper), 0 < lower ≤ upper < inf: β is clamped into them after every
            update (default ``DEFAULT_COEF_LIMITS`` = (1e-6, 1e6)).
    """

    kl_unit: ClassVar[str] = "per_sequence"

    def __init__(
        self,
        init_coef: float = 0.2,
        target: float = 6.0,
        horizon: float = 10000,
        on_nonfinite: str = "raise",
        coef_limits: tuple[float, float] = DEFAULT_COEF_LIMITS,
    ) -> None:
        super().__init__(on_nonfinite)
        self.init_coef = self._check_limits(coef_limits, init_coef)
        self.target = positive("target", target)
        self.horizon = positive("horizon", horizon)
        self._initial = CoefState(coef=self.init_coef)
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
        """One update per PPO step.

        Args:
            kl: the batch-mean KL per token (it may be negative with k1; the error is clipped
                anyway); × ``tokens_per_sequence`` it is the per-sequence KL of ``target``.
            n_steps: the number of episodes (sequences) in the batch, a positive integer below
                5·horizon (larger steps could turn β negative); required.
            tokens_per_sequence: the batch-mean response length in tokens; required.
            entropy, reward: unused; validated only.
        """
        n, length = _batch_shape(n_steps, tokens_per_sequence)
        if n is None or length is None:
            missing = "n_steps" if n is None else "tokens_per_sequence"
            raise ValueError(f"{missing} is required by AdaptiveKL (per-sequence KL), got None")
        if n > 2**53 or n * ZIEGLER_CLIP >= self.horizon:  # (a huge n would overflow the float)
            raise ValueError(
                f"n_steps must be < horizon / {ZIEGLER_CLIP} = {self.horizon / ZIEGLER_CLIP!r} "
                f"so that the coefficient stays positive, got {_show(n)}"
            )
        m = self._measurements("kl", kl=kl, entropy=entropy, reward=reward)
        if m is None:
            return self._skip()
        kl_per_sequence = m["kl"] * length
        error = min(max(kl_per_sequence / self.target - 1.0, -ZIEGLER_CLIP), ZIEGLER_CLIP)
        coef = self._state.coef * (1.0 + error * n / self.horizon)
        return self._accept(coef=clamp(coef, *self.coef_limits))

    def _config(self) -> dict[str, Any]:
        return {
            "init_coef": self.init_coef,
            "target": self.target,
            "horizon": self.horizon,
            "on_nonfinite": self.on_nonfinite,
            "coef_limits": list(self.coef_limits),
        }


class PPOAdaptiveKL(_BoundedCoef):
    """The PPO paper's adaptive KL penalty coefficient (Schulman et al. 2017, §4)::

        β ← β / factor   if d < target / tolerance
        β ← β · factor   if d > target · tolerance

    where d = KL(π_old, π) measured after the policy update. The paper uses tolerance = 1.5 and
    factor = 2.

    Args:
        init_coef: β0, inside ``coef_limits`` (default 1.0).
        target: d_targ > 0 (default 0.01).
        tolerance: > 1 (default 1.5).
        factor: > 1 (default 2.0).
        on_nonfinite: "raise" or "skip" a NaN/inf measurement.
        coef_limits: (lower, upper), 0 < lower ≤ upper < inf (default ``DEFAULT_COEF_LIMITS`` =
            (1e-6, 1e6)): a division or multiplication that would leave them is skipped, so β
            stays on the paper's lattice init_coef·factor^k, inside the limits.
    """

    def __init__(
        self,
        init_coef: float = 1.0,
        target: float = 0.01,
        tolerance: float = 1.5,
        factor: float = 2.0,
        on_nonfinite: str = "raise",
        coef_limits: tuple[float, float] = DEFAULT_COEF_LIMITS,
    ) -> None:
        super().__init__(on_nonfinite)
        self.init_coef = self._check_limits(coef_limits, init_coef)
        self.target = positive("target", target)
        self.tolerance = _greater_than_one("tolerance", tolerance)
        self.factor = _greater_than_one("factor", factor)
        self._initial = CoefState(coef=self.init_coef)
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
        """One update per policy update; ``kl`` is KL(π_old, π) per token. Other arguments are
        validated only."""
        _batch_shape(n_steps, tokens_per_sequence)
        m = self._measurements("kl", kl=kl, entropy=entropy, reward=reward)
        if m is None:
            return self._skip()
        coef = self._state.coef
        lower, upper = self.coef_limits
        if m["kl"] < self.target / self.tolerance:
            smaller = coef / self.factor
            coef = smaller if smaller >= lower else coef
        elif m["kl"] > self.target * self.tolerance:
            larger = coef * self.factor
            coef = larger if larger <= upper else coef
        return self._accept(coef=coef)

    def _config(self) -> dict[str, Any]:
        return {
            "init_coef": self.init_coef,
            "target": self.target,
            "tolerance": self.tolerance,
            "factor": self.factor,
            "on_nonfinite": self.on_nonfinite,
            "coef_limits": list(self.coef_limits),
        }
