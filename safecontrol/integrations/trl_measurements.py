"""What TRL measured since the controller's last update, and where ``SafeBetaCallback`` reads it.

Two paths, the same numbers:

- **TRL's metric lists** (the fast path, private). GRPOTrainer and RLOOTrainer append each
  micro-batch's or rollout batch's value to ``trainer._metrics["train"][key]`` and average the
  lists into the log every ``logging_steps``. At each optimizer step's end ``MetricLists`` takes
  the values appended since it last looked, so the controller can update once per rollout batch
  whatever ``logging_steps`` is; the rollout batches are counted by their rewards. Being
  private, the lists are checked after the first optimizer step (which always generates): where
  they lack a key of ``MEASURED``, ``Measurements`` warns once and reads the logs instead.
- **The logs** (the public path). ``on_log`` receives the same lists averaged over the logging
  window (TRL drops NaN values first); ``logged_measurements`` reads them. The controller then
  updates at each log whose window generated a rollout batch (TRL logs a completion length with
  each), so once per logging step, and with ``logging_steps=1`` exactly as on the fast path. The
  window's rollout batches are counted by TRL's schedule (``rollouts_generated``: one every
  ``steps_per_generation × num_iterations`` micro-batches, from the trainer's first).

What the callback logs of a decision (``decision_values``) goes the same way back: into the
metric lists, or into the log.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, MutableMapping
from typing import Any

from .._validation import one_of
from ..contract import DeadBandDecision, Decision
from ..decision import SafeDecision
from ..phase import Phase
from .trl_state import MEAN_LENGTH, MEASURED

SOURCES = ("auto", "logs")
"""``SafeBetaCallback(source=...)``: ``auto`` reads the metric lists while they hold every key of
``MEASURED`` and falls back to the logs otherwise; ``logs`` reads only the logs."""
PHASE_CODES = {phase.value: float(code) for code, phase in enumerate(Phase)}
"""``safe/phase`` as a number: warmup 0, climbing 1, plateau 2, converged 3."""


class Measurements:
    """The values of ``MEASURED`` collected since the last update (``pending``) and the rollout
    batches they came from (``rollouts``), fed by the callback's hooks."""

    def __init__(self, trainer: Any, trainer_name: str, source: str) -> None:
        self.source = one_of("source", source, SOURCES)
        """``auto`` until the first optimizer step's check, then ``metrics`` or ``logs``."""
        if self.source == "logs":
            _check_logged(trainer.args)
        self.lists = MetricLists(trainer)
        self.pending: dict[str, list[float]] = {key: [] for key in MEASURED}
        self.rollouts = 0
        self._args, self._trainer_name = trainer.args, trainer_name
        self._micro_steps = 0  # micro-batches trained by this trainer, as TRL counts them
        self._counted_to = 0  # micro-batches whose rollout batches are counted (logs path)

    def micro_step_end(self) -> None:
        self._micro_steps += 1

    def step_end(self) -> bool:
        """An optimizer step ended: collect its values (lists) or count its rollouts (logs).
        True when the controller should update now."""
        self._micro_steps += 1
        if self.source == "auto":
            self._choose_source()
        if self.source == "logs":
            every = self._args.steps_per_generation * self._args.num_iterations
            self.rollouts += rollouts_generated(self._counted_to, self._micro_steps, every)
            self._counted_to = self._micro_steps
            return False
        for key in MEASURED:
            new = self.lists.take_new(key)
            if key == "reward":
                self.rollouts += len(new)
                new = [r for r in new if not math.isnan(r)]  # unscorable batches, as TRL's log
            self.pending[key].extend(new)
        return self.rollouts > 0

    def log(self, logs: Mapping[str, Any] | None, global_step: int) -> bool:
        """A log: on the logs path, add a training log's window means. True when the window
        generated a rollout batch."""
        measured = logged_measurements(logs)
        if self.source != "logs" or measured is None:
            return False
        generated = MEAN_LENGTH in measured
        if generated and not self.rollouts:
            raise RuntimeError(
                f"{self._trainer_name} logged {MEAN_LENGTH!r} at global step {global_step}, a "
                "rollout batch its steps_per_generation x num_iterations schedule does not "
                "have: this TRL schedules rollouts differently; use source='auto'"
            )
        for key, value in measured.items():
            self.pending[key].append(value)
        return generated

    def means(self) -> dict[str, Any]:
        """The update's measurements: each list's mean, as TRL's log forms it (the reward NaN
        when every batch was unscorable, the length None when none was logged), and ``n_steps``,
        the completions generated (``generation_batch_size`` per rollout batch)."""
        pending = self.pending
        if not pending["kl"] or not pending["entropy"]:
            raise RuntimeError(
                f"{self._trainer_name} logged no {'kl' if not pending['kl'] else 'entropy'} for "
                "this rollout batch; it measures the KL only while trainer.beta != 0, which "
                "SafeBetaCallback keeps by min_beta: was beta set elsewhere?"
            )
        lengths = pending[MEAN_LENGTH]
        return {  # every batch has as many completions: the mean of means is the overall mean
            "kl": _mean(pending["kl"]),
            "entropy": _mean(pending["entropy"]),
            "reward": _mean(pending["reward"]) if pending["reward"] else math.nan,
            "n_steps": self.rollouts * self._args.generation_batch_size,
            "tokens_per_sequence": _mean(lengths) if lengths else None,
        }

    def clear(self) -> None:
        """The controller has been fed: start collecting for the next update."""
        self.pending = {key: [] for key in MEASURED}
        self.rollouts = 0

    def _choose_source(self) -> None:
        missing = self.lists.missing()
        self.source = "logs" if missing else "metrics"
        if missing:
            _check_logged(self._args)
            warnings.warn(
                f"{self._trainer_name} of this TRL keeps no metric lists trainer._metrics"
                f"['train'] with {missing}; SafeBetaCallback reads the logs instead (one "
                "controller update per logging step; set logging_steps=1 for one per step)",
                stacklevel=4,
            )


class MetricLists:
    """TRL's per-batch metric lists ``trainer._metrics["train"]``, read incrementally."""

    def __init__(self, trainer: Any) -> None:
        self._trainer = trainer
        self._seen: dict[str, tuple[list[float], int]] = {}

    def lists(self) -> MutableMapping[str, Any] | None:
        """The training metric lists, or None where this TRL keeps none under that name."""
        metrics = getattr(self._trainer, "_metrics", None)
        train = metrics.get("train") if isinstance(metrics, Mapping) else None
        return train if isinstance(train, MutableMapping) else None

    def missing(self) -> list[str]:
        """The keys of ``MEASURED`` without a list (after an optimizer step that generated)."""
        lists = self.lists()
        if lists is None:
            return list(MEASURED)
        return [key for key in MEASURED if not isinstance(lists.get(key), list)]

    def start(self) -> None:
        """Values already in the lists belong to no step of this run (a resumed trainer's)."""
        lists = self.lists() or {}
        self._seen = {key: (lists[key], len(lists[key])) for key in MEASURED if key in lists}

    def take_new(self, key: str) -> list[float]:
        """Values appended to the list ``key`` since the last call."""
        values = (self.lists() or {}).get(key)
        if values is None:
            return []
        seen_list, seen_len = self._seen.get(key, (None, 0))
        start = seen_len if values is seen_list else 0  # a new list: TRL logged and cleared
        self._seen[key] = (values, len(values))
        return [float(v) for v in values[start:]]

    def append(self, values: Mapping[str, float]) -> None:
        """Add one value per key; TRL averages them into its next log like its own."""
        lists = self.lists()
        if lists is not None:
            for key, value in values.items():
                lists.setdefault(key, []).append(value)


def logged_measurements(logs: Mapping[str, Any] | None) -> dict[str, float] | None:
    """The window means of ``MEASURED`` in a training log, or None for a log without a KL or an
    entropy (an evaluation's, whose keys start with ``eval_``, or the end-of-training summary).

    A key TRL did not log in the window (no rollout batch: no reward, no length), or logged as
    None or NaN (every reward of the window unscorable), is left out.
    """
    if not logs or ("kl" not in logs and "entropy" not in logs):
        return None
    measured = {}
    for key in MEASURED:
        value = logs.get(key)
        if value is not None and not math.isnan(float(value)):
            measured[key] = float(value)
    return measured


def rollouts_generated(first_micro_step: int, end_micro_step: int, every: int) -> int:
    """Rollout batches TRL generates in micro-batches ``first_micro_step`` to ``end_micro_step``
    (exclusive), counted from 0 at the trainer's first: one at each multiple of ``every``."""
    return (end_micro_step - 1) // every - (first_micro_step - 1) // every


def decision_values(
    decision: Decision, beta: float, entropy_coef: float | None = None
) -> dict[str, float]:
    """What is logged of a decision: ``safe/beta`` (the β set), ``safe/coef``, the entropy
    coefficient set (if any), and the fields the decision's kind has (a dead band's threshold and
    gate; SAFE's phase and predicted KL)."""
    values = {"safe/beta": float(beta), "safe/coef": float(decision.coef)}
    if entropy_coef is not None:
        values["safe/entropy_coef"] = float(entropy_coef)
    if isinstance(decision, DeadBandDecision):
        values["safe/threshold"] = float(decision.threshold)
        values["safe/gate"] = float(decision.gate)
    if isinstance(decision, SafeDecision):
        values["safe/phase"] = PHASE_CODES[decision.phase]
        values["safe/kl_predicted"] = decision.kl_predicted
    return values


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)  # TRL's own log formula, so fed and logged values agree


def _check_logged(args: Any) -> None:
    if getattr(args, "logging_strategy", None) == "no":  # IntervalStrategy is a str enum
        raise ValueError(
            "reading TRL's logs needs logs, but the trainer was built with "
            "logging_strategy='no'; log (logging_steps=1 for one controller update per step)"
        )
