"""Per-token estimators of KL(π ‖ π_ref) from tokens sampled from π (SPEC §3; Schulman 2020,
"Approximating KL Divergence").

With r = log π_ref(a) − log π(a) for a sampled a ~ π:

- k1 = −r: unbiased, high variance, and a single token (or a batch mean) can be negative; a
  negative k1 is estimator noise, never a negative KL.
- k2 = r²/2: ≥ 0, low variance, biased; its expectation matches KL to second order as π → π_ref.
- k3 = (e^r − 1) − r: unbiased and ≥ 0 with low variance; used as a loss its gradient is biased.

Say which estimator produced a controller's input, and whether it is per token or summed per
sequence: a per-sequence sum is roughly the per-token value times the length.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._validation import one_of, real_array

KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_per_token(logp: ArrayLike, logp_ref: ArrayLike, kind: str = "k1") -> np.ndarray:
    """Elementwise KL estimate per token.

    Args:
        logp: log π(a) of the sampled tokens under the policy.
        logp_ref: log π_ref(a) of the same tokens under the reference; broadcasts with ``logp``.
        kind: "k1", "k2" or "k3" (see the module docstring).

    Returns:
        float64 estimates of the broadcast shape (an ``np.float64`` scalar for scalar inputs).
        Average them over the tokens you care about (masking padding first).
    """
    kind = one_of("kind", kind, KL_ESTIMATORS)
    ref, policy = real_array("logp_ref", logp_ref), real_array("logp", logp)
    try:
        r = ref - policy
    except ValueError:
        raise ValueError(
            f"logp {policy.shape} and logp_ref {ref.shape} must have broadcastable shapes"
        ) from None
    estimate: np.ndarray
    if kind == "k1":
        estimate = -r
    elif kind == "k2":
        estimate = 0.5 * r * r
    else:
        # expm1(r) ≥ r holds after rounding too; the maximum guards a libm without that
        # property. A log-ratio above ~709 overflows to inf: an estimate beyond any float.
        with np.errstate(over="ignore"):
            estimate = np.maximum(np.expm1(r) - r, 0.0)
    return estimate
