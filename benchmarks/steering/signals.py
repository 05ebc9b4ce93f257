"""Which gold-free signal, measured during a run, foretells a fall of its held-out gold?

A controller that beats the best fixed β must loosen the leash while more KL still buys gold and
tighten it before gold falls, from what a run observes. This reads the steering study's runs
(``python -m benchmarks.steering``: 300 iterations, held-out evaluation every 50 on 512 prompts
with fixed noise) and asks of each candidate signal how well it separates the evaluations
after which gold *falls* from those after which it *rises*.

- **Windows.** At every evaluation k with one 50 iterations later, each signal is measured on
  the 25 training iterations before k (or on the evaluation at k), and labelled by the held-out
  gold's change from k to k + 50: *falls* below −``CHANGE``, *rises* above +``CHANGE``, else
  left out (noise: a batch of 512 held-out prompts still moves by about 0.02).
- **AUC** = P(the signal of a falling window > that of a rising one) (Mann–Whitney); 0.5 says
  nothing, 1 or 0 separates perfectly. Its 95% CI resamples whole runs (a run's windows are not
  independent), ``RESAMPLES`` times with a fixed seed.
- **Within gold level.** The gold at k itself foretells a fall (a high evaluation is partly
  noise, and regresses): the AUC is also given within the tertiles of the gold at k, pooled
  weighted by pairs, which a controller could not know, so that a signal is not credited for
  being a proxy of the gold level.

``python -m benchmarks.steering.signals`` writes ``benchmarks/results/steering_signals.{json,md}``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.stats import SEED, cluster_interval, pooled_auc
from benchmarks.text import markdown_table, value_and_interval

CHANGE = 0.03
"""Gold units: the held-out gold's change over 50 iterations that counts as a fall or a rise."""
WINDOW = 25
"""Training iterations a signal is averaged over before an evaluation."""
RESAMPLES = 2000
"""Run-level bootstrap resamples of an AUC's CI (an AUC per resample costs a rank test)."""
DEFAULT_RUNS, DEFAULT_OUT = "runs/steering", "benchmarks/results"

Rows = Sequence[dict[str, float]]


def _mean(rows: Rows, key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


SIGNALS: dict[str, tuple[str, Callable[[Rows, Rows, dict[str, float], dict[str, float]], float]]]
SIGNALS = {
    "distinct_ratio": (
        "distinct-1 of the training batches ÷ the run's first five",
        lambda w, w0, ev, first: _mean(w, "distinct_1") / first["distinct_1"],
    ),
    "entropy_ratio": (
        "entropy of the training batches ÷ the first batch's (H₀)",
        lambda w, w0, ev, first: _mean(w, "entropy") / first["entropy"],
    ),
    "eval_distinct": (
        "distinct-1 of the held-out evaluation at k",
        lambda w, w0, ev, first: ev["eval_distinct_1"],
    ),
    "eval_entropy_ratio": (
        "entropy of the held-out evaluation at k ÷ H₀",
        lambda w, w0, ev, first: ev["eval_entropy"] / first["entropy"],
    ),
    "kl_per_h0": (
        "KL to the reference (k3) ÷ H₀",
        lambda w, w0, ev, first: _mean(w, "kl_k3") / first["entropy"],
    ),
    "proxy_slope": (
        "the proxy's change between the two windows before k",
        lambda w, w0, ev, first: _mean(w, "reward_mean") - _mean(w0, "reward_mean"),
    ),
    "gain_per_nat": (
        "that change per nat of KL change, ΔKL at least 0.05 (the steered budget's signal)",
        lambda w, w0, ev, first: (
            (_mean(w, "reward_mean") - _mean(w0, "reward_mean"))
            / max(abs(_mean(w, "kl_k3") - _mean(w0, "kl_k3")), 0.05)
        ),
    ),
    "explained_variance": (
        "the critic's explained variance",
        lambda w, w0, ev, first: _mean(w, "explained_variance"),
    ),
}
"""Name → (what it measures, how from (window, window before, evaluation at k, first rows))."""


@dataclass(frozen=True)
class Window:
    run: str
    task: str
    step: int
    gold: float
    """Held-out gold at k (not a signal: a controller has no gold)."""
    change: float
    """Held-out gold at k + 50 − at k."""
    signals: dict[str, float]


def read_windows(runs_dir: Path) -> list[Window]:
    """Every labelled evaluation window of every finished steering run under ``runs_dir``."""
    windows = []
    for path in sorted(runs_dir.glob("*/*/*/seed*/metrics.jsonl")):
        if not (path.parent / "done.json").is_file():
            continue
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        evals = {r["step"]: r for r in rows if "eval_gold" in r}
        steps = sorted(evals)
        first = {
            "distinct_1": _mean(rows[:5], "distinct_1"),
            "entropy": float(rows[0]["entropy"]),
        }
        by_step = {r["step"]: i for i, r in enumerate(rows)}
        for k, later in itertools.pairwise(steps):
            end = by_step[k] + 1
            if end < 2 * WINDOW:
                continue
            w, w0 = rows[end - WINDOW : end], rows[end - 2 * WINDOW : end - WINDOW]
            signals = {name: fn(w, w0, evals[k], first) for name, (_, fn) in SIGNALS.items()}
            windows.append(
                Window(
                    run=str(path.parent.relative_to(runs_dir)),
                    task=path.parent.relative_to(runs_dir).parts[0],
                    step=k,
                    gold=float(evals[k]["eval_gold"]),
                    change=float(evals[later]["eval_gold"] - evals[k]["eval_gold"]),
                    signals=signals,
                )
            )
    return windows


def _strata(windows: Sequence[Window]) -> list[list[Window]]:
    """The windows split into tertiles of their gold at k."""
    edges = np.quantile([w.gold for w in windows], [1 / 3, 2 / 3])
    index = np.searchsorted(edges, [w.gold for w in windows], side="right")
    return [[w for w, i in zip(windows, index, strict=True) if i == s] for s in range(3)]


def auc_of(windows: Sequence[Window], key: str, within_gold: bool = False) -> float | None:
    """The AUC of ``key`` (``"gold"``: the gold at k) over ``windows``; ``within_gold``: pooled
    over the gold-level tertiles, weighted by their pairs."""
    groups = _strata(windows) if within_gold else [list(windows)]

    def value(w: Window) -> float:
        return w.gold if key == "gold" else w.signals[key]

    return pooled_auc(
        (
            [value(w) for w in group if w.change < -CHANGE],
            [value(w) for w in group if w.change > CHANGE],
        )
        for group in groups
    )


@dataclass(frozen=True)
class SignalAuc:
    name: str
    meaning: str
    auc: float | None
    ci: tuple[float, float] | None
    within_gold: float | None
    within_gold_ci: tuple[float, float] | None
    by_task: dict[str, float | None]


def _bootstrap(
    windows: Sequence[Window], key: str, within_gold: bool, rng: np.random.Generator, resamples: int
) -> tuple[float, float] | None:
    runs = sorted({w.run for w in windows})
    by_run = [[w for w in windows if w.run == r] for r in runs]
    return cluster_interval(by_run, lambda sample: auc_of(sample, key, within_gold), rng, resamples)


def signal_aucs(windows: Sequence[Window], resamples: int = RESAMPLES) -> list[SignalAuc]:
    tasks = sorted({w.task for w in windows})
    out = []
    for name, meaning in [("gold", "held-out gold at k (no controller has it)")] + [
        (n, m) for n, (m, _) in SIGNALS.items()
    ]:
        rng = np.random.default_rng(SEED)
        out.append(
            SignalAuc(
                name=name,
                meaning=meaning,
                auc=auc_of(windows, name),
                ci=_bootstrap(windows, name, False, rng, resamples),
                within_gold=None if name == "gold" else auc_of(windows, name, True),
                within_gold_ci=None
                if name == "gold"
                else _bootstrap(windows, name, True, rng, resamples),
                by_task={t: auc_of([w for w in windows if w.task == t], name) for t in tasks},
            )
        )
    return out


def markdown(aucs: Sequence[SignalAuc], windows: Sequence[Window], command: str) -> str:
    falls = sum(w.change < -CHANGE for w in windows)
    rises = sum(w.change > CHANGE for w in windows)
    tasks = sorted({w.task for w in windows})
    rows = [
        [
            f"`{a.name}`",
            a.meaning,
            value_and_interval(a.auc, a.ci),
            value_and_interval(a.within_gold, a.within_gold_ci),
            *(value_and_interval(a.by_task[t], None) for t in tasks),
        ]
        for a in aucs
    ]
    header = ["signal", "what", "AUC [95% CI]", "AUC within gold tertiles [95% CI]"]
    lines = [
        "# Gold-free signals against a coming fall of held-out gold",
        "",
        f"Generated by `{command}` from {len({w.run for w in windows})} steering runs: "
        f"{len(windows)} evaluation windows, {falls} followed by a fall of the held-out gold "
        f"by more than {CHANGE:g} over the next 50 iterations, {rises} by a rise of more than "
        f"{CHANGE:g}. AUC = P(signal of a falling window > signal of a rising one): 0.5 says "
        "nothing, values away from 0.5 (either way) separate. CIs resample whole runs. The "
        "method is in `benchmarks/steering/signals.py`.",
        "",
        *markdown_table([*header, *(f"AUC {t}" for t in tasks)], rows),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.steering.signals", description=__doc__
    )
    parser.add_argument("--runs", default=DEFAULT_RUNS)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples")
    args = parser.parse_args(argv)
    windows = read_windows(Path(args.runs))
    if not windows:
        print(
            f"error: no finished steering run with evaluations under {args.runs}", file=sys.stderr
        )
        return 2
    if args.resamples < 1:
        parser.error(f"--resamples must be >= 1, got {args.resamples}")
    aucs = signal_aucs(windows, args.resamples)
    command = "python -m benchmarks.steering.signals"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "command": command,
        "change": CHANGE,
        "window": WINDOW,
        "resamples": args.resamples,
        "windows": len(windows),
        "aucs": [asdict(a) for a in aucs],
    }
    (out / "steering_signals.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "steering_signals.md").write_text(markdown(aucs, windows, command))
    print(markdown(aucs, windows, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
