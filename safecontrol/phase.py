"""Training-phase detection from the reward stream (SPEC §1.3, published SAFE constants).

Over the last ``window`` rewards (the recent window) and the ``window`` before them (the previous
window, possibly shorter early on):

- WARMUP (×1.5): at most ``window`` rewards seen, so no reward precedes the recent window yet;
- CLIMBING (×1.2): recent mean > previous mean + climb_margin;
- CONVERGED (×1.0): recent std < converged_std and recent mean > converged_level;
- PLATEAU (×0.8): otherwise.

``mode="absolute"`` uses the published constants in reward units (climb 0.01, std 0.02, level 0.7),
which only make sense for rewards of order one. ``mode="scale_invariant"`` measures the margin and
the std in units of the running reward std (defaults 0.1 and 0.2) and the level as a fraction of the
observed reward range (default 0.9), so it behaves the same for any affine rescaling of the reward.
Memory is bounded: 2·window rewards, the last window's means and O(1) running statistics
(SPEC §2.5).

The state (``PhaseState``) is the reward history and the running statistics; the window means are
derived from it, not state: a memo of the recent-window means of the last ``window`` updates,
which spares summing the previous window each update (once the history is full, the previous
window is the recent window of ``window`` updates ago). The memo is valid only for the record it
was built with (checked by identity); after a load, a reset or a rejected update of a composite it
starts afresh and the previous window is summed, with the same result to the last bit.

WARMUP lasts until a previous window exists. When the recent window first fills (update
``window``) there is nothing to compare it with, so CLIMBING cannot be told from PLATEAU; until
this was fixed that update fell through to PLATEAU (×0.8) and the next one, with a one-reward
previous window, to CLIMBING: a one-update dip of SAFE's threshold (0.46 → 0.25 → 0.37) in every
run at the end of warm-up.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from enum import Enum
from typing import Any, NamedTuple

from ._state import Stateful, build_record, json_keys, require
from ._validation import (
    _show,
    all_finite,
    finite,
    measurement,
    non_negative,
    one_of,
    positive,
    positive_int,
)


class Phase(str, Enum):
    WARMUP = "warmup"
    CLIMBING = "climbing"
    PLATEAU = "plateau"
    CONVERGED = "converged"


PUBLISHED_MULTIPLIERS = {
    Phase.WARMUP: 1.5,
    Phase.CLIMBING: 1.2,
    Phase.CONVERGED: 1.0,
    Phase.PLATEAU: 0.8,
}
PHASE_MODES = ("absolute", "scale_invariant")
_DEFAULTS = {
    "absolute": {"climb_margin": 0.01, "converged_std": 0.02, "converged_level": 0.7},
    "scale_invariant": {"climb_margin": 0.1, "converged_std": 0.2, "converged_level": 0.9},
}


MAX_WINDOW = 10**9
"""Largest window: its 2·window rewards would already take 16 GB."""


@json_keys(seen="count")
class PhaseState(NamedTuple):
    history: tuple[float, ...] = ()
    """The last 2·window rewards, oldest first."""
    seen: int = 0
    """Rewards seen (saved as ``count``)."""
    mean: float = 0.0
    """Welford running mean and sum of squared deviations over every reward seen."""
    m2: float = 0.0
    minimum: float | None = None
    maximum: float | None = None
    phase: str = Phase.WARMUP.value


def window_size(name: str, value: Any) -> int:
    """A window length: a positive integer up to ``MAX_WINDOW``."""
    n = positive_int(name, value)
    if n > MAX_WINDOW:
        raise ValueError(f"{name} must be at most {MAX_WINDOW}, got {n!r}")
    return n


def _std(values: tuple[float, ...], mean: float) -> float:
    return math.sqrt(math.fsum([(v - mean) * (v - mean) for v in values]) / len(values))


class PhaseDetector(Stateful[PhaseState]):
    """Classify the reward stream into WARMUP / CLIMBING / PLATEAU / CONVERGED.

    Args:
        window: rewards per window (published 50).
        mode: "absolute" (published constants) or "scale_invariant".
        climb_margin, converged_std, converged_level: thresholds; defaults depend on ``mode``.
        multipliers: threshold multiplier per phase (published: 1.5, 1.2, 0.8, 1.0).
    """

    _record = PhaseState

    def __init__(
        self,
        window: int = 50,
        mode: str = "absolute",
        climb_margin: float | None = None,
        converged_std: float | None = None,
        converged_level: float | None = None,
        multipliers: Mapping[Phase | str, float] | None = None,
    ) -> None:
        self.window = window_size("window", window)
        self.mode = one_of("mode", mode, PHASE_MODES)
        defaults = _DEFAULTS[self.mode]
        self.climb_margin = non_negative(
            "climb_margin", defaults["climb_margin"] if climb_margin is None else climb_margin
        )
        self.converged_std = non_negative(
            "converged_std", defaults["converged_std"] if converged_std is None else converged_std
        )
        self.converged_level = finite(
            "converged_level",
            defaults["converged_level"] if converged_level is None else converged_level,
        )
        if multipliers is not None and not isinstance(multipliers, Mapping):
            raise ValueError(
                f"multipliers must be a mapping phase -> multiplier, got {_show(multipliers)}"
            )
        given = dict(PUBLISHED_MULTIPLIERS if multipliers is None else multipliers)
        self.multipliers: dict[Phase, float] = {}
        for key, value in given.items():
            try:
                phase = Phase(key)
            except (ValueError, TypeError):
                raise ValueError(f"multipliers: unknown phase {key!r}") from None
            self.multipliers[phase] = positive(f"multipliers[{phase.value!r}]", value)
        missing = [p.value for p in Phase if p not in self.multipliers]
        if missing:
            raise ValueError(f"multipliers: missing phases {missing}")
        self._state = PhaseState()
        # The derived window means (module docstring): valid for the record ``_memo_for``.
        self._memo: deque[float] = deque(maxlen=self.window)
        self._memo_for: PhaseState | None = None

    def update(self, reward: float) -> Phase:
        """Feed one batch-mean reward (finite, magnitude ≤ ``MAX_MEASUREMENT``); returns the phase
        after it. An update that would overflow the running statistics changes nothing."""
        self._state, phase = self._step(self._state, measurement("reward", reward))
        return phase

    def _step(self, s: PhaseState, r: float) -> tuple[PhaseState, Phase]:
        """The record after the (finite) reward ``r``, and the phase; a ``ValueError`` if the
        running statistics overflow."""
        w = self.window
        history = (*s.history[1 - 2 * w :], r)
        count = s.seen + 1
        delta = r - s.mean
        mean = s.mean + delta / count
        m2 = s.m2 + delta * (r - mean)
        minimum = r if s.minimum is None else min(s.minimum, r)
        maximum = r if s.maximum is None else max(s.maximum, r)
        # One isfinite on the sum in the common case; all_finite only if that overflowed.
        if not math.isfinite(mean + m2) and not all_finite(mean, m2):
            raise ValueError(f"reward {r!r} overflows the running reward statistics")
        recent_mean = None
        if count < w:
            phase = Phase.WARMUP
        else:
            recent = history[-w:]
            recent_mean = math.fsum(recent) / len(recent)
            previous_mean = self._previous_mean(s, history)
            if previous_mean is None:  # no window before the recent one yet: still warming up
                phase = Phase.WARMUP
            else:
                phase = self._classify(
                    recent, recent_mean, previous_mean, count, m2, minimum, maximum
                )
        # Enum.value is a (slow) property around _value_.
        fields = (history, count, mean, m2, minimum, maximum, phase._value_)
        state = build_record(PhaseState, fields)
        if recent_mean is not None:
            if self._memo_for is not s:
                self._memo = deque(maxlen=w)
            self._memo.append(recent_mean)
            self._memo_for = state
        return state, phase

    def _previous_mean(self, s: PhaseState, history: tuple[float, ...]) -> float | None:
        """``fsum(previous) / len(previous)`` of the window before the recent one, or None
        (``history`` is the one after the update from ``s``)."""
        memo = self._memo
        if len(history) == 2 * self.window and len(memo) == self.window and self._memo_for is s:
            # A full previous window is the recent window of ``window`` updates ago: its mean is
            # known, which saves an O(window) sum per update.
            return memo[0]
        previous = history[: -self.window]
        return math.fsum(previous) / len(previous) if previous else None

    def _classify(
        self,
        recent: tuple[float, ...],
        recent_mean: float,
        previous_mean: float,
        count: int,
        m2: float,
        minimum: float,
        maximum: float,
    ) -> Phase:
        if self.mode == "absolute":
            scale, level = 1.0, recent_mean
        else:
            scale = math.sqrt(m2 / count)
            spread = maximum - minimum
            level = 1.0 if spread == 0.0 else (recent_mean - minimum) / spread
        # The relative slack keeps rounding in the window means (a constant reward's means can
        # differ in the last bit) from reading as a climb when the margin is zero.
        slack = 1e-12 * max(abs(recent_mean), abs(previous_mean))
        if recent_mean - previous_mean > self.climb_margin * scale + slack:
            return Phase.CLIMBING
        # The window std costs O(window); it only matters once the level qualifies.
        if level > self.converged_level and _std(recent, recent_mean) <= self.converged_std * scale:
            return Phase.CONVERGED
        return Phase.PLATEAU

    @property
    def phase(self) -> Phase:
        return Phase(self._state.phase)

    @property
    def multiplier(self) -> float:
        """φ for the current phase."""
        return self.multipliers[self.phase]

    def _initial_state(self) -> PhaseState:
        return PhaseState()

    def _config(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "mode": self.mode,
            "climb_margin": self.climb_margin,
            "converged_std": self.converged_std,
            "converged_level": self.converged_level,
            "multipliers": {p.value: m for p, m in self.multipliers.items()},
        }

    def _check_state(self, s: PhaseState, owner: str) -> None:
        name, n = owner, len(s.history)
        require(
            n == min(s.seen, 2 * self.window),
            name,
            "history",
            f"hold the last min(count, 2·window={2 * self.window}) = "
            f"{min(s.seen, 2 * self.window)} rewards",
            f"{n} rewards",
        )
        require(s.m2 >= 0.0, name, "m2", "be >= 0", s.m2)
        seen = s.seen > 0
        require((s.minimum is not None) == seen, name, "minimum", "be set iff count > 0", s.minimum)
        require((s.maximum is not None) == seen, name, "maximum", "be set iff count > 0", s.maximum)
        lo, hi = s.minimum, s.maximum
        if lo is not None and hi is not None:
            require(lo <= hi, name, "minimum", f"not exceed maximum {hi!r}", lo)
            require(
                all(lo <= r <= hi for r in s.history),
                name,
                "history",
                f"lie within [minimum, maximum] = [{lo!r}, {hi!r}]",
                s.history,
            )
        phases = [p.value for p in Phase]
        require(s.phase in phases, name, "phase", f"be one of {phases}", s.phase)
