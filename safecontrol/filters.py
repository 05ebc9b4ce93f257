"""Exponential moving averages (first-order IIR low-pass filters).

``EMA(decay)`` implements m_t = decay·m_{t−1} + (1 − decay)·x_t from m_0 = 0, i.e.
``scipy.signal.lfilter([1 − decay], [1, −decay], x)``. With ``bias_correction`` (Adam's) the
reported value is m_t / (1 − decay^t), so the first report equals the first input and a zero start
never fakes a low value (SPEC §1.2).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._state import Stateful, build_record, json_keys, require
from ._validation import all_finite, boolean, finite
from ._validation import decay as check_decay


def debiased(moment: float, decay: float, count: int) -> float:
    """Adam's bias correction of a zero-started EMA moment after ``count`` inputs."""
    return moment if count == 0 else moment / (1.0 - decay**count)


@json_keys(seen="count")
class EMAState(NamedTuple):
    moment: float = 0.0
    """The raw (zero-started) average m_t."""
    seen: int = 0
    """Inputs seen (saved as ``count``)."""


class EMA(Stateful[EMAState]):
    """Exponential moving average.

    Args:
        decay: weight of the past, in (0, 1); the time constant is about 1 / (1 − decay) steps.
        bias_correction: report m_t / (1 − decay^t) instead of the zero-started m_t.
    """

    _record = EMAState

    def __init__(self, decay: float, bias_correction: bool = True) -> None:
        self.decay = check_decay("decay", decay)
        self.bias_correction = boolean("bias_correction", bias_correction)
        self._state = EMAState()

    def update(self, x: float) -> float:
        """Feed one value; returns the new average. A value so large that the average overflows
        is rejected (``ValueError``) and changes nothing."""
        state, value = self._step(self._state, finite("x", x))
        if not all_finite(value, state.moment):
            raise ValueError(f"x {x!r} overflows the moving average")
        self._state = state
        return value

    def _step(self, s: EMAState, x: float) -> tuple[EMAState, float]:
        """The record after the (finite) input ``x``, and the average it reports."""
        moment, seen = self.decay * s.moment + (1.0 - self.decay) * x, s.seen + 1
        value = debiased(moment, self.decay, seen) if self.bias_correction else moment
        return build_record(EMAState, (moment, seen)), value

    def _value(self, s: EMAState) -> float:
        """The average that the record ``s`` reports."""
        return debiased(s.moment, self.decay, s.seen) if self.bias_correction else s.moment

    @property
    def value(self) -> float:
        """The current average (0.0 before any input)."""
        return self._value(self._state)

    @property
    def count(self) -> int:
        return self._state.seen

    def _initial_state(self) -> EMAState:
        return EMAState()

    def _config(self) -> dict[str, Any]:
        return {"decay": self.decay, "bias_correction": self.bias_correction}

    def _check_state(self, record: EMAState, owner: str) -> None:
        check_ema_state(record, owner)


def check_ema_state(record: EMAState, owner: str = "EMA") -> None:
    """Before any input the moment is 0 (a zero start is what the bias correction undoes)."""
    require(record.seen > 0 or record.moment == 0.0, owner, "moment", "be 0.0 at count 0", record)


class DualEMAState(NamedTuple):
    short: EMAState
    long: EMAState


class DualEMA(Stateful[DualEMAState]):
    """Two bias-corrected EMAs of one signal; ``trend = short − long`` (SPEC §1.2 KL tracking).

    For a signal rising by s per step, each EMA lags by decay/(1 − decay)·s, so
    ``trend / (lag_long − lag_short)`` estimates the slope per step (see ``slope``).
    """

    _record = DualEMAState

    def __init__(self, short: float = 0.9, long: float = 0.99) -> None:
        short = check_decay("short", short)
        long = check_decay("long", long)
        if short >= long:
            raise ValueError(f"short decay {short!r} must be smaller than long decay {long!r}")
        # The two averages as transitions; their records live in this one's.
        self._short = EMA(short)
        self._long = EMA(long)
        lag_short, lag_long = short / (1.0 - short), long / (1.0 - long)
        self._lag_gap = lag_long - lag_short  # the trend per unit of slope
        self._state = self._initial_state()

    def update(self, x: float) -> None:
        """Feed one value to both averages (all or nothing, as ``EMA.update``)."""
        state, short, long, slope = self._step(self._state, finite("x", x))
        if not all_finite(short, long, slope):
            raise ValueError(f"x {x!r} overflows the moving averages")
        self._state = state

    def _step(self, s: DualEMAState, x: float) -> tuple[DualEMAState, float, float, float]:
        """The record after the (finite) input ``x``, and the new ``short``, ``long`` and
        ``slope``."""
        short_state, short = self._short._step(s.short, x)
        long_state, long = self._long._step(s.long, x)
        state = build_record(DualEMAState, (short_state, long_state))
        return state, short, long, (short - long) / self._lag_gap

    @property
    def short(self) -> float:
        return self._short._value(self._state.short)

    @property
    def long(self) -> float:
        return self._long._value(self._state.long)

    @property
    def trend(self) -> float:
        return self.short - self.long

    @property
    def slope(self) -> float:
        """Per-step slope implied by the trend (exact, after the transient, for a ramp)."""
        return self.trend / self._lag_gap

    @property
    def count(self) -> int:
        return self._state.short.seen

    def _initial_state(self) -> DualEMAState:
        return DualEMAState(EMAState(), EMAState())

    def _config(self) -> dict[str, Any]:
        return {"short": self._short.decay, "long": self._long.decay}

    def _check_state(self, record: DualEMAState, owner: str) -> None:
        check_ema_state(record.short, f"{owner}.short")
        check_ema_state(record.long, f"{owner}.long")
        short, long = record.short.seen, record.long.seen
        require(short == long, owner, "long.count", f"equal short.count {short}", long)
