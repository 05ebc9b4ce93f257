"""One prepared check of the reference trainer on an accelerator: kl-budget in bfloat16 on CUDA.

Builds a prepared-style model directory with no download (a byte-level BPE trained on the Python
language reference that ships with CPython, a randomly initialised GPT-2 of ``--size``: "100m"
about 100 M parameters, "tiny" about 0.1 M for CI), runs ``--iterations`` kl-budget iterations on
``--device`` in ``--dtype`` and prints each one's tokens/s and seconds, then the peak memory (CUDA's
allocator peak on a GPU; the process's peak RSS always). A second trainer with the same seed then
runs one iteration on the CPU in float32, and the first iteration's decision and statistics of both
are printed side by side with their differences. They are not expected to agree (bfloat16 on a GPU
samples other tokens); the check fails (exit status 1) when a run fails or a number is not finite.
The reward is ``alphabetic_share`` below, so no reward package (VADER) is needed.

    python -m benchmarks.speed.gpu_check --device cuda --dtype bfloat16 --size 100m --iterations 3
    python -m benchmarks.speed.gpu_check --device cpu --dtype float32 --size tiny --iterations 1

``scripts/gpu_check.sh`` runs it with the GPU defaults; CI runs the same script tiny on the
CPU.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from reference_trainer.config import PrepareConfig, TrainConfig
from reference_trainer.device import resolve_device
from reference_trainer.prepare.corpus import python_reference
from reference_trainer.prepare.default_model import (
    FORMAT_VERSION,
    MANIFEST,
    PROMPTS,
    is_prepared,
    make_prompts,
    train_tokenizer,
)
from reference_trainer.train import Trainer

SIZES: dict[str, dict[str, int]] = {
    # 14 blocks of width 768 (GPT-2 small's) and a 4096-token vocabulary: ~102 M parameters.
    "100m": {"vocab_size": 4096, "n_layer": 14, "n_embd": 768, "n_head": 12},
    "tiny": {"vocab_size": 400, "n_layer": 2, "n_embd": 64, "n_head": 4},
}
N_POSITIONS = 256
"""Room for a 4-word prompt and any --max-new-tokens a check would ask for."""
N_PROMPTS = 300
COMMAND = "python -m benchmarks.speed.gpu_check"
REWARD = "benchmarks.speed.gpu_check:alphabetic_share"
ITERATION_KEYS = ("seconds_total", "seconds_generate", "tokens_per_second", "kl_k3", "entropy")
COMPARED_STATS = ("kl_k3", "entropy", "reward_mean", "response_length")
DECISION_KEYS = ("coef", "budget", "max_preview_kl")


def alphabetic_share(prompts: list[str], completions: list[str]) -> list[float]:
    """The share of a completion's characters that are letters (0 for an empty one): a reward
    that needs no package and varies across random-model samples, so advantages are not zero."""
    return [sum(ch.isalpha() for ch in text) / len(text) if text else 0.0 for text in completions]


def build_model(directory: Path, size: str, seed: int) -> int:
    """A directory ``is_prepared`` accepts: tokenizer/, model/ (random init), prompts.json and
    prepare.json; returns the model's parameter count."""
    from transformers import GPT2Config, GPT2LMHeadModel

    shape = SIZES[size]
    texts = python_reference()
    # PrepareConfig only carries the sizes here: it checks them as the prepare step would.
    prepare_config = PrepareConfig(
        vocab_size=shape["vocab_size"], n_positions=N_POSITIONS, n_prompts=N_PROMPTS, seed=seed
    )
    tokenizer = train_tokenizer(texts, prepare_config)
    tokenizer.save_pretrained(directory / "tokenizer")
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=N_POSITIONS,
        n_embd=shape["n_embd"],
        n_layer=shape["n_layer"],
        n_head=shape["n_head"],
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    model.save_pretrained(directory / "model")
    prompts = make_prompts(texts, tokenizer, prepare_config)
    (directory / PROMPTS).write_text(json.dumps(prompts))
    (directory / MANIFEST).write_text(json.dumps({"format": FORMAT_VERSION, "gpu_check": size}))
    if not is_prepared(directory):
        raise RuntimeError(f"{directory} is not a prepared model directory the trainer accepts")
    return sum(p.numel() for p in model.parameters())


def make_trainer(
    args: argparse.Namespace, model_dir: Path, run_dir: Path, device: str, dtype: str
) -> Trainer:
    return Trainer(
        TrainConfig(
            model=str(model_dir),
            algo="kl-budget",
            reward=REWARD,
            device=device,
            dtype=dtype,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            min_new_tokens=min(4, args.max_new_tokens),
            micro_batch_size=args.micro_batch_size,
            threads=args.threads,
            run_dir=str(run_dir),
            seed=args.seed,
        )
    )


def first_iteration(metrics: dict[str, Any], decision: dict[str, Any]) -> dict[str, float]:
    """What the comparison shows of one iteration: the decision after it, then its statistics."""
    row = {key: float(decision[key]) for key in DECISION_KEYS if key in decision}
    row.update({key: float(metrics[key]) for key in COMPARED_STATS})
    return row


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # kB on Linux, bytes on macOS


def run_device(args: argparse.Namespace, model_dir: Path, run_dir: Path) -> dict[str, Any]:
    """``--iterations`` iterations on the requested device and dtype: per-iteration rows, the
    first iteration's comparison row, peak memory."""
    trainer = make_trainer(args, model_dir, run_dir, args.device, args.dtype)
    on_cuda = trainer.device.type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(trainer.device)
        print(f"device: {torch.cuda.get_device_name(trainer.device)}")
    rows, first = [], None
    for i in range(args.iterations):
        metrics = trainer.iteration()
        if i == 0:
            first = first_iteration(metrics, trainer.decision.as_dict())
        rows.append({key: float(metrics[key]) for key in ITERATION_KEYS})
        print(
            f"iteration {i + 1}: {metrics['tokens_per_second']:.0f} tokens/s, "
            f"{metrics['seconds_total']:.2f} s ({metrics['seconds_generate']:.2f} s generate), "
            f"kl {metrics['kl_k3']:.3g}, entropy {metrics['entropy']:.3f}, "
            f"coef {metrics['coef']:.3g}, step scale min {metrics['step_scale_min']:.3g}"
        )
    peak_cuda = torch.cuda.max_memory_allocated(trainer.device) if on_cuda else None
    del trainer  # the CPU comparison needs the memory; the GPU's is given back to the driver
    gc.collect()
    if on_cuda:
        torch.cuda.empty_cache()
    return {"iterations": rows, "first": first, "peak_cuda_bytes": peak_cuda}


def run_cpu_reference(args: argparse.Namespace, model_dir: Path, run_dir: Path) -> dict:
    """The same first iteration (same seed, so the same prompts) on the CPU in float32."""
    trainer = make_trainer(args, model_dir, run_dir, "cpu", "float32")
    metrics = trainer.iteration()
    print(
        f"cpu float32 iteration 1: {metrics['seconds_total']:.1f} s, "
        f"{metrics['tokens_per_second']:.0f} tokens/s"
    )
    return {
        "first": first_iteration(metrics, trainer.decision.as_dict()),
        "seconds_total": float(metrics["seconds_total"]),
    }


def comparison(device_row: dict, cpu_row: dict, label: str) -> tuple[dict, list[str]]:
    """Differences (device − CPU) and the printed side-by-side table."""
    difference = {key: device_row[key] - cpu_row[key] for key in device_row if key in cpu_row}
    lines = [
        "first iteration: decision and statistics",
        f"  {'':16} {label:>16} {'cpu float32':>16} {'difference':>12}",
    ]
    for key, delta in difference.items():
        lines.append(f"  {key:16} {device_row[key]:16.6g} {cpu_row[key]:16.6g} {delta:+12.3g}")
    return difference, lines


def non_finite(value: Any, path: str = "") -> list[str]:
    """Paths of the non-finite numbers anywhere in ``value``."""
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in non_finite(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in non_finite(item, f"{path}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [path.lstrip(".")]
    return []


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cpu, cuda, cuda:N, mps or auto")
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--size", default="100m", choices=tuple(SIZES))
    parser.add_argument("--iterations", type=int, default=3)
    # The CPU float32 iteration of the 100 M model is the slow part of the check. Measured on 2
    # shared cores: 21 s for the first iteration of 16 prompts × 32 tokens (14 s warm). 32 × 64
    # is 4× the tokens: ~85 s there, so it stays under 3 minutes even on 2 cores, and the GPU's
    # tokens/s is measured on batches big enough not to be only per-token launch latency.
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--micro-batch-size", type=int, default=0)
    parser.add_argument("--threads", type=int, default=usable_cpus())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="", help="also write the summary here as JSON")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    from transformers.utils import logging

    args = parse_args(argv)
    start = time.perf_counter()
    logging.disable_progress_bar()  # loading and saving bars would bury the check's lines
    resolve_device(args.device)  # a missing GPU fails now, before the model is built
    label = f"{args.device} {args.dtype}"
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        model_dir = Path(scratch) / "model"
        parameters = build_model(model_dir, args.size, args.seed)
        built = time.perf_counter() - start
        print(f"model: {args.size}, {parameters / 1e6:.2f} M parameters (built in {built:.1f} s)")
        print(f"{label}: kl-budget, {args.batch_size} prompts × {args.max_new_tokens} tokens")
        device = run_device(args, model_dir, Path(scratch) / "run-device")
        device_done = time.perf_counter()
        cpu = run_cpu_reference(args, model_dir, Path(scratch) / "run-cpu")
    difference, table = comparison(device["first"], cpu["first"], label)
    peak_rss = peak_rss_bytes()
    summary = {
        "meta": {
            "command": " ".join([COMMAND, *(argv or sys.argv[1:])]),
            "date": time.strftime("%Y-%m-%d"),
            "machine": platform.machine(),
            "torch": torch.__version__,
            "size": args.size,
            "parameters": parameters,
            "device": args.device,
            "dtype": args.dtype,
            "batch_size": args.batch_size,
            "max_new_tokens": args.max_new_tokens,
            "threads": args.threads,
        },
        "iterations": device["iterations"],
        "peak_cuda_bytes": device["peak_cuda_bytes"],
        "peak_rss_bytes": peak_rss,
        "first_iteration": {"device": device["first"], "cpu_float32": cpu["first"]},
        "difference": difference,
        "seconds": {
            "build": built,
            "device_run": device_done - start - built,
            "cpu_float32_iteration": cpu["seconds_total"],
            "total": time.perf_counter() - start,
        },
    }
    if device["peak_cuda_bytes"] is not None:
        print(f"peak CUDA memory allocated: {device['peak_cuda_bytes'] / 2**30:.2f} GiB")
    print(f"peak RSS: {peak_rss / 2**30:.2f} GiB")
    print("\n".join(table))
    print(f"total: {summary['seconds']['total']:.1f} s")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        # Strict JSON has no NaN or infinity: they are written as null (and fail the check below).
        finite_only = json.loads(json.dumps(summary), parse_constant=lambda _: None)
        Path(args.out).write_text(json.dumps(finite_only, indent=2) + "\n")
    bad = non_finite(summary)
    if bad:
        print(f"FAIL: non-finite values: {', '.join(bad)}", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
