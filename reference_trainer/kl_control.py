"""How the trainer drives its controller and turns each decision into the KL term of the loss.

One controller update per rollout batch, from globally reduced detached statistics, through the
uniform contract (``safecontrol.contract``): KL per token, entropy, reward, the batch's episodes
and mean response length. The decision is then applied to the live KL of every PPO epoch through
``safecontrol.torch.kl_penalty``, so the penalty carries gradient (SPEC §2.1–§2.2).
``penalty_mode="detached"`` reproduces the published SAFE code for the ablation: the same
penalty value, added as a constant.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from safecontrol.contract import Controller, DeadBandDecision, Decision
from safecontrol.torch import kl_penalty

from .config import TrainConfig


def update_controller(
    controller: Controller, stats: dict[str, float], n_sequences: int, tokens_per_sequence: float
) -> Decision:
    """One controller step from the batch's global statistics."""
    return controller.update(
        kl=stats["kl"],
        entropy=stats["entropy"],
        reward=stats["reward"],
        n_steps=n_sequences,
        tokens_per_sequence=tokens_per_sequence,
    )


def kl_loss(live_kl: torch.Tensor, decision: Any, config: TrainConfig) -> torch.Tensor:
    """The KL term for the live batch KL (a 0-d tensor with graph)."""
    if not isinstance(decision, DeadBandDecision):
        return kl_penalty(live_kl, decision)
    if config.penalty_mode == "detached":
        kl = float(live_kl.detach())
        if not math.isfinite(kl):  # the loss turns non-finite too: the trainer's guard stops it
            return live_kl.detach()
        return live_kl.new_tensor(decision.loss_at(kl))  # the published bug: no gradient flows
    return kl_penalty(live_kl, decision, mode=config.penalty_mode)
