"""Exponential moving averages (first-order IIR low-pass filters).

``EMA(decay)`` implements m_t = decay·m_{t−1} + (1 − decay)·x_t from m_0 = 0, i.e.
``scipy.signal.lfilter([1 − decay], [1, −decay], x)``. With ``bias_correction`` (Adam's) the
reported value is m_t / (1 − decay^t), so the first report equals the first input and a zero start
never fakes a low value (SPEC §1.2).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._state import Stateful, parts_of, record_from_dict, record_to_dict, require
from ._validation import all_finite, boolean, finite
from ._validation import decay as check_decay


def debiased(moment: float, decay: float, count: int) -> float:
    """Adam's bias correction of a zero-started EMA moment after ``count`` inputs."""
    return moment if count == 0 else moment / (1.0 - decay**count)


class EMAState(NamedTuple):
    moment: float = 0.0
    """The raw (zero-started) average m_t."""
    count: int = 0
    """Inputs seen."""


class EMA(Stateful):
    """Exponential moving average.

    Args:
        decay: weight of the past, in (0, 1); the time constant is about 1 / (1 − decay) steps.
        bias_correction: report m_t / (1 − decay^t) instead of the zero-started m_t.
    """

    def __init__(self, decay: float, bias_correction: bool = True) -> None:
        self.decay = check_decay("decay", decay)
        self.bias_correction = boolean("bias_correction", bias_correction)
        self._state = EMAState()

    def update(self, x: float) -> float:
        """Feed one value; returns the new average. A value so large that the average overflows
        is rejected (``ValueError``) and changes nothing."""
        saved = self._state
        value = self._update_unchecked(finite("x", x))
        if not all_finite(value, self._state.moment):
            self._state = saved
            raise ValueError(f"x {x!r} overflows the moving average")
        return value

    def _update_unchecked(self, x: float) -> float:
        """``update`` for a caller that has already checked that ``x`` is a finite float."""
        s = self._state
        moment, count = self.decay * s.moment + (1.0 - self.decay) * x, s.count + 1
        self._state = EMAState(moment, count)
        return debiased(moment, self.decay, count) if self.bias_correction else moment

    @property
    def value(self) -> float:
        """The current average (0.0 before any input)."""
        s = self._state
        if not self.bias_correction:
            return s.moment
        return debiased(s.moment, self.decay, s.count)

    @property
    def count(self) -> int:
        return self._state.count

    def reset(self) -> None:
        self._state = EMAState()

    def _config(self) -> dict[str, Any]:
        return {"decay": self.decay, "bias_correction": self.bias_correction}

    def _get_state(self) -> dict[str, Any]:
        return record_to_dict(self._state)

    def _set_state(self, state: dict[str, Any]) -> None:
        self._state = record_from_dict(EMAState, state, "EMA", check_ema_state)


def check_ema_state(record: EMAState, owner: str = "EMA") -> None:
    """Before any input the moment is 0 (a zero start is what the bias correction undoes)."""
    require(record.count > 0 or record.moment == 0.0, owner, "moment", "be 0.0 at count 0", record)


class DualEMA(Stateful):
    """Two bias-corrected EMAs of one signal; ``trend = short − long`` (SPEC §1.2 KL tracking).

    For a signal rising by s per step, each EMA lags by decay/(1 − decay)·s, so
    ``trend / (lag_long − lag_short)`` estimates the slope per step (see ``slope``).
    """

    def __init__(self, short: float = 0.9, long: float = 0.99) -> None:
        short = check_decay("short", short)
        long = check_decay("long", long)
        if short >= long:
            raise ValueError(f"short decay {short!r} must be smaller than long decay {long!r}")
        self._short = EMA(short)
        self._long = EMA(long)
        lag_short, lag_long = short / (1.0 - short), long / (1.0 - long)
        self._lag_gap = lag_long - lag_short  # the trend per unit of slope

    def update(self, x: float) -> None:
        """Feed one value to both averages (all or nothing, as ``EMA.update``)."""
        saved = self._short._state, self._long._state
        short, long, slope = self._update_unchecked(finite("x", x))
        if not all_finite(short, long, slope):
            self._short._state, self._long._state = saved
            raise ValueError(f"x {x!r} overflows the moving averages")

    def _update_unchecked(self, x: float) -> tuple[float, float, float]:
        """``update`` for a caller that has already checked that ``x`` is a finite float; returns
        the new ``short``, ``long`` and ``slope``."""
        short, long = self._short._update_unchecked(x), self._long._update_unchecked(x)
        return short, long, (short - long) / self._lag_gap

    @property
    def short(self) -> float:
        return self._short.value

    @property
    def long(self) -> float:
        return self._long.value

    @property
    def trend(self) -> float:
        return self._short.value - self._long.value

    @property
    def slope(self) -> float:
        """Per-step slope implied by the trend (exact, after the transient, for a ramp)."""
        return self.trend / self._lag_gap

    @property
    def count(self) -> int:
        return self._short.count

    def reset(self) -> None:
        self._short.reset()
        self._long.reset()

    def _config(self) -> dict[str, Any]:
        return {"short": self._short.decay, "long": self._long.decay}

    def _get_state(self) -> dict[str, Any]:
        return {"short": self._short._get_state(), "long": self._long._get_state()}

    def _set_state(self, state: dict[str, Any]) -> None:
        parts_of(state, ("short", "long"), "DualEMA")
        short = record_from_dict(EMAState, state["short"], "DualEMA.short", check_ema_state)
        long = record_from_dict(EMAState, state["long"], "DualEMA.long", check_ema_state)
        require(short.count == long.count, "DualEMA", "long.count", "equal short.count", long)
        self._short._state, self._long._state = short, long
