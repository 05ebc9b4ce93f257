"""What one rollout batch logs beside the losses: the decision's fields, explained variance,
distinct-1 (each a diagnostic of ``metrics.jsonl``, none used by the update)."""

from __future__ import annotations

from typing import Any

import torch

from safecontrol.torch import global_means


def decision_fields(decision: Any) -> dict[str, Any]:
    data = decision.as_dict()
    keep = (
        "coef",
        "budget",
        "threshold",
        "gate",
        "phase",
        "active",
        "kl_predicted",
        "penalty",
        "pid_p",
        "pid_i",
        "pid_d",
        "skipped",
    )
    return {k: data[k] for k in keep if k in data}


def explained_variance(
    returns: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
) -> float | None:
    """1 − Var(returns − values) / Var(returns) over the response tokens of all processes: how
    much of the return the values behind GAE explain (CleanRL's diagnostic); None when the
    returns do not vary."""
    error = returns - values
    m = global_means(y=(returns, mask), y2=(returns**2, mask), e=(error, mask), e2=(error**2, mask))
    var_returns = m["y2"] - m["y"] ** 2
    if not var_returns > 0.0:
        return None
    return 1.0 - (m["e2"] - m["e"] ** 2) / var_returns


def distinct_1(completions: list[str]) -> float:
    words = [w for text in completions for w in text.split()]
    return len(set(words)) / len(words) if words else 0.0
