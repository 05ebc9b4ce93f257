"""The contract every KL controller keeps, so that any loop can drive any controller.

A training loop (our reference trainer, TRL, verl, OpenRLHF, your own) relies on exactly this:

* once per rollout batch, ``decision = controller.update(kl=…, entropy=…, reward=…,
  n_steps=…, tokens_per_sequence=…)`` with detached batch statistics;
* ``decision.coef``: the β to apply to the KL now (dP/dKL at the KL the controller saw);
* ``decision.loss_at(kl)`` / ``decision.slope_at(kl)``: the penalty and its slope at a live KL;
* ``decision.step_scale(preview_kl)``: how much of a tentative optimizer step to keep
  (``max_preview_kl`` is ``inf`` for controllers that never limit a step);
* ``decision.as_dict()``: flat numbers for logging;
* ``controller.state_dict()`` / ``load_state_dict`` (plain strict JSON, bit-identical
  continuation) and ``reset()``.

Units. ``kl`` is always the batch-mean KL *per response token*, in nats, of the estimator the loop
uses; ``tokens_per_sequence`` is the batch-mean response length. A controller whose target is
per sequence (``kl_unit == "per_sequence"``, Ziegler's) converts with it —
KL per sequence = KL per token × tokens per sequence, exactly the mean over sequences of their
summed token KLs — so call sites never special-case a class.

A decision whose penalty is SAFE's dead band (``DeadBandDecision``: ``threshold``, ``gate``,
``penalty_coef``) is applied by ``safecontrol.torch.kl_penalty`` as c·g·max(0, KL − τ)²; any other
decision as ``coef``·KL.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

KL_UNITS = ("per_token", "per_sequence")
"""What the KL of a controller's settings (targets, thresholds) is measured in."""


@runtime_checkable
class Decision(Protocol):
    """What every decision offers a training loop."""

    @property
    def coef(self) -> float:
        """β: the coefficient of a linear KL penalty (dP/dKL at the KL the controller saw)."""
        ...

    @property
    def step(self) -> int:
        """Accepted updates so far."""
        ...

    @property
    def skipped(self) -> int:
        """Updates skipped because a measurement was not finite."""
        ...

    @property
    def max_preview_kl(self) -> float:
        """The KL (per token) a single optimizer step may move the policy; ``inf``: no limit."""
        ...

    def loss_at(self, kl: float) -> float:
        """The penalty at a (finite, per-token) KL."""
        ...

    def slope_at(self, kl: float) -> float:
        """dP/dKL at a (finite, per-token) KL."""
        ...

    def step_scale(self, preview_kl: float) -> float:
        """The share, in (0, 1], of a tentative step whose KL to the current policy is
        ``preview_kl`` that the loop should keep."""
        ...

    def as_dict(self) -> dict[str, Any]:
        """Flat JSON-able fields for logging."""
        ...


@runtime_checkable
class DeadBandDecision(Decision, Protocol):
    """A decision whose penalty is penalty_coef · gate · max(0, KL − threshold)² (SPEC §1.2)."""

    @property
    def threshold(self) -> float: ...

    @property
    def gate(self) -> float: ...

    @property
    def penalty_coef(self) -> float: ...


@runtime_checkable
class Controller(Protocol):
    """A KL controller: one ``update`` per rollout batch, a decision, and a JSON state."""

    kl_unit: ClassVar[str]
    """``"per_token"`` or ``"per_sequence"``: the unit of the controller's own targets."""

    @property
    def decision(self) -> Decision:
        """The current decision (before any update: the initial one)."""
        ...

    def update(
        self,
        *,
        kl: Any,
        entropy: Any = None,
        reward: Any = None,
        n_steps: Any = None,
        tokens_per_sequence: Any = None,
    ) -> Decision:
        """Feed one rollout batch's detached statistics; returns the decision for the next
        update. ``kl`` per token; ``entropy`` nats per token; ``reward`` the batch-mean reward;
        ``n_steps`` episodes in the batch; ``tokens_per_sequence`` the mean response length.
        Arguments a controller does not use are still validated. A rejected update (a
        ``ValueError`` naming the argument) changes nothing."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...

    def reset(self) -> None: ...
