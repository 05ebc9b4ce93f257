"""Limiting how far one optimizer step moves a policy: KL(π_before ‖ π_after) ≤ a decision's limit.

A controller that limits steps says so on its decision: a finite ``decision.max_preview_kl`` (the
largest KL, in nats per response token, one optimizer step may move the policy) and
``decision.step_scale(step_kl)`` (the share of a step to keep, e.g. ``BudgetDecision``'s
√(limit / KL), since KL grows with the square of a small step). ``StepLimiter`` applies both to any
torch loop: it needs the policy's trainable parameters, a function giving its logits on a batch,
and that batch's mask of response tokens. Two modes:

- ``"preview"``: after the optimizer step, one forward of the new weights on the same batch; the
  exact KL between the two next-token distributions, averaged over the response tokens, decides
  the shrink θ ← θ_before + s·(θ − θ_before) (SAFE's preview step scaling, SPEC §1.2; the check
  after the step of TRPO's line search, Schulman et al. 2015).
- ``"predicted"``: near the current weights KL ≈ κ·‖Δθ‖², so the curvature κ measured on the last
  step and this step's length predict its KL at the cost of two vector norms; a loop whose next
  forward runs on the same batch anyway (a further PPO epoch) measures the step there
  (``checked``), refreshing κ and shrinking a step that overshot by more than ``STEP_SLACK``.

Anchors: TRPO (δ = 0.01, step × 0.8^j), ACKTR's ``kl_clip`` = 0.001, rsl_rl's adaptive learning
rate. The KL is reduced over all processes (``global_means``), so every rank shrinks its replica of
the weights by the same factor. ``curvature`` is the limiter's state: checkpoint ``state_dict()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import torch

from ..contract import Decision
from .distributed import global_means

STEP_LIMIT_MODES = ("preview", "predicted")
STEP_SLACK = 1.5
"""A predicted step whose measured KL exceeds its limit by more than this factor is shrunk and
its forward redone. The prediction is a rough one (measured over 25 iterations of the offline
default: measured / predicted 0.45–2.4), so a step lands near its limit on average and only
outliers cost a forward (about one step in twelve at lr 0.01)."""
MAX_SHRINKS = 3
"""At most this many shrinks of one predicted step (each a forward); KL ∝ step² is accurate for
small steps, so one usually lands within the slack."""

Batch = TypeVar("Batch")
Forward = TypeVar("Forward")


def exact_kl_per_token(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) summed over the vocabulary at every position: Σ_v p(v)·(log p(v) − log q(v)).

    ``logits_*`` are (…, V) logits or log-probabilities. Exact at each sampled context (no
    sampling estimator, so no bias from sampling the tokens under the wrong policy and no variance
    from the tokens drawn); tokens that p gives probability 0 (EOS while it is blocked)
    contribute 0, even where q's logit is −inf.
    """
    logp = torch.log_softmax(logits_p.float(), dim=-1)
    logq = torch.log_softmax(logits_q.float(), dim=-1)
    # −inf − (−inf) is NaN: a token blocked under both contributes 0 (nan_to_num, one pass
    # cheaper than a where on p > 0; a p-impossible token's −inf becomes finite, × p = 0 → 0).
    return (logp.exp() * (logp - logq).nan_to_num_(nan=0.0)).sum(-1)


def squared_distance(params: Sequence[torch.Tensor], saved: Sequence[torch.Tensor]) -> float:
    """‖θ − θ_saved‖² over all parameters."""
    with torch.no_grad():
        return float(sum(((p - s).float() ** 2).sum() for p, s in zip(params, saved, strict=True)))


def shrink(params: Sequence[torch.Tensor], saved: Sequence[torch.Tensor], scale: float) -> None:
    """Keep ``scale`` of the step from ``saved``: θ ← θ_saved + scale · (θ − θ_saved)."""
    if scale >= 1.0:
        return
    with torch.no_grad():
        for param, old in zip(params, saved, strict=True):
            param.copy_(old + scale * (param - old))


class UncheckedStep(NamedTuple):
    """A predicted step, measured at the next forward (``StepLimiter.checked``)."""

    before: Any
    """The forward of the weights the step started from."""
    saved: list[torch.Tensor]
    """Those weights (a shrink moves back toward them)."""
    length_sq: float
    """‖Δθ‖² of the step as taken (after its predicted shrink)."""


class LimitedStep(NamedTuple):
    """What ``StepLimiter.limit`` did to one optimizer step."""

    scale: float
    """The share of the step kept (1: whole)."""
    step_kl: float | None
    """Its KL(before ‖ after) in nats per response token, previewed or predicted (None: the
    step was not limited)."""
    after: Any
    """The forward of the new weights, with gradients, when previewed whole for the next epoch."""
    unchecked: UncheckedStep | None
    """The predicted step, to be measured at the next forward on the batch (``checked``)."""


class PendingStep(NamedTuple):
    """``StepLimiter.before_step``'s record of the weights and forward a step starts from."""

    batch: Any
    before: Any
    saved: list[torch.Tensor]


def _raise_if_not_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise FloatingPointError(f"the {name} is {value!r}; the step cannot be limited")


class StepLimiter(Generic[Batch, Forward]):
    """Shrinks each optimizer step so that KL(before ‖ after) ≤ ``decision.max_preview_kl``.

    Args:
        params: the policy's trainable parameters (those the optimizer steps).
        forward: the policy's forward on a batch (with gradients where the caller enables them);
            its result is handed back to the caller where it can be reused.
        logits: the (B, T, V) next-token logits (or log-probabilities) of a forward's result.
        mask: the (B, T) boolean mask of a batch's response tokens, aligned with ``logits``.
        mode: ``"preview"`` (exact, one forward per step) or ``"predicted"`` (``STEP_LIMIT_MODES``).
        check_finite: called with (name, value) on every measured KL; the default raises
            ``FloatingPointError`` on NaN or inf.

    In a loop that has no forward of its own on the step's batch (a TRL or verl optimizer step),
    call ``before_step(batch)`` just before ``optimizer.step()`` and ``after_step(decision,
    pending)`` just after: one parameter copy and two forwards without gradients per step, one more
    per step that is shrunk (its KL measured again).
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        forward: Callable[[Batch], Forward],
        logits: Callable[[Forward], torch.Tensor],
        mask: Callable[[Batch], torch.Tensor],
        mode: str = "preview",
        check_finite: Callable[[str, float], None] = _raise_if_not_finite,
    ) -> None:
        if mode not in STEP_LIMIT_MODES:
            raise ValueError(f"mode must be one of {STEP_LIMIT_MODES}, got {mode!r}")
        self.params = list(params)
        self.forward = forward
        self.logits = logits
        self.mask = mask
        self.predicted = mode == "predicted"
        self.check_finite = check_finite
        self.curvature: float | None = None
        """KL per squared step length of the last measured step (predicted mode only)."""
        self.measured_at = -1
        """The iteration that measured it: an unchecked step (an iteration's last) is predicted
        only from this iteration's measurement."""

    # ------------------------------------------------------------------ loops without a forward
    def before_step(self, batch: Batch) -> PendingStep:
        """The weights and the (gradient-free) forward on ``batch`` a step starts from."""
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            before = self.forward(batch)
        return PendingStep(batch, before, saved)

    def after_step(self, decision: Decision, pending: PendingStep) -> LimitedStep:
        """Measure the step just taken from ``pending`` exactly and shrink it to the limit.

        KL ∝ step² holds for small steps only (a shrink by 0.12 on a 0.34 M-parameter model left
        2.1 × the limit), so a shrunk step is measured again and shrunk further while it
        overshoots its limit by more than ``STEP_SLACK`` (at most ``MAX_SHRINKS`` forwards more;
        TRPO's line search also checks the KL after each try)."""
        batch, before, saved = pending
        limited = self._previewed(decision, batch, before, saved, False)
        if limited.scale == 1.0:
            return limited
        with torch.no_grad():
            unchecked = UncheckedStep(before, saved, 0.0)
            _, factor = self.checked(decision, batch, self.forward(batch), unchecked, -1)
        return limited._replace(scale=limited.scale * factor)

    # ------------------------------------------------------------------ loops with epochs
    def limit(
        self,
        decision: Decision,
        batch: Batch,
        before: Forward,
        saved: list[torch.Tensor],
        iteration: int,
        keep_forward: bool,
        check_later: bool | None = None,
    ) -> LimitedStep:
        """Shrink the step just taken from ``saved`` (the forward of which is ``before``). With
        ``keep_forward`` a preview's forward runs with gradients and is returned when the step
        was kept whole (it is the next epoch's forward), and a predicted step is returned to be
        measured there; without it (an iteration's last step) a prediction is made only from a
        curvature measured in this iteration, else the step is previewed. ``check_later``
        (default: ``keep_forward``) alone says whether a next forward will measure a predicted
        step: a loop in micro-batches has one (without gradients) but keeps no whole-batch graph,
        and so follows the same schedule of predictions and previews as a whole-batch loop."""
        check_later = keep_forward if check_later is None else check_later
        length_sq = squared_distance(self.params, saved) if self.predicted else 0.0
        fresh = check_later or self.measured_at == iteration
        if self.predicted and self.curvature is not None and fresh:
            step_kl = self.curvature * length_sq
            scale = decision.step_scale(step_kl)
            shrink(self.params, saved, scale)
            unchecked = UncheckedStep(before, saved, scale**2 * length_sq)
            return LimitedStep(scale, step_kl, None, unchecked if check_later else None)
        previewed = self._previewed(decision, batch, before, saved, keep_forward)
        if self.predicted and previewed.step_kl is not None:
            self._measured(previewed.step_kl, length_sq, iteration)
        return previewed

    def checked(
        self,
        decision: Decision,
        batch: Batch,
        new: Forward,
        step: UncheckedStep,
        iteration: int,
    ) -> tuple[Forward, float]:
        """Measure a predicted step at the forward of the weights it reached (and so the next
        prediction's curvature); one that overshot its limit by more than ``STEP_SLACK`` is
        shrunk, its forward redone and measured again (at most ``MAX_SHRINKS`` times). Returns
        (the forward to use, the step's extra shrink factor)."""
        limit, factor = decision.max_preview_kl, 1.0
        for shrinks in range(MAX_SHRINKS + 1):
            step_kl = self.step_kl(batch, step.before, new)
            self._measured(step_kl, step.length_sq * factor**2, iteration)
            if step_kl <= STEP_SLACK * limit or shrinks == MAX_SHRINKS:
                break
            more = decision.step_scale(step_kl)
            shrink(self.params, step.saved, more)
            factor *= more
            new = self.forward(batch)
        return new, factor

    def step_kl(self, batch: Batch, before: Forward, after: Forward) -> float:
        """KL(before ‖ after) per response token, exact over the vocabulary, all processes
        (computed on the response tokens alone: padding can be a third of the positions)."""
        mask = self.mask(batch)
        with torch.no_grad():
            logits_after = self.logits(after).detach()[mask]
            kl = exact_kl_per_token(self.logits(before).detach()[mask], logits_after)
            # exact_kl_per_token reads a NaN log-ratio as a blocked token (0), so a NaN logit
            # after the step would pass as a step of KL 0 (one before it makes the KL NaN anyway).
            poisoned = torch.isnan(logits_after).any()
            means = global_means(kl=kl, poisoned=poisoned.double())
        step_kl = math.nan if means["poisoned"] > 0.0 else means["kl"]
        self.check_finite("KL of the policy step", step_kl)
        # A KL is >= 0, but the float32 sum over a vocabulary of two nearly equal distributions
        # rounds to either side of 0 (-2e-5 nats per token after a step shrunk to ~nothing).
        return max(step_kl, 0.0)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"step_curvature": self.curvature}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``'s snapshot; a malformed one is refused, changing nothing."""
        if not isinstance(state, Mapping) or set(state) != {"step_curvature"}:
            raise ValueError(
                f"a step limiter state is {{'step_curvature': number or None}}, got {state!r}"
            )
        curvature = state["step_curvature"]
        if curvature is not None:
            if isinstance(curvature, bool) or not isinstance(curvature, (int, float)):
                raise ValueError(f"step_curvature must be a number, got {curvature!r}")
            if not (math.isfinite(curvature) and curvature >= 0.0):
                raise ValueError(f"step_curvature must be finite and >= 0, got {curvature!r}")
            curvature = float(curvature)
        self.curvature = curvature

    # ------------------------------------------------------------------ internals
    def _previewed(
        self,
        decision: Decision,
        batch: Batch,
        before: Forward,
        saved: list[torch.Tensor],
        keep_forward: bool,
    ) -> LimitedStep:
        with torch.set_grad_enabled(keep_forward):
            after = self.forward(batch)
        step_kl = self.step_kl(batch, before, after)
        scale = decision.step_scale(step_kl)
        shrink(self.params, saved, scale)
        return LimitedStep(scale, step_kl, after if keep_forward and scale == 1.0 else None, None)

    def _measured(self, step_kl: float, length_sq: float, iteration: int) -> None:
        # A zero step (zero gradient) says nothing of the curvature, nor does one whose KL is
        # below the rounding of its measurement (read as 0 by ``step_kl``): a zero curvature
        # would predict every later step free.
        if length_sq > 0.0 and step_kl > 0.0:
            self.curvature, self.measured_at = step_kl / length_sq, iteration
