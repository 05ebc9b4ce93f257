"""Benchmark: chunked ``entropy_from_logits`` vs the naive full-softmax entropy (CPU, float32).

Every measurement runs in a fresh subprocess that builds the logits, resets its peak-RSS mark
(``echo 5 > /proc/self/clear_refs``), runs the variant once to warm up and then ``--calls`` timed
calls. "Extra memory" is the peak RSS (``VmHWM``) minus the RSS just before the first call, i.e.
everything the variant allocates beyond its input, as the kernel saw it; torch's CPU allocator
returns large blocks to the OS, so nothing hides in a cache. The time is the median over all timed
calls of all processes.

    python -m benchmarks.speed.entropy_from_logits              # the committed results
    python -m benchmarks.speed.entropy_from_logits --vocab 32000 --processes 1 --calls 1
    python -m benchmarks.speed.entropy_from_logits --render entropy_from_logits   # md from json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMAND = "python -m benchmarks.speed.entropy_from_logits"
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _variant(name: str, chunk_size: int | None):
    import torch

    from safecontrol.torch import entropy_from_logits

    if name == "naive":
        return lambda z: torch.logsumexp(z, -1) - (torch.softmax(z, -1) * z).sum(-1)
    if name == "categorical":
        return lambda z: torch.distributions.Categorical(logits=z).entropy()
    if name == "chunked":
        return lambda z: entropy_from_logits(z, chunk_size=chunk_size)
    raise ValueError(f"unknown variant {name!r}")


def measure(args: argparse.Namespace) -> None:
    """Child process: one variant, one shape; prints a JSON line."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    chunk_size = None if args.chunk_size in (None, "auto") else int(args.chunk_size)
    fn = _variant(args.variant, chunk_size)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(args.batch, args.seq, args.vocab, generator=generator)
    logits.mul_(3.0)
    with torch.no_grad():
        fn(logits[:1, :2])  # first-call lazy initialisation (imports, thread pool) is not counted
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before_kib = _status_kib("VmRSS")
    times, cpu_times = [], []
    with torch.no_grad():
        for call in range(args.calls + 1):
            start, cpu_start = time.perf_counter(), time.process_time()
            out = fn(logits)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            if call > 0:  # the first call is the warm-up
                times.append(elapsed)
                cpu_times.append(cpu)
            checksum = float(out.double().sum())
            del out
    peak_kib = _status_kib("VmHWM")
    print(
        json.dumps(
            {
                "times_s": times,
                "cpu_times_s": cpu_times,
                "threads": torch.get_num_threads(),
                "extra_peak_bytes": (peak_kib - before_kib) * 1024,
                "logits_bytes": logits.numel() * logits.element_size(),
                "checksum": checksum,
            }
        )
    )


def run_child(variant: str, vocab: int, chunk_size: str, opts: argparse.Namespace) -> dict:
    """One fresh process measuring one variant; also the load average around it."""
    cmd = [sys.executable, "-m", "benchmarks.speed.entropy_from_logits", "--child"]
    cmd += ["--variant", variant, "--vocab", str(vocab)]
    cmd += ["--batch", str(opts.batch), "--seq", str(opts.seq), "--calls", str(opts.calls)]
    cmd += ["--chunk-size", chunk_size, "--threads", str(opts.threads)]
    load_before = os.getloadavg()[0]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    run = json.loads(done.stdout.strip().splitlines()[-1])
    run["load_1min"] = [load_before, os.getloadavg()[0]]
    return run


def summarise(variant: str, vocab: int, chunk_size: str, runs: list[dict]) -> dict:
    times = [t for r in runs for t in r["times_s"]]
    extra = [r["extra_peak_bytes"] for r in runs]
    return {
        "variant": variant,
        "vocab": vocab,
        "chunk_size": chunk_size if variant == "chunked" else None,
        "median_time_s": statistics.median(times),
        "times_s": times,
        "median_cpu_time_s": statistics.median(t for r in runs for t in r["cpu_times_s"]),
        "threads": runs[0]["threads"],
        "median_extra_peak_bytes": statistics.median(extra),
        "extra_peak_bytes": extra,
        "logits_bytes": runs[0]["logits_bytes"],
        "checksums": [r["checksum"] for r in runs],
        "load_1min": [r["load_1min"] for r in runs],
    }


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


NOTES = """\
Notes

- Memory is the kernel's view (peak RSS), so it includes allocator effects: the naive form's
  extra is its two full-size temporaries (softmax(z) and softmax(z)·z, 2 × the logits), the
  chunked form's is its two ``chunk × vocab`` float32 buffers (nothing else of that size: the
  products are formed in place).
- Small chunks keep the buffers in cache and are the fastest with one thread, but every chunk
  runs a handful of OpenMP parallel regions. On an oversubscribed CPU (load above the core count)
  their barriers stall whenever a thread is descheduled, and with two threads small chunks become
  many times slower than the naive form, while large ones stay faster. That is why the CPU
  default is 2**23 elements a chunk (``CPU_CHUNK_ELEMENTS``); pass a smaller ``chunk_size`` on a
  dedicated CPU. Compare the ``--threads 1`` run (``entropy_from_logits_1thread.md``).
- Re-render this page from its .json with ``--render <stem>`` (no measuring).
"""


def write_json(results: list[dict], opts: argparse.Namespace, command: str) -> dict:
    import torch

    from safecontrol.torch import default_chunk_size

    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": command,
        "batch": opts.batch,
        "seq": opts.seq,
        "vocab": opts.vocab,
        "auto_chunk_rows": {str(v): default_chunk_size(v) for v in opts.vocab},
        "dtype": "float32",
        "processes_per_variant": opts.processes,
        "timed_calls_per_process": opts.calls,
        "memory_measure": "peak RSS (VmHWM, reset via /proc/self/clear_refs) minus RSS before "
        "the first call, in a fresh subprocess per measurement",
        "torch": torch.__version__,
        "threads": results[0]["threads"],
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    data = {"meta": meta, "results": results}
    (RESULTS / f"{_stem(opts)}.json").write_text(json.dumps(data, indent=2))
    return data


def _stem(opts: argparse.Namespace) -> str:
    return "entropy_from_logits" if opts.out is None else opts.out


def render_markdown(data: dict) -> str:
    meta, results = data["meta"], data["results"]
    lines = [
        "# `entropy_from_logits`: chunked vs naive full softmax",
        "",
        f"Command (from the repository root): `{meta['command']}`",
        "",
        f"Logits {meta['batch']} × {meta['seq']} × vocab, float32, CPU ({meta['cpu_count']} "
        f"cores, {meta['threads']} torch threads, torch {meta['torch']}), forward only, no grad.",
        f"Time: median of {meta['processes_per_variant']} fresh processes × "
        f"{meta['timed_calls_per_process']} timed calls (after one warm-up call); CPU time is the "
        "process's, all threads. Extra memory: " + meta["memory_measure"] + "; median over the "
        "processes.",
        "",
        "naive = `logsumexp(z) − (softmax(z) · z).sum(−1)`; categorical = "
        "`Categorical(logits=z).entropy()`; chunked = `entropy_from_logits(z, chunk_size=…)` "
        "(auto = `default_chunk_size(vocab)` = "
        + ", ".join(f"{rows} rows at {v}" for v, rows in meta["auto_chunk_rows"].items())
        + ").",
        "",
        "| vocab | variant | chunk (rows) | logits MiB | extra peak MiB | extra / naive "
        "| median time s | time / naive | median CPU time s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for vocab in meta["vocab"]:
        rows = [r for r in results if r["vocab"] == vocab]
        naive = next(r for r in rows if r["variant"] == "naive")
        for r in rows:
            lines.append(
                f"| {vocab} | {r['variant']} | {r['chunk_size'] or ''} | "
                f"{_mib(r['logits_bytes'])} | {_mib(r['median_extra_peak_bytes'])} | "
                f"{r['median_extra_peak_bytes'] / naive['median_extra_peak_bytes']:.4f} | "
                f"{r['median_time_s']:.3f} | "
                f"{r['median_time_s'] / naive['median_time_s']:.3f} | "
                f"{r['median_cpu_time_s']:.3f} |"
            )
    loads = [x for r in results for pair in r["load_1min"] for x in pair]
    lines += [
        "",
        f"1-minute load average around the runs: {min(loads):.2f}–{max(loads):.2f} on "
        f"{meta['cpu_count']} cores (the machine is shared; variants are interleaved in rounds so "
        "load from elsewhere hits them alike; per-run times and loads are in the .json).",
        "",
        "Goal: chunked (auto) extra peak ≤ 1/8 of naive at ≤ 1.15× its time.",
        "",
    ]
    for vocab in meta["vocab"]:
        rows = [r for r in results if r["vocab"] == vocab]
        naive = next(r for r in rows if r["variant"] == "naive")
        auto = next(r for r in rows if r["variant"] == "chunked" and r["chunk_size"] == "auto")
        mem = auto["median_extra_peak_bytes"] / naive["median_extra_peak_bytes"]
        speed = auto["median_time_s"] / naive["median_time_s"]
        verdict = "met" if mem <= 1 / 8 and speed <= 1.15 else "NOT met"
        lines.append(
            f"- vocab {vocab}: memory {mem:.4f} × naive, time {speed:.3f} × naive: goal {verdict}."
        )
    return "\n".join([*lines, "", NOTES])


def main() -> None:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="chunked", help=argparse.SUPPRESS)
    parser.add_argument("--vocab", type=int, nargs="+", default=[32000, 152064])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument(
        "--processes", type=int, default=3, help="rounds: fresh processes per variant"
    )
    parser.add_argument("--calls", type=int, default=3, help="timed calls per process")
    parser.add_argument(
        "--chunk-sizes",
        nargs="+",
        default=["auto", "1", "4", "16", "64", "256", "1024"],
        help="chunked variants to run ('auto' is the default chunk size)",
    )
    parser.add_argument("--chunk-size", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--categorical", action="store_true", help="also time Categorical")
    parser.add_argument("--render", default=None, help="re-render results/<stem>.md from .json")
    parser.add_argument("--out", default=None, help="result file stem (default the committed one)")
    opts = parser.parse_args()
    if opts.render:
        data = json.loads((RESULTS / f"{opts.render}.json").read_text())
        (RESULTS / f"{opts.render}.md").write_text(render_markdown(data))
        return
    if opts.child:
        opts.vocab = opts.vocab[0]
        measure(opts)
        return

    command = " ".join([COMMAND, *sys.argv[1:]])
    results = []
    for vocab in opts.vocab:
        variants = [("naive", "auto")]
        if opts.categorical:
            variants.append(("categorical", "auto"))
        variants += [("chunked", c) for c in opts.chunk_sizes]
        # Rounds interleave the variants, so a burst of load from elsewhere hits all of them.
        runs: dict[tuple[str, str], list[dict]] = {v: [] for v in variants}
        for round_ in range(opts.processes):
            for variant, chunk in variants:
                run = run_child(variant, vocab, chunk, opts)
                runs[variant, chunk].append(run)
                print(
                    f"round {round_} vocab {vocab:>6} {variant:>11} chunk {chunk:>5}: "
                    f"{statistics.median(run['times_s']):.3f} s, "
                    f"extra {_mib(run['extra_peak_bytes'])} MiB, load {run['load_1min']}",
                    flush=True,
                )
        results += [summarise(v, vocab, c, runs[v, c]) for v, c in variants]
    data = write_json(results, opts, command)
    (RESULTS / f"{_stem(opts)}.md").write_text(render_markdown(data))


if __name__ == "__main__":
    main()
