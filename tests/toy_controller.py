"""A controller written by a user in one file, registered at run time (issue 11's acceptance).

It is not a subclass of anything of ours: it satisfies ``safecontrol.contract.Controller`` by
shape, with a decision of its own, and is registered with one ``register`` call. Tests drive it,
unchanged, through the trainer, the plant and overhead benchmarks and the TRL callback.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from safecontrol import registry
from safecontrol._validation import finite, non_negative, positive, positive_int

NAME = "toy-proportional-kl"


@dataclass(frozen=True)
class ToyDecision:
    coef: float
    step: int = 0
    skipped: int = 0
    max_preview_kl: float = math.inf

    def loss_at(self, kl: float) -> float:
        return self.coef * finite("kl", kl)

    def slope_at(self, kl: float) -> float:
        finite("kl", kl)
        return self.coef

    def step_scale(self, preview_kl: float) -> float:
        non_negative("preview_kl", preview_kl)
        return 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"coef": self.coef, "step": self.step, "skipped": self.skipped}  # JSON: no inf


class ToyProportionalKL:
    """β ← clip(β + gain·(kl − target), 0, 1): a proportional step on the per-token KL.

    Args:
        target: the KL per token to hold (> 0).
        gain: β per nat of excess KL (≥ 0).
        init_coef: β before any update (in [0, 1]).
    """

    kl_unit = "per_token"

    def __init__(self, target: float = 0.3, gain: float = 0.05, init_coef: float = 0.05) -> None:
        self.target = positive("target", target)
        self.gain = non_negative("gain", gain)
        self.init_coef = min(1.0, non_negative("init_coef", init_coef))
        self.reset()

    @property
    def decision(self) -> ToyDecision:
        return ToyDecision(self.coef, self.step)

    def update(
        self, *, kl, entropy=None, reward=None, n_steps=None, tokens_per_sequence=None
    ) -> ToyDecision:
        kl = finite("kl", kl)
        for name, value in (("entropy", entropy), ("reward", reward)):
            if value is not None:
                finite(name, value)
        if entropy is not None and entropy < 0:
            raise ValueError(f"entropy must be >= 0, got {entropy!r}")
        if n_steps is not None:
            positive_int("n_steps", n_steps)
        if tokens_per_sequence is not None:
            positive("tokens_per_sequence", tokens_per_sequence)
        self.coef = min(1.0, max(0.0, self.coef + self.gain * (kl - self.target)))
        self.step += 1
        return self.decision

    def state_dict(self) -> dict[str, Any]:
        return {"coef": self.coef, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.coef, self.step = float(state["coef"]), int(state["step"])

    def reset(self) -> None:
        self.coef, self.step = self.init_coef, 0


@contextlib.contextmanager
def registered() -> Iterator[str]:
    """The toy registered under ``NAME`` for the block (one ``register`` call), then removed."""
    registry.register(NAME, ToyProportionalKL, "A user's proportional β controller (a test toy).")
    try:
        yield NAME
    finally:
        registry.unregister(NAME)
