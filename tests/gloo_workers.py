"""The gloo worker of tests/torch_adapters/test_torch_distributed.py, in a module of its own.

``torch.multiprocessing.spawn`` pickles the worker by module name; the test module's name
(``tests.torch_adapters...``) is not importable in the child when an installed package ships a
top-level ``tests`` package (verl and OpenRLHF wheels do), while this one (``tests/`` is on the
path) always is.
"""

import json
import math

import torch
import torch.distributed as dist

import safecontrol
from safecontrol.torch import (
    global_masked_mean,
    global_means,
    global_measurements,
    global_sum,
    is_distributed,
)

WORLD_SIZE = 2
STEPS = 25


def _rank_batch(step, rank):
    """Rank ``rank``'s batch at ``step``: ranks hold different numbers of samples and tokens."""
    g = torch.Generator().manual_seed(1000 * step + rank)
    batch, seq = 2 + 3 * rank, 4 + 5 * rank
    lengths = torch.randint(1, seq + 1, (batch,), generator=g)
    mask = torch.arange(seq)[None, :] < lengths[:, None]
    drift = 0.04 * step
    kl = (drift + (0.5 + rank) * torch.rand(batch, seq, generator=g)).double()
    kl[~mask] = math.nan  # padding garbage must never reach a statistic
    entropy = (2.5 - 0.05 * step + rank * torch.rand(batch, seq, generator=g)).float()
    reward = 0.02 * step + torch.rand(batch, generator=g) + 0.3 * rank
    return kl, entropy, reward, mask


def _exact_global(step):
    """Token- and sample-weighted means over all ranks' data, computed in one place."""
    batches = [_rank_batch(step, r) for r in range(WORLD_SIZE)]
    kl = torch.cat([b[0][b[3]] for b in batches]).double()
    entropy = torch.cat([b[1][b[3]] for b in batches]).double()
    reward = torch.cat([b[2] for b in batches]).double()
    return {
        "kl": kl.mean().item(),
        "entropy": entropy.mean().item(),
        "reward": reward.mean().item(),
    }


def _worker(rank, init_file, out_dir):
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        assert is_distributed()
        controller = safecontrol.SafeController()
        records = []
        for step in range(STEPS):
            kl, entropy, reward, mask = _rank_batch(step, rank)
            stats = global_measurements(kl=kl, entropy=entropy, reward=reward, mask=mask)
            decision = controller.update(**stats)
            records.append(
                {
                    "stats": stats,
                    "kl_tensor": global_masked_mean(kl, mask).item(),
                    "decision": decision.as_dict(),
                }
            )
        counts = global_sum(torch.tensor([float(mask.sum()), 1.0]))
        empty = global_means(nothing=(kl, torch.zeros_like(mask)))
        result = {
            "records": records,
            "tokens": counts[0].item(),
            "ranks": counts[1].item(),
            "empty_is_nan": math.isnan(empty["nothing"]),
            "state": controller.state_dict(),
        }
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump(result, f)
    finally:
        dist.destroy_process_group()
