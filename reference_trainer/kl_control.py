"""How each algorithm turns its controller's decision into the KL term of the loss.

One controller update per rollout batch, from globally reduced detached statistics; the decision
is then applied to the live KL of every PPO epoch through ``safecontrol.torch.kl_penalty``, so the
penalty carries gradient (SPEC §2.1–§2.2). ``safe_penalty_mode="detached"`` reproduces the published
code for the ablation: the same penalty value, added as a constant.
"""

from __future__ import annotations

from typing import Any

import torch

from safecontrol import (
    AdaptiveKL,
    FixedKL,
    PIDLagrangianKL,
    SafeController,
)
from safecontrol.torch import kl_penalty

from .config import TrainConfig


def make_controller(config: TrainConfig) -> Any:
    if config.algo == "safe":
        return SafeController(config.safe_config())
    if config.algo == "ppo":
        return FixedKL(config.kl_coef)
    if config.algo == "ppo-adaptive-kl":
        return AdaptiveKL(
            config.kl_coef, config.kl_target * config.max_new_tokens, config.kl_horizon
        )
    return PIDLagrangianKL(target=config.kl_target)


def update_controller(
    controller: Any,
    config: TrainConfig,
    stats: dict[str, float],
    kl_per_sequence: float,
    n_sequences: int,
) -> Any:
    """One controller step; Ziegler's controller reads the per-sequence KL and the batch size."""
    if isinstance(controller, AdaptiveKL):
        return controller.update(kl=kl_per_sequence, n_steps=n_sequences)
    return controller.update(**stats)


def kl_loss(live_kl: torch.Tensor, decision: Any, config: TrainConfig) -> torch.Tensor:
    """The KL term for the live batch KL (a 0-d tensor with graph)."""
    if config.algo != "safe":
        return kl_penalty(live_kl, decision)
    if config.safe_penalty_mode == "detached":
        value = decision.loss_at(float(live_kl.detach()))
        return live_kl.new_tensor(value)  # the published bug: no gradient ever flows
    return kl_penalty(live_kl, decision, mode=config.safe_penalty_mode)
