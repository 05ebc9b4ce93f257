"""Periodic evaluation on held-out prompts: what the policy does on prompts it never trains on.

Batch-level gold is noisy (≈ 0.04 per batch of 32 on the sentiment task), so a peak of running
means overstates any fall. An evaluation scores one fixed set of prompts (``eval_prompts`` of
them, held out of every training batch) with one fixed stream of sampling noise (the same seed at
every evaluation: common random numbers), so that two evaluations differ by what the policy
learned, not by which prompts or samples they drew. It runs in a forked RNG: the training streams
continue exactly as without it. Logged as ``eval_*`` in the row of the iteration it follows;
``gold drawdown`` = the best evaluation's gold − the last one's (``run_dir/report.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from safecontrol.torch import entropy_from_logits, global_means, kl_per_token

from . import ranks
from .batch_metrics import distinct_1
from .rollout import ForwardResult, Rollout
from .tasks.rewards import RewardFn, checked_rewards

EVAL_SEED = 7919
"""Added to the run's seed for the evaluation's sampling noise (any fixed offset would do: it only
has to differ from the training streams' seeds)."""


def split_prompts(prompts: list[str], held_out: int) -> tuple[list[str], list[str]]:
    """(training prompts, held-out prompts): the last ``held_out`` of the set are held out."""
    if held_out >= len(prompts):
        raise ValueError(
            f"eval_prompts={held_out} leaves none of the {len(prompts)} prompts to train on"
        )
    return prompts[:-held_out], prompts[-held_out:]


@dataclass(frozen=True)
class Evaluation:
    """How a trainer evaluates: its held-out prompts and the pieces of its own loop it reuses."""

    prompts: list[str]
    seed: int
    chunk: int
    """Prompts sampled at once (the run's batch size: no more memory than training needs)."""
    sample: Callable[[list[str]], Rollout]
    forward: Callable[[Rollout], tuple[ForwardResult, torch.Tensor]]
    """The policy's forward on a rollout and the reference's log-probabilities of its tokens."""
    proxy: RewardFn
    gold: RewardFn | None
    reward_timeout: float

    def run(self, device: torch.device) -> dict[str, float]:
        """The ``eval_*`` metrics of the policy now, over every process's share of the prompts."""
        start = time.perf_counter()
        shard = self.prompts[ranks.rank() :: ranks.world()]
        sums = {"proxy": 0.0, "gold": 0.0}
        token_stats: dict[str, list[torch.Tensor]] = {"kl": [], "entropy": [], "mask": []}
        completions: list[str] = []
        lengths: list[torch.Tensor] = []
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(self.seed + EVAL_SEED + ranks.rank())
            for begin in range(0, len(shard), self.chunk):
                rollout = self.sample(shard[begin : begin + self.chunk])
                sums["proxy"] += sum(self._score(self.proxy, rollout))
                if self.gold is not None:
                    sums["gold"] += sum(self._score(self.gold, rollout))
                result, reference_logp = self.forward(rollout)
                token_stats["kl"].append(kl_per_token(result.logp, reference_logp, "k3").flatten())
                token_stats["entropy"].append(entropy_from_logits(result.logits).flatten())
                token_stats["mask"].append(rollout.response_mask.flatten())
                lengths.append(rollout.response_mask.sum(-1).float())
                completions += rollout.completions
        mask = torch.cat(token_stats["mask"])
        n = torch.tensor([float(len(shard))], device=device)
        means = global_means(
            kl=(torch.cat(token_stats["kl"]), mask),
            entropy=(torch.cat(token_stats["entropy"]), mask),
            response_length=torch.cat(lengths),
            # sums over this rank's prompts, averaged below by the count of all ranks' prompts
            proxy=torch.tensor([sums["proxy"]], device=device),
            gold=torch.tensor([sums["gold"]], device=device),
            n=n,
        )
        metrics = {
            "eval_reward": means["proxy"] / means["n"],
            **({} if self.gold is None else {"eval_gold": means["gold"] / means["n"]}),
            "eval_kl": means["kl"],
            "eval_entropy": means["entropy"],
            "eval_distinct_1": distinct_1(ranks.gather_strings(completions)),
            "eval_response_length": means["response_length"],
        }
        metrics["seconds_eval"] = time.perf_counter() - start
        return metrics

    def _score(self, scorer: RewardFn, rollout: Rollout) -> list[float]:
        return checked_rewards(scorer, rollout.prompts, rollout.completions, self.reward_timeout)
