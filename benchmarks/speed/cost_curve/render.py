"""The cost curve's files from its runs and analysis: ``cost_curve.json`` (meta, models, runs,
analysis), ``cost_curve.md`` and ``cost_curve.png``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.speed.cost_curve.aggregate import (
    GOAL_GENERATE_OVER_BARE,
    GOAL_OVER_TRL,
    Analysis,
    MicroBatchRow,
    PeerRow,
    PrecisionPair,
    analyse,
    grid_runs,
)
from benchmarks.speed.cost_curve.measure import RunRecord
from benchmarks.speed.cost_curve.plan import STAGES, BuiltModel
from benchmarks.speed.trl_peer import NEW_TOKENS as TRL_LENGTH

Column = tuple[str, Callable[[Any], str]]
"""A table column: its header and how a row's cell is written."""


def _table(columns: Sequence[Column], rows: Iterable[Any]) -> list[str]:
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(cell(row) for _, cell in columns) + " |" for row in rows]


def _mib(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _millions(parameters: int) -> str:
    return f"{parameters / 1e6:.2f} M"


def _holds(holds: bool) -> str:
    return "**holds**" if holds else "**does not hold**"


MODEL_COLUMNS: list[Column] = [
    ("model", lambda x: x[0]),
    *((k, lambda x, k=k: str(getattr(x[1], k))) for k in ("n_embd", "n_layer", "n_head")),
    ("n_positions", lambda x: str(x[1].n_positions)),
    ("parameters", lambda x: f"{x[1].parameters:,}"),
]
"""Over (name, BuiltModel) pairs."""
RUN_COLUMNS: list[Column] = [
    ("model", lambda r: r["shape"]),
    ("length", lambda r: str(r["length"])),
    ("dtype", lambda r: r["dtype"]),
    *((stage, lambda r, s=stage: f"{r[s]:.4f}") for stage in STAGES),
    ("total", lambda r: f"{r['total']:.3f}"),
    ("share", lambda r: f"{100 * r['generation_share']:.0f}%"),
    ("bare generate", lambda r: f"{r['bare_generate']:.4f}"),
    ("× bare", lambda r: f"{r['generate_over_bare']:.2f}"),
    ("tokens/s", lambda r: f"{r['tokens_per_second']:.0f}"),
    ("limit forwards", lambda r: f"{r['step_limit_forwards']:.1f}"),
    ("peak RSS MiB", lambda r: _mib(r["rss_peak_mib"])),
    ("CUDA MiB", lambda r: _mib(r["cuda_max_allocated_mib"])),
]
"""Over run records."""
PRECISION_COLUMNS: list[Column] = [
    ("model", lambda p: p.shape),
    ("length", lambda p: str(p.length)),
    ("s float32", lambda p: f"{p.seconds_float32:.3f}"),
    ("s bfloat16", lambda p: f"{p.seconds_bfloat16:.3f}"),
    ("bf16 / fp32 time", lambda p: f"{p.bfloat16_over_float32_seconds:.2f}"),
    ("peak RSS MiB fp32", lambda p: _mib(p.rss_peak_mib_float32)),
    ("peak RSS MiB bf16", lambda p: _mib(p.rss_peak_mib_bfloat16)),
]
MICRO_COLUMNS: list[Column] = [
    ("micro_batch_size", lambda x: str(x.micro_batch_size or "0 (whole batch)")),
    ("seconds", lambda x: f"{x.seconds:.3f}"),
    ("limit forwards", lambda x: f"{x.step_limit_forwards:.1f}"),
    ("peak RSS MiB", lambda x: _mib(x.rss_peak_mib)),
    ("growth MiB", lambda x: _mib(x.rss_growth_mib)),
    ("CUDA MiB", lambda x: _mib(x.cuda_max_allocated_mib)),
    (
        "peak RSS MiB after each iteration",
        lambda x: " / ".join(f"{v:.0f}" for v in x.rss_peak_mib_by_iteration),
    ),
]
PEER_COLUMNS: list[Column] = [
    ("model", lambda p: p.shape),
    ("trainer tokens/s", lambda p: f"{p.trainer_tokens_per_second:.0f}"),
    ("TRL tokens/s", lambda p: f"{p.trl_tokens_per_second:.0f}"),
    ("trainer / TRL", lambda p: f"{p.trainer_over_trl:.2f}"),
    ("TRL s/step", lambda p: f"{p.trl_seconds_per_step:.3f}"),
    ("TRL mean length", lambda p: f"{p.trl_mean_completion_length:.1f}"),
    ("TRL peak RSS MiB", lambda p: _mib(p.trl_rss_peak_mib)),
]


def curve_table(analysis: Analysis, models: dict[str, BuiltModel]) -> list[str]:
    """Seconds per iteration by parameters, one column per curve, then the fitted exponents."""
    curves = analysis.curves
    seconds = [dict(zip(c.parameters, c.seconds, strict=True)) for c in curves]
    header = ["parameters", *(f"{c.length} tokens, {c.dtype}" for c in curves)]
    rows = [
        [_millions(p), *(f"{s[p]:.3f}" if p in s else "—" for s in seconds)]
        for p in sorted(x.parameters for x in models.values())
    ]
    rows.append(["**k**", *(f"**{c.exponent:.2f}**" for c in curves)])
    rows.append(["k, two largest", *(f"{c.exponent_two_largest:.2f}" for c in curves)])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def goal_lines(analysis: Analysis) -> list[str]:
    trl, gen = analysis.goals.trainer_over_trl, analysis.goals.generate_over_bare
    ratios = ", ".join(f"{p.shape}: {p.trainer_over_trl:.2f}" for p in analysis.peers)
    at = gen.worst_at
    return [
        f"- Trainer tokens/s ≥ {GOAL_OVER_TRL} × TRL's at every size: "
        + _holds(trl.holds)
        + (
            " (no TRL measurement)."
            if trl.worst is None
            else f" (lowest ratio {trl.worst:.2f}; {ratios})."
        ),
        f"- Generation within {GOAL_GENERATE_OVER_BARE} × bare generate: "
        + _holds(gen.holds)
        + f" (worst {gen.worst:.2f} at {at.shape}, {at.length} tokens, {at.dtype}).",
    ]


def markdown(
    meta: dict[str, Any],
    models: dict[str, BuiltModel],
    runs: Sequence[RunRecord],
    analysis: Analysis,
) -> str:
    m, plan = meta["machine"], meta["plan"]
    grid = grid_runs(runs)
    dtypes_by_length = {
        length: sorted({r["dtype"] for r in grid if r["length"] == length})
        for length in sorted({r["length"] for r in grid})
    }
    micro: list[MicroBatchRow] = analysis.micro_batches
    precision: list[PrecisionPair] = analysis.precision
    peers: list[PeerRow] = analysis.peers
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
        *_table(MODEL_COLUMNS, models.items()),
        "",
        "## Seconds per iteration and the fitted exponent (seconds ∝ parameters^k)",
        "",
        *curve_table(analysis, models),
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
        *_table(PRECISION_COLUMNS, precision),
        "",
        f"## Micro-batches ({micro[0].shape}, {_millions(micro[0].parameters)}, float32, "
        f"{micro[0].length} tokens)",
        "",
        "growth: peak RSS minus the peak once the trainer was built (models, no optimizer state).",
        "",
        *_table(MICRO_COLUMNS, micro),
        "",
        f"## Against TRL GRPOTrainer ({TRL_LENGTH} tokens, float32, same run)",
        "",
        "TRL: `benchmarks.speed.trl_peer.measure_trl_grpo` (16 prompts × 2 generations, at most "
        f"{TRL_LENGTH} tokens, one optimizer step per generation; tokens/s = completion tokens "
        "over the step's wall time; it runs on the CPU even where CUDA is present). The trainer: "
        "its tokens/s (response tokens over the iteration's seconds) at the same length.",
        "",
        *_table(PEER_COLUMNS, peers),
        "",
        "## Goals",
        "",
        *goal_lines(analysis),
    ]
    return "\n".join(lines) + "\n"


def plot(analysis: Analysis, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cost, share) = plt.subplots(1, 2, figsize=(11, 4.2))
    for curve in analysis.curves:
        style = "-" if curve.dtype == "float32" else "--"
        label = f"{curve.length} tokens, {curve.dtype} (k = {curve.exponent:.2f})"
        cost.loglog(curve.parameters, curve.seconds, style, marker="o", label=label)
        share.semilogx(
            curve.parameters,
            [100 * s for s in curve.generation_share],
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
    out: Path, meta: dict[str, Any], models: dict[str, BuiltModel], runs: list[RunRecord]
) -> dict[str, Any]:
    """Analyse ``runs`` and write the three files under ``out``; returns the json's content."""
    out.mkdir(parents=True, exist_ok=True)
    analysis = analyse(runs)
    report = {
        "meta": meta,
        "models": {name: asdict(model) for name, model in models.items()},
        "runs": runs,
        "analysis": asdict(analysis),
    }
    (out / "cost_curve.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "cost_curve.md").write_text(markdown(meta, models, runs, analysis))
    plot(analysis, out / "cost_curve.png")
    print((out / "cost_curve.md").read_text())
    return report


def rewrite_report(out: Path) -> dict[str, Any]:
    """The three files again from ``out/cost_curve.json`` alone (no measuring)."""
    saved = json.loads((out / "cost_curve.json").read_text())
    models = {name: BuiltModel(**model) for name, model in saved["models"].items()}
    return write_report(out, saved["meta"], models, saved["runs"])
