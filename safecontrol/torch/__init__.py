"""PyTorch adapters for safecontrol: apply decisions to live tensors, measure what controllers read.

Import this subpackage explicitly (``import safecontrol.torch``); the core ``safecontrol`` never
imports torch.

The loop, once per rollout batch (SPEC §2.2)::

    logp, logp_ref = ...                                   # log-probs of the sampled tokens
    kl_tok = kl_per_token(logp, logp_ref, kind="k3")
    ent_tok = entropy_from_logits(logits, mask)
    stats = global_measurements(kl=kl_tok, entropy=ent_tok, reward=scores, mask=mask)
    decision = controller.update(**stats)                  # detached statistics, host floats
    for epoch in range(ppo_epochs):                        # the decision is fixed meanwhile
        ...
        loss = policy_loss + kl_penalty(kl_per_token(new_logp, logp_ref, "k3"), decision, mask)

Device → host: controllers take Python floats (they also accept numpy scalars and 0-d tensors,
which they convert with ``float``). The one point per update where a device value becomes a host
float is the controller input: ``global_measurements`` / ``global_means`` pack every statistic into
one tensor and make one ``tolist`` call (one synchronisation); passing 0-d tensors straight to
``update`` makes one ``float()`` sync per argument instead. Nothing else in this package leaves
the device: ``kl_penalty`` reads the decision's floats and builds a tensor expression (given a
weight mask rather than a bool one, ``masked_mean`` reads its minimum: one sync, to refuse a
negative weight).
"""

from ..estimators import KL_ESTIMATORS
from .critic import SoftMinCritic, critic_loss, polyak_update, soft_min
from .distributed import (
    global_masked_mean,
    global_means,
    global_measurements,
    global_sum,
    is_distributed,
)
from .entropy import default_chunk_size, entropy_from_logits
from .kl import kl_per_token, masked_mean
from .penalty import PENALTY_MODES, kl_penalty
from .step_limit import (
    STEP_LIMIT_MODES,
    LimitedStep,
    PendingStep,
    StepLimiter,
    UncheckedStep,
    exact_kl_per_token,
)

__all__ = [
    "KL_ESTIMATORS",
    "PENALTY_MODES",
    "STEP_LIMIT_MODES",
    "LimitedStep",
    "PendingStep",
    "SoftMinCritic",
    "StepLimiter",
    "UncheckedStep",
    "critic_loss",
    "default_chunk_size",
    "entropy_from_logits",
    "exact_kl_per_token",
    "global_masked_mean",
    "global_means",
    "global_measurements",
    "global_sum",
    "is_distributed",
    "kl_penalty",
    "kl_per_token",
    "masked_mean",
    "polyak_update",
    "soft_min",
]
