"""How every study writes a number in words and tables (one format, so the README, the results
pages and the plots agree digit for digit)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from benchmarks.stats import Estimate


def fmt(value: float | None, digits: int = 3) -> str:
    """3 decimals, or 3 significant digits from 100 up; "–" for a missing or non-finite value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}" if abs(value) >= 100 else f"{value:.{digits}f}"


def signed(value: float | None) -> str:
    """``fmt`` with an explicit sign (differences and regrets); −0.0 reads as +0.000."""
    if value is None:
        return "–"
    value = value + 0.0  # -0.0 + 0.0 is +0.0
    return ("+" if value >= 0 else "") + fmt(value)


def with_ci(estimate: Estimate) -> str:
    """ "0.412 [0.380, 0.440]"; the mean alone below 2 values."""
    if estimate.mean is None:
        return "–"
    ci = estimate.ci
    return fmt(estimate.mean) + ("" if ci is None else f" [{fmt(ci[0])}, {fmt(ci[1])}]")


def value_and_interval(value: float | None, ci: tuple[float, float] | None) -> str:
    """A statistic with its interval, two digits: "0.52 [0.44, 0.59]"; "–" without a value."""
    if value is None:
        return "–"
    return fmt(value, 2) + ("" if ci is None else f" [{fmt(ci[0], 2)}, {fmt(ci[1], 2)}]")


def difference_text(estimate: Estimate | None) -> str:
    """A signed difference with its interval: "+0.032 [−0.040, +0.105]"."""
    if estimate is None or estimate.mean is None:
        return "–"
    ci = estimate.ci
    bounds = " (1 seed, no CI)" if ci is None else f" [{signed(ci[0])}, {signed(ci[1])}]"
    return f"{signed(estimate.mean)}{bounds}"


def difference_with_n(estimate: Estimate | None) -> str:
    """``difference_text`` and its paired seed count, "+0.032 [−0.040, +0.105] (n=4)" (without a
    CI it already says "1 seed")."""
    if estimate is None or estimate.ci is None:
        return difference_text(estimate)
    return f"{difference_text(estimate)} (n={estimate.n})"


def yes_no(value: bool | None) -> str:
    return "–" if value is None else "yes" if value else "no"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
