"""Frontier run records built in memory, for the tests of the frontier's aggregate."""

from __future__ import annotations

from benchmarks.frontier import plan as frontier
from benchmarks.frontier.records import METRICS, RunRecord


def run_record(
    variant: str, seed: int, gold: float, kl: float = 0.5, regime: str = "stress"
) -> RunRecord:
    """A frontier record on the topic task whose every metric is 0.5 but its gold and KL."""
    algo = "fixed-kl" if variant.startswith(("beta", "tr-beta")) else variant
    values = {name: 0.5 for name in METRICS}
    return RunRecord(
        task="topic",
        regime=regime,
        variant=variant,
        seed=seed,
        algo=algo,
        lr=frontier.REGIMES[regime]["lr"],
        steps=100,
        **{**values, "gold_final": gold, "kl_final": kl},
        proxy_crashes=0,
        gold_crashes=0,
    )
