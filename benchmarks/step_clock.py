"""Wall-clock seconds of each optimizer step of a transformers ``Trainer``: from ``on_step_begin``
(before a GRPO step generates its rollout) to ``on_step_end`` (after the optimizer step and every
callback's hooks around it), for the benchmarks that time TRL."""

from __future__ import annotations

import time

from transformers import TrainerCallback


class StepClock(TrainerCallback):
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.seconds.append(time.perf_counter() - self.started)
