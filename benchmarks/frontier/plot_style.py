"""The frontier plots' shared look: which colour marks what, and a mean's CI as an error bar.

Both plot modules (``render`` and ``lr_report``) import it, so neither imports the other's
internals.
"""

from __future__ import annotations

from benchmarks.frontier.cells import FIXED_BETA, NO_BETA, TRUST_REGION
from benchmarks.stats import Estimate

HIGHLIGHT = {FIXED_BETA: "black", TRUST_REGION: "C0", NO_BETA: "C3"}
BEST_MARK = {FIXED_BETA: "C1", TRUST_REGION: "C2"}
"""No colour repeats among the highlighted elements; every other variant is grey."""


def error_bar(estimate: Estimate) -> list[list[float]] | None:
    """Matplotlib's asymmetric error bar of a mean and its CI (None without a CI)."""
    ci, mean = estimate.ci, estimate.mean
    if ci is None or mean is None:
        return None
    # max: a constant sample's interval is its value, which the mean misses by a rounding.
    return [[max(0.0, mean - ci[0])], [max(0.0, ci[1] - mean)]]
