"""SAFE's entropy gate (SPEC §1.2): g(H) = max(minimum, floor / (H + eps)).

Low entropy (mode collapse) amplifies the KL penalty, high entropy (exploration) relaxes it, never
below ``minimum``. Stateless.
"""

from __future__ import annotations

from ._validation import non_negative, positive


class EntropyGate:
    """Args:
    floor: H_floor in nats (> 0); at H = floor − eps the gate is 1.
    minimum: g_min ≥ 0, the gate's lower bound.
    eps: ε > 0, keeps the gate finite at zero entropy (g(0) = floor / eps).
    """

    def __init__(self, floor: float = 2.0, minimum: float = 0.5, eps: float = 0.1) -> None:
        self.floor = positive("floor", floor)
        self.minimum = non_negative("minimum", minimum)
        self.eps = positive("eps", eps)

    def __call__(self, entropy: float) -> float:
        return self._gate_unchecked(non_negative("entropy", entropy))

    def _gate_unchecked(self, h: float) -> float:
        """The gate for a caller that has already checked that ``h`` is a float ≥ 0."""
        return max(self.minimum, self.floor / (h + self.eps))

    def __repr__(self) -> str:
        return f"EntropyGate(floor={self.floor!r}, minimum={self.minimum!r}, eps={self.eps!r})"
