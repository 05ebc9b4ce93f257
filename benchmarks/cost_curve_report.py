"""The cost-curve benchmark's analysis (the fitted exponent of cost in parameters, float32 against
bfloat16, micro-batches, generation against bare ``generate``, the trainer against TRL, the goals),
the run's description (machine, trainer source) and its files: ``cost_curve.json``,
``cost_curve.md`` and ``cost_curve.png``."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.cost_curve import STAGES
from benchmarks.trainer_speed import NEW_TOKENS as TRL_LENGTH

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


def analyse(runs: list[dict[str, Any]]) -> dict[str, Any]:
    trainer = [r for r in runs if r["kind"] == "trainer"]
    grid = [r for r in trainer if r["micro_batch_size"] == 0]
    curves = []
    for length in sorted({r["length"] for r in grid}):
        for dtype in ("float32", "bfloat16"):
            points = sorted(
                (r for r in grid if (r["length"], r["dtype"]) == (length, dtype)),
                key=lambda r: r["parameters"],
            )
            if len(points) >= 2:
                curves.append(
                    {
                        "length": length,
                        "dtype": dtype,
                        "parameters": [r["parameters"] for r in points],
                        "seconds": [r["total"] for r in points],
                        "generation_share": [r["generation_share"] for r in points],
                        "exponent": fit_exponent(
                            [r["parameters"] for r in points], [r["total"] for r in points]
                        ),
                        # Fixed per-iteration costs flatten the small end of the curve.
                        "exponent_two_largest": fit_exponent(
                            [r["parameters"] for r in points[-2:]],
                            [r["total"] for r in points[-2:]],
                        ),
                    }
                )
    by_key = {(r["shape"], r["length"], r["dtype"]): r for r in grid}
    precision = []
    for (shape, length, dtype), fp32 in by_key.items():
        bf16 = by_key.get((shape, length, "bfloat16"))
        if dtype == "float32" and bf16 is not None:
            precision.append(
                {
                    "shape": shape,
                    "parameters": fp32["parameters"],
                    "length": length,
                    "seconds_float32": fp32["total"],
                    "seconds_bfloat16": bf16["total"],
                    "bfloat16_over_float32_seconds": bf16["total"] / fp32["total"],
                    "rss_peak_mib_float32": fp32["rss_peak_mib"],
                    "rss_peak_mib_bfloat16": bf16["rss_peak_mib"],
                }
            )
    largest = max(trainer, key=lambda r: r["parameters"])
    micro = sorted(
        (
            r
            for r in trainer
            if r["shape"] == largest["shape"]
            and r["dtype"] == "float32"
            and r["length"] == max(x["length"] for x in trainer)
        ),
        key=lambda r: -(r["micro_batch_size"] or math.inf),  # the whole batch first
    )
    micro_batches = [
        {
            "shape": r["shape"],
            "parameters": r["parameters"],
            "length": r["length"],
            "micro_batch_size": r["micro_batch_size"],
            "seconds": r["total"],
            "rss_peak_mib": r["rss_peak_mib"],
            "rss_growth_mib": r["rss_peak_mib"] - r["rss_after_setup_mib"],
            "rss_peak_mib_by_iteration": r["rss_peak_mib_by_iteration"],
            "step_limit_forwards": r["step_limit_forwards"],
            "cuda_max_allocated_mib": r["cuda_max_allocated_mib"],
        }
        for r in micro
    ]
    peers = []
    for trl in (r for r in runs if r["kind"] == "trl"):
        ours = by_key.get((trl["shape"], TRL_LENGTH, "float32"))
        if ours is not None:
            peers.append(
                {
                    "shape": trl["shape"],
                    "parameters": trl["parameters"],
                    "trainer_tokens_per_second": ours["tokens_per_second"],
                    "trl_tokens_per_second": trl["tokens_per_second"],
                    "trainer_over_trl": ours["tokens_per_second"] / trl["tokens_per_second"],
                    "trl_seconds_per_step": trl["total"],
                    "trl_mean_completion_length": trl["mean_completion_length"],
                    "trl_rss_peak_mib": trl["rss_peak_mib"],
                }
            )
    worst_generation = max(grid, key=lambda r: r["generate_over_bare"])
    goals = {
        "trainer_over_trl": {
            "goal": f">= {GOAL_OVER_TRL} at every size",
            "worst": min((p["trainer_over_trl"] for p in peers), default=None),
            "holds": bool(peers) and all(p["trainer_over_trl"] >= GOAL_OVER_TRL for p in peers),
        },
        "generate_over_bare": {
            "goal": f"<= {GOAL_GENERATE_OVER_BARE} in every configuration",
            "worst": worst_generation["generate_over_bare"],
            "worst_at": {k: worst_generation[k] for k in ("shape", "length", "dtype")},
            "holds": all(r["generate_over_bare"] <= GOAL_GENERATE_OVER_BARE for r in grid),
        },
    }
    return {
        "curves": curves,
        "precision": precision,
        "micro_batches": micro_batches,
        "peers": peers,
        "goals": goals,
    }


# ---------------------------------------------------------------------------- meta
def cpu_model() -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else None


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    import torch

    return {
        "platform": platform.platform(),
        "processor": cpu_model() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "transformers": version("transformers"),
        "trl": version("trl"),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def trainer_source(root: Path) -> dict[str, str]:
    """The commit and a hash of the trainer's source as measured (its tree may hold uncommitted
    edits: the hash tells two runs of different code apart)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((root / "reference_trainer").rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    return {"git_head": head or "unknown", "reference_trainer_sha256": digest.hexdigest()[:16]}


# ---------------------------------------------------------------------------- files
Column = tuple[str, Callable[[dict[str, Any]], str]]
"""A table column: its header and how a row's cell is written."""


def _table(columns: Sequence[Column], rows: Iterable[dict[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(cell(row) for _, cell in columns) + " |" for row in rows]


def _fixed(key: str, digits: int) -> Column:
    return key, lambda row: f"{row[key]:.{digits}f}"


def _mib(header: str, key: str) -> Column:
    return header, lambda row: "—" if row[key] is None else f"{row[key]:.0f}"


def _millions(parameters: int) -> str:
    return f"{parameters / 1e6:.2f} M"


MODEL_COLUMNS: list[Column] = [
    ("model", lambda x: x["name"]),
    *((k, lambda x, k=k: str(x[k])) for k in ("n_embd", "n_layer", "n_head", "n_positions")),
    ("parameters", lambda x: f"{x['parameters']:,}"),
]
RUN_COLUMNS: list[Column] = [
    ("model", lambda r: r["shape"]),
    ("length", lambda r: str(r["length"])),
    ("dtype", lambda r: r["dtype"]),
    *(_fixed(stage, 4) for stage in STAGES),
    _fixed("total", 3),
    ("share", lambda r: f"{100 * r['generation_share']:.0f}%"),
    ("bare generate", lambda r: f"{r['bare_generate']:.4f}"),
    ("× bare", lambda r: f"{r['generate_over_bare']:.2f}"),
    ("tokens/s", lambda r: f"{r['tokens_per_second']:.0f}"),
    ("limit forwards", lambda r: f"{r['step_limit_forwards']:.1f}"),
    _mib("peak RSS MiB", "rss_peak_mib"),
    _mib("CUDA MiB", "cuda_max_allocated_mib"),
]
PRECISION_COLUMNS: list[Column] = [
    ("model", lambda p: p["shape"]),
    ("length", lambda p: str(p["length"])),
    ("s float32", lambda p: f"{p['seconds_float32']:.3f}"),
    ("s bfloat16", lambda p: f"{p['seconds_bfloat16']:.3f}"),
    ("bf16 / fp32 time", lambda p: f"{p['bfloat16_over_float32_seconds']:.2f}"),
    _mib("peak RSS MiB fp32", "rss_peak_mib_float32"),
    _mib("peak RSS MiB bf16", "rss_peak_mib_bfloat16"),
]
MICRO_COLUMNS: list[Column] = [
    ("micro_batch_size", lambda x: str(x["micro_batch_size"] or "0 (whole batch)")),
    _fixed("seconds", 3),
    ("limit forwards", lambda x: f"{x['step_limit_forwards']:.1f}"),
    _mib("peak RSS MiB", "rss_peak_mib"),
    _mib("growth MiB", "rss_growth_mib"),
    _mib("CUDA MiB", "cuda_max_allocated_mib"),
    (
        "peak RSS MiB after each iteration",
        lambda x: " / ".join(f"{v:.0f}" for v in x["rss_peak_mib_by_iteration"]),
    ),
]
PEER_COLUMNS: list[Column] = [
    ("model", lambda p: p["shape"]),
    ("trainer tokens/s", lambda p: f"{p['trainer_tokens_per_second']:.0f}"),
    ("TRL tokens/s", lambda p: f"{p['trl_tokens_per_second']:.0f}"),
    ("trainer / TRL", lambda p: f"{p['trainer_over_trl']:.2f}"),
    ("TRL s/step", lambda p: f"{p['trl_seconds_per_step']:.3f}"),
    ("TRL mean length", lambda p: f"{p['trl_mean_completion_length']:.1f}"),
    _mib("TRL peak RSS MiB", "trl_rss_peak_mib"),
]


def markdown(
    meta: dict[str, Any],
    models: dict[str, dict[str, Any]],
    runs: list[dict[str, Any]],
    analysis: dict[str, Any],
) -> str:
    m, plan = meta["machine"], meta["plan"]
    grid = [r for r in runs if r["kind"] == "trainer" and r["micro_batch_size"] == 0]
    dtypes_by_length = {
        length: sorted({r["dtype"] for r in grid if r["length"] == length})
        for length in sorted({r["length"] for r in grid})
    }
    curves = analysis["curves"]
    seconds = [dict(zip(c["parameters"], c["seconds"], strict=True)) for c in curves]
    curve_columns: list[Column] = [
        ("parameters", lambda row: row["label"]),
        *(
            (f"{c['length']} tokens, {c['dtype']}", lambda row, i=i: row["cells"][i])
            for i, c in enumerate(curves)
        ),
    ]
    curve_rows = [
        {"label": _millions(p), "cells": [f"{s[p]:.3f}" if p in s else "—" for s in seconds]}
        for p in sorted(x["parameters"] for x in models.values())
    ] + [
        {"label": "**k**", "cells": [f"**{c['exponent']:.2f}**" for c in curves]},
        {"label": "k, two largest", "cells": [f"{c['exponent_two_largest']:.2f}" for c in curves]},
    ]
    micro = analysis["micro_batches"]
    goals = analysis["goals"]
    trl, gen = goals["trainer_over_trl"], goals["generate_over_bare"]
    worst_at = gen["worst_at"]
    lines = [
        "# Reference trainer: cost against model size",
        "",
        f"Command: `{meta['command']}` ({meta['date']}, {meta['wall_time_s'] / 60:.1f} min).",
        f"Machine: {m['processor']}, {m['cpu_cores']} cores (load average "
        f"{m['load_average_at_start']} at the start), {plan['threads']} torch threads, "
        f"torch {m['torch']}, transformers {m['transformers']}, TRL {m['trl']}"
        + (f", CUDA {m['cuda']}." if m["cuda"] else ", no CUDA.")
        + f" Trainer source: commit {meta['source']['git_head']}, reference_trainer/ sha256 "
        f"{meta['source']['reference_trainer_sha256']} (uncommitted edits included).",
        "",
        "Method: GPT-2 models with random weights (the prepared default's tokenizer and prompts), "
        f"kl-budget, VADER reward, {meta['batch_size']} prompts per iteration, every response "
        "exactly its length (min_new_tokens = max_new_tokens). Each configuration runs in a fresh "
        f"process: {plan['warmup']} warm-up iteration(s), then the median of "
        f"{plan['iterations']} timed ones ({plan['largest_iterations']} for the largest model); "
        "the 1-minute load average at each configuration's end is in the json. Peak RSS is that "
        "process's `ru_maxrss`. After every iteration the same process times a bare "
        "`model.generate` of the iteration's prompts (same sampling settings and precision, KV "
        "cache). dtypes measured per length: "
        + ", ".join(f"{length}: {'/'.join(d)}" for length, d in dtypes_by_length.items())
        + ".",
        "",
        "## Models",
        "",
        *_table(MODEL_COLUMNS, ({"name": name, **x} for name, x in models.items())),
        "",
        "## Seconds per iteration and the fitted exponent (seconds ∝ parameters^k)",
        "",
        *_table(curve_columns, curve_rows),
        "",
        "## Where the time goes (seconds, medians) and generation against bare generate",
        "",
        "share: generation / total; × bare: the generation stage / bare generate; limit forwards: "
        "forwards the step limiter ran itself per timed iteration (mean; a predicted step that "
        "overshot is redone: one more forward, and in a whole batch a second graph held at "
        "once). Each stage is its own median, so the stages need not add up to the total.",
        "",
        *_table(
            RUN_COLUMNS, sorted(grid, key=lambda r: (r["parameters"], r["length"], r["dtype"]))
        ),
        "",
        "## bfloat16 (autocast, float32 master weights) against float32",
        "",
        *_table(PRECISION_COLUMNS, analysis["precision"]),
        "",
        f"## Micro-batches ({micro[0]['shape']}, {_millions(micro[0]['parameters'])}, float32, "
        f"{micro[0]['length']} tokens)",
        "",
        "growth: peak RSS minus the peak once the trainer was built (models, no optimizer state).",
        "",
        *_table(MICRO_COLUMNS, micro),
        "",
        f"## Against TRL GRPOTrainer ({TRL_LENGTH} tokens, float32, same run)",
        "",
        "TRL: `benchmarks.trainer_speed.measure_trl_grpo` (16 prompts × 2 generations, at most "
        f"{TRL_LENGTH} tokens, one optimizer step per generation; tokens/s = completion tokens "
        "over the step's wall time; it runs on the CPU even where CUDA is present). The trainer: "
        "its tokens/s (response tokens over the iteration's seconds) at the same length.",
        "",
        *_table(PEER_COLUMNS, analysis["peers"]),
        "",
        "## Goals",
        "",
        f"- Trainer tokens/s ≥ {GOAL_OVER_TRL} × TRL's at every size: "
        + ("**holds**" if trl["holds"] else "**does not hold**")
        + (
            " (no TRL measurement)."
            if trl["worst"] is None
            else f" (lowest ratio {trl['worst']:.2f}; "
            + ", ".join(f"{p['shape']}: {p['trainer_over_trl']:.2f}" for p in analysis["peers"])
            + ")."
        ),
        f"- Generation within {GOAL_GENERATE_OVER_BARE} × bare generate: "
        + ("**holds**" if gen["holds"] else "**does not hold**")
        + f" (worst {gen['worst']:.2f} at {worst_at['shape']}, {worst_at['length']} tokens, "
        f"{worst_at['dtype']}).",
    ]
    return "\n".join(lines) + "\n"


def plot(analysis: dict[str, Any], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cost, share) = plt.subplots(1, 2, figsize=(11, 4.2))
    for curve in analysis["curves"]:
        style = "-" if curve["dtype"] == "float32" else "--"
        label = f"{curve['length']} tokens, {curve['dtype']} (k = {curve['exponent']:.2f})"
        cost.loglog(curve["parameters"], curve["seconds"], style, marker="o", label=label)
        share.semilogx(
            curve["parameters"],
            [100 * s for s in curve["generation_share"]],
            style,
            marker="o",
            label=label,
        )
    cost.set(xlabel="parameters", ylabel="seconds per iteration (median)", title="Cost")
    cost.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    cost.yaxis.set_minor_locator(matplotlib.ticker.LogLocator(subs=(2, 3, 5)))
    cost.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    share.set(xlabel="parameters", ylabel="generation share of the iteration (%)", ylim=(0, 100))
    share.set_title("Where the time goes")
    for axes in (cost, share):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(
    out: Path, meta: dict[str, Any], models: dict[str, dict[str, Any]], runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Analyse ``runs`` and write the three files under ``out``; returns the json's content."""
    out.mkdir(parents=True, exist_ok=True)
    analysis = analyse(runs)
    report = {"meta": meta, "models": models, "runs": runs, "analysis": analysis}
    (out / "cost_curve.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "cost_curve.md").write_text(markdown(meta, models, runs, analysis))
    plot(analysis, out / "cost_curve.png")
    print((out / "cost_curve.md").read_text())
    return report
