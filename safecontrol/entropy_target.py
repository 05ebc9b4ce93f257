"""Adaptive entropy-bonus coefficient that steers the policy entropy to a target (SPEC §3).

Skywork-OR1's adaptive entropy control ("Skywork Open Reasoner 1 Technical Report", arXiv
2505.22312), also requested for TRL's GRPO (trl#3320)::

    coef ← clip(coef + δ, min_coef, max_coef)   if entropy < target
    coef ← clip(coef − δ, min_coef, max_coef)   if entropy > target
    coef unchanged                              if entropy == target

The coefficient is an ENTROPY BONUS, not a KL coefficient: use it as
``loss = policy_loss − decision.coef · entropy`` (a larger coef pushes entropy up). Do not feed
it to a KL penalty; ``CoefDecision.loss_at(entropy)`` gives the bonus magnitude coef·entropy.
"""

from __future__ import annotations

from typing import Any

from ._state import require
from ._validation import clamp, finite, non_negative, positive
from .classic import CoefController, CoefState, _batch_shape
from .decision import CoefDecision


class EntropyTargetController(CoefController):
    """Bang-bang controller of the entropy-bonus coefficient.

    Args:
        target: target entropy > 0, in the unit of the ``entropy`` measurement (e.g. mean nats
            per token).
        init_coef: the starting coefficient, within [min_coef, max_coef] (default 0.0).
        delta: the step δ > 0 per update (default 0.005, Skywork-OR1's).
        min_coef: lower bound ≥ 0 (default 0.0).
        max_coef: upper bound ≥ min_coef (default 0.1, ours: ten times the usual fixed bonus of
            0.01, a cap against a bonus that overwhelms the reward).
        on_nonfinite: "raise" or "skip" a NaN/inf measurement.
    """

    def __init__(
        self,
        target: float,
        init_coef: float = 0.0,
        delta: float = 0.005,
        min_coef: float = 0.0,
        max_coef: float = 0.1,
        on_nonfinite: str = "raise",
    ) -> None:
        super().__init__(on_nonfinite)
        self.target = positive("target", target)
        self.delta = positive("delta", delta)
        self.min_coef = non_negative("min_coef", min_coef)
        self.max_coef = finite("max_coef", max_coef)
        if self.min_coef > self.max_coef:
            raise ValueError(
                f"min_coef {self.min_coef!r} must not exceed max_coef {self.max_coef!r}"
            )
        self.init_coef = finite("init_coef", init_coef)
        if not self.min_coef <= self.init_coef <= self.max_coef:
            raise ValueError(
                f"init_coef must lie in [min_coef, max_coef] = "
                f"[{self.min_coef!r}, {self.max_coef!r}], got {self.init_coef!r}"
            )
        self._initial = CoefState(coef=self.init_coef)
        self.reset()

    def update(
        self,
        *,
        entropy: float,
        kl: float | None = None,
        reward: float | None = None,
        n_steps: int | None = None,
        tokens_per_sequence: float | None = None,
    ) -> CoefDecision:
        """One update per rollout batch with the batch entropy (same unit as ``target``).

        ``kl``, ``reward``, ``n_steps`` and ``tokens_per_sequence`` are optional, unused, and
        only validated. The returned
        decision's ``coef`` is the entropy-bonus coefficient.
        """
        _batch_shape(n_steps, tokens_per_sequence)
        m = self._measurements("entropy", entropy=entropy, kl=kl, reward=reward)
        if m is None:
            return self._skip()
        h: float = m["entropy"]
        coef = self._state.coef
        if h < self.target:
            coef = clamp(coef + self.delta, self.min_coef, self.max_coef)
        elif h > self.target:
            coef = clamp(coef - self.delta, self.min_coef, self.max_coef)
        return self._accept(coef=coef)

    def _check_state(self, record: CoefState, owner: str) -> None:
        lo, hi = self.min_coef, self.max_coef
        require(
            lo <= record.coef <= hi,
            owner,
            "coef",
            f"lie in [min_coef, max_coef] = [{lo!r}, {hi!r}]",
            record.coef,
        )

    def _config(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "init_coef": self.init_coef,
            "delta": self.delta,
            "min_coef": self.min_coef,
            "max_coef": self.max_coef,
            "on_nonfinite": self.on_nonfinite,
        }
