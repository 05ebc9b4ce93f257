"""What a cost-curve run measures: the model shapes, response lengths, precisions and
micro-batches (``Plan``), and the configurations it runs, one ``Job`` each, smallest model first."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

BATCH = 32
"""Prompts per iteration (also the TRL peer's completions per step)."""
N_POSITIONS = 128
"""Context of every built model: the longest prompt (28 tokens) + 48 new tokens fit."""
STAGES = ("generate", "score", "forward", "controller", "update")
"""The trainer's timed stages of one iteration (its ``seconds_<stage>`` metrics)."""
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class Shape:
    """A GPT-2 model's shape; its name keys its cache directory."""

    n_embd: int
    n_layer: int
    n_head: int

    @property
    def name(self) -> str:
        return f"gpt2-{self.n_embd}x{self.n_layer}"


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    shapes: tuple[Shape, ...]
    lengths: tuple[int, ...]
    bfloat16_lengths: tuple[int, ...]
    """The lengths that also run in bfloat16 (float32 runs at every length)."""
    micro_batch_sizes: tuple[int, ...]
    """At the largest shape, the longest length, float32 (0: the whole batch)."""
    trl_shapes: tuple[Shape, ...]
    iterations: int
    largest_iterations: int
    """Timed iterations of the largest model (its iterations dominate the run's time)."""
    warmup: int
    threads: int


FULL_SHAPES = (Shape(64, 4, 4), Shape(128, 6, 4), Shape(256, 7, 8), Shape(512, 10, 8))
"""0.34 M (the default's shape), 1.5 M, 6.1 M and 32.6 M parameters with a 2048-token vocabulary."""
QUICK_SHAPES = (Shape(16, 1, 2), Shape(32, 2, 2))


def make_plan(args: argparse.Namespace) -> Plan:
    """The plan of the command line's flags (``--quick``: tiny models, one iteration)."""
    if args.quick:
        return Plan(
            shapes=QUICK_SHAPES,
            lengths=(8, 16),
            bfloat16_lengths=(8, 16),
            micro_batch_sizes=(0, 8),
            trl_shapes=QUICK_SHAPES,
            iterations=1,
            largest_iterations=1,
            warmup=0,
            threads=args.threads,
        )
    return Plan(
        shapes=FULL_SHAPES,
        lengths=(16, 48),
        bfloat16_lengths=tuple(args.bfloat16_lengths),
        micro_batch_sizes=(0, 16, 8, 4),
        trl_shapes=FULL_SHAPES if args.trl_sizes == "all" else (FULL_SHAPES[0], FULL_SHAPES[-1]),
        iterations=args.iterations,
        largest_iterations=args.largest_iterations,
        warmup=args.warmup,
        threads=args.threads,
    )


@dataclass(frozen=True)
class BuiltModel:
    """A shape as built: its cache directories and parameter count (``cost_curve.json``'s
    ``models`` values)."""

    n_embd: int
    n_layer: int
    n_head: int
    n_positions: int
    parameters: int
    directory: str
    """The prepared-style model directory (``TrainConfig.model``)."""
    data_dir: str
    """The data_dir whose prepared default is this model (where TRL's peer looks)."""


@dataclass(frozen=True)
class Job:
    """One configuration, measured in its own process. A trainer job has a length, a dtype and a
    micro-batch size; a TRL job (``kind == "trl"``) has none of them."""

    shape: str
    parameters: int
    model_dir: str
    data_dir: str
    iterations: int
    warmup: int
    threads: int
    kind: str
    """"trainer" or "trl"."""
    length: int | None = None
    """Response tokens, exactly (min_new_tokens = max_new_tokens)."""
    dtype: str | None = None
    micro_batch_size: int | None = None
    """0: the whole batch in one step."""

    def record(self) -> dict[str, Any]:
        """The job's fields as they head its run record (a TRL job's unset fields left out)."""
        return {key: value for key, value in vars(self).items() if value is not None}

    @property
    def label(self) -> str:
        """The progress line of a job: "kind=trainer, shape=gpt2-64x4, length=16, ..."."""
        keys = ("kind", "shape", "length", "dtype", "micro_batch_size")
        return ", ".join(f"{k}={getattr(self, k)}" for k in keys if getattr(self, k) is not None)


def jobs(plan: Plan, models: dict[str, BuiltModel]) -> list[Job]:
    """Every configuration of ``plan``, smallest model first."""
    largest = max(plan.shapes, key=lambda s: models[s.name].parameters)

    def job(shape: Shape, kind: str, **settings: Any) -> Job:
        model = models[shape.name]
        return Job(
            shape=shape.name,
            parameters=model.parameters,
            model_dir=model.directory,
            data_dir=model.data_dir,
            iterations=plan.largest_iterations if shape == largest else plan.iterations,
            warmup=plan.warmup,
            threads=plan.threads,
            kind=kind,
            **settings,
        )

    result = []
    for shape in plan.shapes:
        for length in plan.lengths:
            for dtype in DTYPES:
                if dtype == "bfloat16" and length not in plan.bfloat16_lengths:
                    continue
                result.append(job(shape, "trainer", length=length, dtype=dtype, micro_batch_size=0))
        if shape in plan.trl_shapes:
            result.append(job(shape, "trl"))
    longest = max(plan.lengths)
    for size in plan.micro_batch_sizes:
        if size:  # 0 ran in the grid above
            result.append(
                job(largest, "trainer", length=longest, dtype="float32", micro_batch_size=size)
            )
    return result
