"""One cost-curve configuration measured in its own process (its peak RSS is its own): the
trainer's per-stage medians beside a bare ``model.generate``, or TRL GRPOTrainer's tokens/s. The
result is the job's run record: the job's fields, then what was measured."""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.speed.cost_curve.plan import BATCH, STAGES, Job

RunRecord = dict[str, Any]
"""A configuration's measured row, as stored in ``cost_curve.json``'s ``runs``."""


def peak_memory_mib() -> dict[str, float | None]:
    """This process's peak RSS and, with CUDA, the peak memory torch allocated there."""
    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mib = rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes there, KiB here
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"rss_peak_mib": rss_mib, "cuda_max_allocated_mib": cuda}


def bare_generate_seconds(trainer: Any, prompts: list[str], length: int, dtype: str) -> float:
    """Seconds of ``generate`` alone on ``prompts`` with the trainer's model, sampling settings
    and precision (no tokenising or decoding: the floor of the trainer's generation stage)."""
    import torch

    from reference_trainer import ranks
    from reference_trainer.device import autocast

    model: Any = ranks.unwrapped(trainer.policy)
    tokenizer = trainer.tokenizer
    encoded = tokenizer(prompts, return_tensors="pt", padding=True).to(trainer.device)

    def synchronize() -> None:  # CUDA runs asynchronously: wait for it before reading the clock
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)

    synchronize()
    started = time.perf_counter()
    with torch.no_grad(), autocast(trainer.device, dtype):
        output = model.generate(
            **encoded,
            do_sample=True,
            temperature=trainer.config.temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=length,
            min_new_tokens=length,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            use_cache=True,
        )
    synchronize()
    seconds = time.perf_counter() - started
    if output.shape[1] - encoded["input_ids"].shape[1] != length:
        raise RuntimeError(f"bare generate sampled {output.shape[1]} tokens, not {length}")
    return seconds


def count_step_limit_forwards(trainer: Any) -> list[int]:
    """A counter (one cell) of the forwards the step limiter runs itself (a preview, or a
    predicted step redone after it overshot): the iterations where they happen cost more."""
    counter = [0]
    limiter = trainer.step_limiter
    forward = limiter.forward

    def counted(batch: Any) -> Any:
        counter[0] += 1
        return forward(batch)

    limiter.forward = counted
    return counter


def measure_trainer(job: Job) -> dict[str, Any]:
    """The trainer's per-stage medians for one configuration, and bare generate's."""
    from reference_trainer.config import TrainConfig
    from reference_trainer.train import Trainer

    assert job.length is not None and job.dtype is not None and job.micro_batch_size is not None
    length, dtype = job.length, job.dtype
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(
            TrainConfig(
                model=job.model_dir,
                run_dir=run_dir,
                batch_size=BATCH,
                max_new_tokens=length,
                min_new_tokens=length,
                threads=job.threads,
                dtype=dtype,
                micro_batch_size=job.micro_batch_size,
            )
        )
        setup = peak_memory_mib()
        limit_forwards = count_step_limit_forwards(trainer)
        rows, bare, by_iteration = [], [], []
        for i in range(job.warmup + job.iterations):
            limit_forwards[0] = 0
            row = trainer.iteration()
            prompts = [prompt for prompt, _ in trainer.last_samples]
            seconds = bare_generate_seconds(trainer, prompts, length, dtype)
            by_iteration.append(
                {
                    "seconds_total": row["seconds_total"],
                    "seconds_update": row["seconds_update"],
                    "step_limit_forwards": limit_forwards[0],
                    "step_scale_min": row["step_scale_min"],
                    "rss_peak_mib": peak_memory_mib()["rss_peak_mib"],
                }
            )
            if i >= job.warmup:
                rows.append(row)
                bare.append(seconds)
    result = {stage: statistics.median(r[f"seconds_{stage}"] for r in rows) for stage in STAGES}
    result["total"] = statistics.median(r["seconds_total"] for r in rows)
    result["generation_share"] = statistics.median(
        r["seconds_generate"] / r["seconds_total"] for r in rows
    )
    result["bare_generate"] = statistics.median(bare)
    result["generate_over_bare"] = statistics.median(
        r["seconds_generate"] / b for r, b in zip(rows, bare, strict=True)
    )
    result["tokens_per_second"] = statistics.median(r["tokens_per_second"] for r in rows)
    result["response_length"] = statistics.median(r["response_length"] for r in rows)
    result["device"] = str(trainer.device)
    result["rss_after_setup_mib"] = setup["rss_peak_mib"]
    # Warm-up included: whether memory settles, which iterations redid a step.
    result["by_iteration"] = by_iteration
    result["rss_peak_mib_by_iteration"] = [x["rss_peak_mib"] for x in by_iteration]
    result["step_limit_forwards"] = statistics.mean(
        x["step_limit_forwards"] for x in by_iteration[job.warmup :]
    )
    return {**result, **peak_memory_mib()}


def measure_trl(job: Job) -> dict[str, Any]:
    """TRL GRPOTrainer's tokens/s on the job's model (trainer_speed's peer measurement)."""
    from benchmarks.speed.trl_peer import measure_trl_grpo

    result = measure_trl_grpo(job.iterations, job.warmup, job.threads, job.data_dir)
    return {**result, **peak_memory_mib()}


def worker(job_json: str, out: str) -> None:
    """A subprocess's work: measure the job of ``job_json``, write its run record to ``out``."""
    job = Job(**json.loads(job_json))
    result = measure_trl(job) if job.kind == "trl" else measure_trainer(job)
    # The machine's load, to judge how far other processes disturbed this configuration's times.
    result["load_average_1min_at_end"] = os.getloadavg()[0]
    Path(out).write_text(json.dumps({**job.record(), **result}))
