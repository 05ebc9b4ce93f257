"""Apply a controller's decision to the live KL tensor, so the penalty carries gradient.

The published SAFE code turned the penalty into a Python float before adding it to the loss, so the
gate, threshold and PID never reached the gradient (SPEC §2.1). Here the controller decides its
coefficients from detached statistics, once per rollout batch, and ``kl_penalty`` applies them to
the KL of the batch being optimised. Which formula applies is read from the decision's shape
(``safecontrol.contract``), not its class, so a decision of your own controller works as ours do:

    DeadBandDecision, mode "hinge" (default):  P = c · g · max(0, KL − τ)²      (SPEC §1.2)
    DeadBandDecision, mode "coef":             P = β · KL,  β = dP/dKL at the predicted KL
    any other Decision (classic controllers):  P = β · KL

A ``DeadBandDecision`` is any ``Decision`` with ``threshold`` τ, ``gate`` g and ``penalty_coef`` c
(SAFE's ``SafeDecision``). The hinge is exactly its ``loss_at``
(``safecontrol.penalty.dead_band_penalty``) and its derivative ``slope_at``, on a tensor.
"""

from __future__ import annotations

import torch

from .._validation import finite, non_negative, one_of
from ..contract import DeadBandDecision, Decision
from .kl import masked_mean

PENALTY_MODES = ("hinge", "coef")


def kl_penalty(
    kl: torch.Tensor,
    decision: Decision,
    mask: torch.Tensor | None = None,
    mode: str | None = None,
) -> torch.Tensor:
    """The KL loss term of ``decision`` at the live KL; a 0-d tensor with ``kl``'s graph.

    Args:
        kl: the batch KL as a 0-d tensor, or per-token (or per-sequence) KL values that are
            reduced to the batch KL with ``masked_mean(kl, mask)``.
        decision: the latest decision of a controller: any ``safecontrol.contract.Decision``
            (``CoefDecision``, ``SafeDecision`` or your own class with the same members).
        mask: bool or 0/1 weights of ``kl``'s shape, for per-token ``kl``; ``None`` averages all.
        mode: ``"hinge"`` or ``"coef"`` for a ``DeadBandDecision`` (``None`` means ``"hinge"``);
            any other decision is always ``coef · KL`` (``None`` or ``"coef"``).

    The KL fed to the controller and the KL penalised here should come from the same estimator
    and unit (per token, say): the threshold is in the controller's unit.
    """
    if not isinstance(kl, torch.Tensor):
        raise ValueError(f"kl must be a torch.Tensor, got {type(kl).__name__}")
    if not kl.is_floating_point():
        raise ValueError(f"kl must be floating point, got {kl.dtype}")
    if mode is not None:
        mode = one_of("mode", mode, PENALTY_MODES)
    if mask is not None and kl.dim() == 0:
        raise ValueError(f"mask must be None for a 0-d kl, got shape {tuple(mask.shape)}")
    batch_kl = kl if kl.dim() == 0 else masked_mean(kl, mask)

    # The dead-band check first: a DeadBandDecision is also a Decision.
    if isinstance(decision, DeadBandDecision):
        if mode == "coef":
            return non_negative("decision.coef", decision.coef) * batch_kl
        threshold = finite("decision.threshold", decision.threshold)
        scale = non_negative("decision.penalty_coef", decision.penalty_coef) * non_negative(
            "decision.gate", decision.gate
        )
        excess = torch.relu(batch_kl - threshold)
        return scale * excess.square()
    if isinstance(decision, Decision):
        if mode == "hinge":
            raise ValueError(
                f"mode 'hinge' needs a dead-band decision (threshold, gate, penalty_coef: "
                f"safecontrol.contract.DeadBandDecision); a {type(decision).__name__} has none"
            )
        return finite("decision.coef", decision.coef) * batch_kl
    raise ValueError(
        "decision must be a safecontrol.contract.Decision (coef, step, skipped, max_preview_kl, "
        f"loss_at, slope_at, step_scale, as_dict), got {type(decision).__name__}"
    )
