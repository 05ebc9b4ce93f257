"""How the reference trainer's cost grows with model size: seconds per iteration, peak memory and
where the time goes, beside a bare ``model.generate`` and TRL's GRPOTrainer.

GPT-2 models of four sizes (0.34 M to 32.6 M parameters, random init: weights do not change the
cost) share the prepared default's tokenizer and prompts; each is cached as a prepared-style
directory under ``<data-dir>/cost_curve/``. Every configuration (model size × response length 16 /
48 × float32 / bfloat16, and micro-batch sizes 0 / 16 / 8 / 4 at the largest size) runs in a
fresh subprocess, so its peak RSS (``ru_maxrss``; on CUDA also ``max_memory_allocated``) is its own:
``--warmup`` iterations, then the median of ``--iterations`` timed ones (``--largest-iterations``
for the largest model), 32 prompts, kl-budget, VADER reward, ``min_new_tokens = max_new_tokens`` so
that every response has exactly the length; the step limiter's own forwards are counted.
After each iteration the same process times a bare ``model.generate`` of the iteration's 32 prompts
with the trainer's sampling settings: the floor of a trainer that samples with HF generate. TRL's
GRPOTrainer (``benchmarks.trainer_speed.measure_trl_grpo``: 32 completions of at most 16 tokens)
runs on the same models in the same run; its tokens/s are compared with the trainer's at length 16.
``benchmarks/cost_curve_report.py`` fits the exponent of cost in parameters and writes
``cost_curve.{json,md,png}`` under ``--out``.

    python -m benchmarks.cost_curve                 # ~15 minutes on 2 quiet cores
    python -m benchmarks.cost_curve --quick         # tiny models, 1 iteration: a smoke test
    python -m benchmarks.cost_curve --render        # the md and png again from the json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BATCH = 32
"""Prompts per iteration (also the TRL peer's completions per step)."""
N_POSITIONS = 128
"""Context of every built model: the longest prompt (28 tokens) + 48 new tokens fit."""
STAGES = ("generate", "score", "forward", "controller", "update")


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


# ---------------------------------------------------------------------------- models
def model_data_dir(cache: Path, shape: Shape) -> Path:
    """A data_dir whose prepared "default" is this shape's model: ``TrainConfig(model=...)`` and
    ``measure_trl_grpo(data_dir=...)`` (which loads ``PrepareConfig(data_dir).directory()``) then
    load the same directory."""
    return cache / shape.name


def build_model(cache: Path, shape: Shape, source: Path, seed: int = 0) -> tuple[Path, int]:
    """(directory, parameter count) of ``shape`` with ``source``'s tokenizer and prompts, built
    once (random init) and reused while its manifest matches."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from reference_trainer.config import PrepareConfig
    from reference_trainer.prepare import default_model as prepared

    directory = PrepareConfig(data_dir=str(model_data_dir(cache, shape))).directory()
    wanted = {"shape": asdict(shape), "n_positions": N_POSITIONS, "seed": seed}
    if prepared.is_prepared(directory):
        manifest = json.loads((directory / prepared.MANIFEST).read_text())
        if manifest.get("cost_curve") == wanted:
            return directory, int(manifest["parameters"])
    shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(source / "tokenizer", directory / "tokenizer")
    shutil.copy(source / prepared.PROMPTS, directory / prepared.PROMPTS)
    tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer")
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=N_POSITIONS,
            n_embd=shape.n_embd,
            n_layer=shape.n_layer,
            n_head=shape.n_head,
            bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    model.save_pretrained(directory / "model")
    parameters = sum(p.numel() for p in model.parameters())  # tied embeddings counted once
    manifest = {"format": prepared.FORMAT_VERSION, "parameters": parameters, "cost_curve": wanted}
    # Written last: a build cut short leaves no manifest, so is_prepared refuses it next time.
    (directory / prepared.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return directory, parameters


# ---------------------------------------------------------------------------- one subprocess
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


def measure_trainer(job: dict[str, Any]) -> dict[str, Any]:
    """The trainer's per-stage medians for one configuration, and bare generate's."""
    from reference_trainer.config import TrainConfig
    from reference_trainer.train import Trainer

    length, dtype = job["length"], job["dtype"]
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(
            TrainConfig(
                model=job["model_dir"],
                run_dir=run_dir,
                batch_size=BATCH,
                max_new_tokens=length,
                min_new_tokens=length,
                threads=job["threads"],
                dtype=dtype,
                micro_batch_size=job["micro_batch_size"],
            )
        )
        setup = peak_memory_mib()
        limit_forwards = count_step_limit_forwards(trainer)
        rows, bare, by_iteration = [], [], []
        for i in range(job["warmup"] + job["iterations"]):
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
            if i >= job["warmup"]:
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
        x["step_limit_forwards"] for x in by_iteration[job["warmup"] :]
    )
    return {**result, **peak_memory_mib()}


def measure_trl(job: dict[str, Any]) -> dict[str, Any]:
    """TRL GRPOTrainer's tokens/s on the job's model (trainer_speed's measurement)."""
    from benchmarks.trainer_speed import measure_trl_grpo

    result = measure_trl_grpo(job["iterations"], job["warmup"], job["threads"], job["data_dir"])
    return {**result, **peak_memory_mib()}


def worker(job_json: str, out: str) -> None:
    job = json.loads(job_json)
    result = measure_trl(job) if job["kind"] == "trl" else measure_trainer(job)
    # The machine's load, to judge how far other processes disturbed this configuration's times.
    result["load_average_1min_at_end"] = os.getloadavg()[0]
    Path(out).write_text(json.dumps({**job, **result}))


# ---------------------------------------------------------------------------- the run
def jobs(plan: Plan, models: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every configuration of ``plan``, smallest model first."""

    largest = max(plan.shapes, key=lambda s: models[s.name]["parameters"])

    def job(shape: Shape, **settings: Any) -> dict[str, Any]:
        model = models[shape.name]
        return {
            "shape": shape.name,
            "parameters": model["parameters"],
            "model_dir": model["directory"],
            "data_dir": model["data_dir"],
            "iterations": plan.largest_iterations if shape == largest else plan.iterations,
            "warmup": plan.warmup,
            "threads": plan.threads,
            **settings,
        }

    result = []
    for shape in plan.shapes:
        for length in plan.lengths:
            for dtype in ("float32", "bfloat16"):
                if dtype == "bfloat16" and length not in plan.bfloat16_lengths:
                    continue
                result.append(
                    job(shape, kind="trainer", length=length, dtype=dtype, micro_batch_size=0)
                )
        if shape in plan.trl_shapes:
            result.append(job(shape, kind="trl"))
    longest = max(plan.lengths)
    for size in plan.micro_batch_sizes:
        if size:  # 0 ran in the grid above
            result.append(
                job(largest, kind="trainer", length=longest, dtype="float32", micro_batch_size=size)
            )
    return result


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One configuration in a fresh interpreter (its own peak RSS); its stderr passes through."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        command = [sys.executable, "-m", "benchmarks.cost_curve"]
        subprocess.run([*command, "--worker", json.dumps(job), str(out)], check=True, cwd=ROOT)
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny models, 1 iteration")
    parser.add_argument("--iterations", type=int, default=7, help="timed, per configuration")
    parser.add_argument("--largest-iterations", type=int, default=5, help="timed, largest model")
    parser.add_argument(
        "--bfloat16-lengths", type=int, nargs="+", default=[16, 48], help="also run in bf16"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed, per configuration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--trl-sizes", choices=("all", "ends"), default="all", help="ends: smallest and largest"
    )
    parser.add_argument("--data-dir", default=".data")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument(
        "--render", action="store_true", help="rewrite the md and png from --out's json only"
    )
    parser.add_argument("--worker", nargs=2, metavar=("JOB", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    from benchmarks.cost_curve_report import machine, trainer_source, write_report

    if args.render:
        saved = json.loads((Path(args.out) / "cost_curve.json").read_text())
        write_report(Path(args.out), saved["meta"], saved["models"], saved["runs"])
        return
    from reference_trainer.config import PrepareConfig
    from reference_trainer.prepare.default_model import prepare

    started = time.perf_counter()
    plan = make_plan(args)
    meta = {
        "command": " ".join(["python -m benchmarks.cost_curve", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "batch_size": BATCH,
        "plan": asdict(plan),
        "source": trainer_source(ROOT),
    }
    source = prepare(PrepareConfig(data_dir=args.data_dir, threads=args.threads), progress=False)
    cache = Path(args.data_dir) / "cost_curve"
    models = {}
    for shape in plan.shapes:
        directory, parameters = build_model(cache, shape, source)
        models[shape.name] = {
            **asdict(shape),
            "n_positions": N_POSITIONS,
            "parameters": parameters,
            "directory": str(directory),
            "data_dir": str(model_data_dir(cache, shape)),
        }
    runs = []
    for job in jobs(plan, models):
        job_started = time.perf_counter()
        runs.append(run_job(job))
        settings = ", ".join(
            f"{k}={job[k]}"
            for k in ("kind", "shape", "length", "dtype", "micro_batch_size")
            if k in job
        )
        print(f"{settings}: {time.perf_counter() - job_started:.0f} s", flush=True)
    meta["wall_time_s"] = time.perf_counter() - started
    write_report(Path(args.out), meta, models, runs)


if __name__ == "__main__":
    main()
