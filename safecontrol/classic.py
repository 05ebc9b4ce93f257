"""The classic KL-coefficient controllers we compare SAFE against (SPEC §3).

- ``FixedKL``: a constant β.
- ``AdaptiveKL``: Ziegler et al. 2019 ("Fine-Tuning Language Models from Human Preferences"), the
  old TRL ``AdaptiveKLController``: e = clip(KL/target − 1, −0.2, 0.2); β ← β·(1 + e·n/horizon).
- ``PPOAdaptiveKL``: Schulman et al. 2017 ("Proximal Policy Optimization Algorithms", §4):
  β ← β/2 if d < d_targ/1.5, β ← 2β if d > 1.5·d_targ.

All share one interface: ``update(*, kl, entropy=None, reward=None, n_steps=None)`` once per
rollout batch returns a ``CoefDecision`` whose ``coef`` is the β to use from now on. Measurements
a controller does not use are still accepted (so controllers are interchangeable) and still
checked to be finite. Every input is checked before the state changes: a rejected update changes
nothing. With ``on_nonfinite="skip"`` a NaN/inf measurement leaves the state alone except for the
skip counter, and the previous decision is returned with ``skipped`` incremented.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

from ._state import Stateful, record_from_dict, record_to_dict
from ._validation import NONFINITE_POLICIES, as_float, finite, non_negative, one_of, positive
from ._validation import positive_int as check_positive_int
from .decision import CoefDecision, _construct

ZIEGLER_CLIP = 0.2
"""Bound on Ziegler's proportional error: β changes by at most 20% per ``horizon`` episodes."""


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


class CoefController(Stateful):
    """Shared machinery: the decision, measurement checks, the skip policy and the state dict.

    Subclasses set ``self._initial`` (their state record at step 0) and call ``reset()``. The
    default state handling covers controllers whose whole state is one ``CoefState``-like record
    named by ``_record``.
    """

    _record: ClassVar[type] = CoefState
    _initial: Any
    _state: Any

    def __init__(self, on_nonfinite: str) -> None:
        self.on_nonfinite = one_of("on_nonfinite", on_nonfinite, NONFINITE_POLICIES)

    @property
    def decision(self) -> CoefDecision:
        """The current decision (before any update: the initial coefficient, step 0)."""
        s = self._state
        return _construct(CoefDecision, {"coef": s.coef, "step": s.step, "skipped": s.skipped})

    @property
    def coef(self) -> float:
        return self._state.coef

    def reset(self) -> None:
        """Return to the state right after construction."""
        self._state = self._initial

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
        for name, x in out.items():
            if x is not None and not math.isfinite(x):
                if self.on_nonfinite == "raise":
                    raise ValueError(f"{name} must be finite, got {x!r}")
                return None
        return out

    def _skip(self) -> CoefDecision:
        self._state = self._state._replace(skipped=self._state.skipped + 1)
        return self.decision

    def _accept(self, **changes: Any) -> CoefDecision:
        self._state = self._state._replace(step=self._state.step + 1, **changes)
        return self.decision

    def _get_state(self) -> dict[str, Any]:
        return record_to_dict(self._state)

    def _set_state(self, state: dict[str, Any]) -> None:
        self._state = record_from_dict(self._record, state, type(self).__name__)


def _optional_n_steps(n_steps: Any) -> int | None:
    return None if n_steps is None else check_positive_int("n_steps", n_steps)


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
    ) -> CoefDecision:
        """Count the update; β never changes. All arguments are only validated."""
        _optional_n_steps(n_steps)
        if self._measurements("kl", kl=kl, entropy=entropy, reward=reward) is None:
            return self._skip()
        return self._accept()

    def _config(self) -> dict[str, Any]:
        return {"coef": self._coef, "on_nonfinite": self.on_nonfinite}


class AdaptiveKL(CoefController):
    """Ziegler et al. 2019's proportional KL controller (old TRL ``AdaptiveKLController``)::

        e = clip(kl / target − 1, −0.2, 0.2)
        β ← β · (1 + e · n_steps / horizon)

    Args:
        init_coef: β0 ≥ 0 (default 0.2).
        target: target KL > 0 (default 6.0, in the unit of ``kl``: nats per sequence).
        horizon: episodes over which β may change by up to 20% (> 0, default 10000).
        on_nonfinite: "raise" or "skip" a NaN/inf measurement.
    """

    def __init__(
        self,
        init_coef: float = 0.2,
        target: float = 6.0,
        horizon: float = 10000,
        on_nonfinite: str = "raise",
    ) -> None:
        super().__init__(on_nonfinite)
        self.init_coef = non_negative("init_coef", init_coef)
        self.target = positive("target", target)
        self.horizon = positive("horizon", horizon)
        self._initial = CoefState(coef=self.init_coef)
        self.reset()

    def update(
        self,
        *,
        kl: float,
        n_steps: int,
        entropy: float | None = None,
        reward: float | None = None,
    ) -> CoefDecision:
        """One update per PPO step.

        Args:
            kl: the batch mean of the per-sequence summed k1 estimate, log π − log π_ref (it may
                be negative; the error is clipped anyway).
            n_steps: the number of episodes (sequences) in the batch, a positive integer below
                5·horizon (larger steps could turn β negative).
            entropy, reward: unused; validated only.
        """
        n = check_positive_int("n_steps", n_steps)
        if n * ZIEGLER_CLIP >= self.horizon:
            raise ValueError(
                f"n_steps must be < horizon / {ZIEGLER_CLIP} = {self.horizon / ZIEGLER_CLIP!r} "
                f"so that the coefficient stays positive, got {n!r}"
            )
        m = self._measurements("kl", kl=kl, entropy=entropy, reward=reward)
        if m is None:
            return self._skip()
        error = min(max(m["kl"] / self.target - 1.0, -ZIEGLER_CLIP), ZIEGLER_CLIP)
        return self._accept(coef=self._state.coef * (1.0 + error * n / self.horizon))

    def _config(self) -> dict[str, Any]:
        return {
            "init_coef": self.init_coef,
            "target": self.target,
            "horizon": self.horizon,
            "on_nonfinite": self.on_nonfinite,
        }


class PPOAdaptiveKL(CoefController):
    """The PPO paper's adaptive KL penalty coefficient (Schulman et al. 2017, §4)::

        β ← β / factor   if d < target / tolerance
        β ← β · factor   if d > target · tolerance

    where d = KL(π_old, π) measured after the policy update. The paper uses tolerance = 1.5 and
    factor = 2.

    Args:
        init_coef: β0 ≥ 0 (default 1.0).
        target: d_targ > 0 (default 0.01).
        tolerance: > 1 (default 1.5).
        factor: > 1 (default 2.0).
        on_nonfinite: "raise" or "skip" a NaN/inf measurement.
    """

    def __init__(
        self,
        init_coef: float = 1.0,
        target: float = 0.01,
        tolerance: float = 1.5,
        factor: float = 2.0,
        on_nonfinite: str = "raise",
    ) -> None:
        super().__init__(on_nonfinite)
        self.init_coef = non_negative("init_coef", init_coef)
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
    ) -> CoefDecision:
        """One update per policy update; ``kl`` is KL(π_old, π). Other arguments validated only."""
        _optional_n_steps(n_steps)
        m = self._measurements("kl", kl=kl, entropy=entropy, reward=reward)
        if m is None:
            return self._skip()
        coef = self._state.coef
        if m["kl"] < self.target / self.tolerance:
            coef = coef / self.factor
        elif m["kl"] > self.target * self.tolerance:
            coef = coef * self.factor
        return self._accept(coef=coef)

    def _config(self) -> dict[str, Any]:
        return {
            "init_coef": self.init_coef,
            "target": self.target,
            "tolerance": self.tolerance,
            "factor": self.factor,
            "on_nonfinite": self.on_nonfinite,
        }
