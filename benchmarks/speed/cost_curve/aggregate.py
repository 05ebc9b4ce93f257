"""The cost curve's runs → its typed analysis: the fitted exponent of cost in parameters, float32
against bfloat16, micro-batches, the trainer against TRL, and the goals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.speed.cost_curve.measure import RunRecord
from benchmarks.speed.cost_curve.plan import DTYPES
from benchmarks.speed.trl_peer import NEW_TOKENS as TRL_LENGTH

GOAL_OVER_TRL = 1.5
"""The trainer's tokens/s over TRL GRPOTrainer's, at every size (at least)."""
GOAL_GENERATE_OVER_BARE = 1.2
"""The trainer's generation stage over a bare ``model.generate`` of the same batch (at most)."""


def fit_exponent(parameters: Sequence[float], seconds: Sequence[float]) -> float:
    """Least-squares slope of log(seconds) against log(parameters): cost ∝ parameters^slope."""
    if len(set(parameters)) < 2:
        raise ValueError("an exponent needs at least two distinct model sizes")
    slope, _ = np.polyfit(np.log(parameters), np.log(seconds), 1)
    return float(slope)


@dataclass(frozen=True)
class Curve:
    """Seconds per iteration against parameters at one length and precision."""

    length: int
    dtype: str
    parameters: list[int]
    seconds: list[float]
    generation_share: list[float]
    exponent: float
    exponent_two_largest: float
    """Fixed per-iteration costs flatten the small end of the curve: the slope of its end."""


@dataclass(frozen=True)
class PrecisionPair:
    """One shape and length in float32 and in bfloat16."""

    shape: str
    parameters: int
    length: int
    seconds_float32: float
    seconds_bfloat16: float
    bfloat16_over_float32_seconds: float
    rss_peak_mib_float32: float
    rss_peak_mib_bfloat16: float


@dataclass(frozen=True)
class MicroBatchRow:
    """The largest model at the longest length in float32, at one micro-batch size."""

    shape: str
    parameters: int
    length: int
    micro_batch_size: int
    seconds: float
    rss_peak_mib: float
    rss_growth_mib: float
    """Peak RSS minus the peak once the trainer was built."""
    rss_peak_mib_by_iteration: list[float]
    step_limit_forwards: float
    cuda_max_allocated_mib: float | None


@dataclass(frozen=True)
class PeerRow:
    """The trainer against TRL GRPOTrainer on one model, at TRL's length in float32."""

    shape: str
    parameters: int
    trainer_tokens_per_second: float
    trl_tokens_per_second: float
    trainer_over_trl: float
    trl_seconds_per_step: float
    trl_mean_completion_length: float
    trl_rss_peak_mib: float


@dataclass(frozen=True)
class TrlGoal:
    goal: str
    worst: float | None
    """The lowest trainer / TRL ratio (None: TRL not measured)."""
    holds: bool


@dataclass(frozen=True)
class Configuration:
    shape: str
    length: int
    dtype: str


@dataclass(frozen=True)
class GenerationGoal:
    goal: str
    worst: float
    worst_at: Configuration
    holds: bool


@dataclass(frozen=True)
class Goals:
    trainer_over_trl: TrlGoal
    generate_over_bare: GenerationGoal


@dataclass(frozen=True)
class Analysis:
    """``cost_curve.json``'s ``analysis``."""

    curves: list[Curve]
    precision: list[PrecisionPair]
    micro_batches: list[MicroBatchRow]
    peers: list[PeerRow]
    goals: Goals


def grid_runs(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """The trainer's runs of the size × length × dtype grid (whole batches)."""
    return [r for r in runs if r["kind"] == "trainer" and r["micro_batch_size"] == 0]


def curves(grid: Sequence[RunRecord]) -> list[Curve]:
    result = []
    for length in sorted({r["length"] for r in grid}):
        for dtype in DTYPES:
            points = sorted(
                (r for r in grid if (r["length"], r["dtype"]) == (length, dtype)),
                key=lambda r: r["parameters"],
            )
            if len(points) < 2:
                continue
            parameters = [r["parameters"] for r in points]
            seconds = [r["total"] for r in points]
            result.append(
                Curve(
                    length=length,
                    dtype=dtype,
                    parameters=parameters,
                    seconds=seconds,
                    generation_share=[r["generation_share"] for r in points],
                    exponent=fit_exponent(parameters, seconds),
                    exponent_two_largest=fit_exponent(parameters[-2:], seconds[-2:]),
                )
            )
    return result


def precision_pairs(by_key: dict[tuple[str, int, str], RunRecord]) -> list[PrecisionPair]:
    result = []
    for (shape, length, dtype), fp32 in by_key.items():
        bf16 = by_key.get((shape, length, "bfloat16"))
        if dtype == "float32" and bf16 is not None:
            result.append(
                PrecisionPair(
                    shape=shape,
                    parameters=fp32["parameters"],
                    length=length,
                    seconds_float32=fp32["total"],
                    seconds_bfloat16=bf16["total"],
                    bfloat16_over_float32_seconds=bf16["total"] / fp32["total"],
                    rss_peak_mib_float32=fp32["rss_peak_mib"],
                    rss_peak_mib_bfloat16=bf16["rss_peak_mib"],
                )
            )
    return result


def micro_batches(trainer: Sequence[RunRecord]) -> list[MicroBatchRow]:
    largest = max(trainer, key=lambda r: r["parameters"])
    longest = max(x["length"] for x in trainer)
    rows = sorted(
        (
            r
            for r in trainer
            if r["shape"] == largest["shape"] and r["dtype"] == "float32" and r["length"] == longest
        ),
        key=lambda r: -(r["micro_batch_size"] or math.inf),  # the whole batch first
    )
    return [
        MicroBatchRow(
            shape=r["shape"],
            parameters=r["parameters"],
            length=r["length"],
            micro_batch_size=r["micro_batch_size"],
            seconds=r["total"],
            rss_peak_mib=r["rss_peak_mib"],
            rss_growth_mib=r["rss_peak_mib"] - r["rss_after_setup_mib"],
            rss_peak_mib_by_iteration=r["rss_peak_mib_by_iteration"],
            step_limit_forwards=r["step_limit_forwards"],
            cuda_max_allocated_mib=r["cuda_max_allocated_mib"],
        )
        for r in rows
    ]


def peers(
    runs: Sequence[RunRecord], by_key: dict[tuple[str, int, str], RunRecord]
) -> list[PeerRow]:
    result = []
    for trl in (r for r in runs if r["kind"] == "trl"):
        ours = by_key.get((trl["shape"], TRL_LENGTH, "float32"))
        if ours is not None:
            result.append(
                PeerRow(
                    shape=trl["shape"],
                    parameters=trl["parameters"],
                    trainer_tokens_per_second=ours["tokens_per_second"],
                    trl_tokens_per_second=trl["tokens_per_second"],
                    trainer_over_trl=ours["tokens_per_second"] / trl["tokens_per_second"],
                    trl_seconds_per_step=trl["total"],
                    trl_mean_completion_length=trl["mean_completion_length"],
                    trl_rss_peak_mib=trl["rss_peak_mib"],
                )
            )
    return result


def goals(grid: Sequence[RunRecord], peer_rows: Sequence[PeerRow]) -> Goals:
    worst = max(grid, key=lambda r: r["generate_over_bare"])
    return Goals(
        trainer_over_trl=TrlGoal(
            goal=f">= {GOAL_OVER_TRL} at every size",
            worst=min((p.trainer_over_trl for p in peer_rows), default=None),
            holds=bool(peer_rows) and all(p.trainer_over_trl >= GOAL_OVER_TRL for p in peer_rows),
        ),
        generate_over_bare=GenerationGoal(
            goal=f"<= {GOAL_GENERATE_OVER_BARE} in every configuration",
            worst=worst["generate_over_bare"],
            worst_at=Configuration(worst["shape"], worst["length"], worst["dtype"]),
            holds=all(r["generate_over_bare"] <= GOAL_GENERATE_OVER_BARE for r in grid),
        ),
    )


def analyse(runs: Sequence[RunRecord]) -> Analysis:
    trainer = [r for r in runs if r["kind"] == "trainer"]
    grid = grid_runs(runs)
    by_key = {(r["shape"], r["length"], r["dtype"]): r for r in grid}
    peer_rows = peers(runs, by_key)
    return Analysis(
        curves=curves(grid),
        precision=precision_pairs(by_key),
        micro_batches=micro_batches(trainer),
        peers=peer_rows,
        goals=goals(grid, peer_rows),
    )
