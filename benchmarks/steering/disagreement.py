"""Does a reward-model ensemble tell a policy that games its learned proxy from one that does
not, at the same KL?

A controller that steers inside its KL budget needs a signal that reads over-optimisation where
the KL does not (``signals.py`` found none among the signals a run already logs). For a learned
reward, the candidate is an ensemble (Coste et al. 2023; Eisenstein et al. 2023): reward models
trained alike disagree where the policy has left the data they were trained on, and the proxy
the policy optimises runs ahead of the members it never saw. This asks whether either tells
gold apart once the KL is known, across every finished ``reward-model`` run on this machine.

- **Policies.** The final checkpoint of each run under ``--runs`` (the frontier's 100-iteration
  runs at four learning rates and the steering study's 300-iteration ones) and the SFT policy
  they start from, each evaluated once (``ensemble.evaluate_policy``: 512 prompts, the
  sampling noise of the run's seed). The frontier's runs trained on those prompts too; every
  policy is compared on the same ones.
- **Signals.** The ensemble's ``disagreement``, the proxy's excess over the members
  (``proxy_excess``) and the members' own mean (``members_mean``), beside what a run already has
  (the proxy, entropy, distinct-1 of the same completions).
- **Measures**, each with a 95% CI from resampling policies (``RESAMPLES``, fixed seed):
  Spearman's ρ with gold; the partial ρ given the KL (ranks of both residualised linearly on the
  KL's rank), and given the KL and the proxy (what the signal adds to what every run already
  observes: a policy that learned less has less proxy and less gold at the same KL); and the
  AUC within KL tertiles of a policy whose gold is below its tertile's median against one above
  (pooled weighted by pairs; 0.5: no information).

``python -m benchmarks.steering.disagreement`` measures what is missing (resumable: each
policy's record is saved as it is measured) and writes
``benchmarks/results/steering_disagreement.{json,md}``; ``--report-only`` measures nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks.stats import SEED, cluster_interval, pooled_auc
from benchmarks.text import fmt, markdown_table, value_and_interval
from safecontrol.atomic_files import write_json_atomic, write_text_atomic

GOLD, KL, PROXY = "eval_gold", "eval_kl", "eval_reward"
SIGNALS = {
    "disagreement": "std of the proxy's and the members' scores per completion (mean)",
    "proxy_excess": "the proxy's score − the members' mean per completion (mean)",
    "members_mean": "the members' mean score (reward models the policy never trained on)",
    "eval_reward": "the proxy's score (what the policy trains on)",
    "eval_entropy": "the policy's entropy per token on the completions",
    "eval_distinct_1": "distinct-1 of the completions",
    "eval_kl": "KL to the reference per token (k3)",
}
RESAMPLES = 2000
DEFAULT_RUNS = ("runs/frontier/reward-model", "runs/steering/reward-model")
DEFAULT_OUT = "benchmarks/results"
STEM = "steering_disagreement"
SFT = "sft"


@dataclass(frozen=True)
class PolicyRecord:
    name: str
    """``<runs root>/<regime>/<variant>/seed<k>``, or ``sft``."""
    values: dict[str, float]
    """The evaluation's metrics and the ensemble's signals."""


@dataclass(frozen=True)
class SignalStats:
    name: str
    meaning: str
    rho: float
    rho_ci: tuple[float, float] | None
    partial_rho: float | None
    """Given the KL (None for the KL itself)."""
    partial_rho_ci: tuple[float, float] | None
    partial_rho_proxy: float | None
    """Given the KL and the proxy: what the signal adds to what every run already observes
    (None for those two)."""
    partial_rho_proxy_ci: tuple[float, float] | None
    auc_within_kl: float | None
    auc_within_kl_ci: tuple[float, float] | None


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float:
    return float(stats.spearmanr(x, y).statistic)


def partial_rank_correlation(
    x: Sequence[float], y: Sequence[float], *given: Sequence[float]
) -> float:
    """Spearman's ρ of ``x`` and ``y`` with the ranks of ``given`` removed linearly from both
    (least squares on an intercept and those ranks)."""
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    design = np.column_stack([np.ones(len(rx)), *(stats.rankdata(g) for g in given)])

    def residual(r: np.ndarray) -> np.ndarray:
        coef, *_ = np.linalg.lstsq(design, r, rcond=None)
        return np.asarray(r - design @ coef)

    return float(np.corrcoef(residual(rx), residual(ry))[0, 1])


def auc_within_strata(
    signal: Sequence[float], gold: Sequence[float], stratum_by: Sequence[float]
) -> float | None:
    """P(signal of a policy below its stratum's median gold > that of one above), pooled over
    the tertiles of ``stratum_by``."""
    s, g, z = (np.asarray(v, dtype=np.float64) for v in (signal, gold, stratum_by))
    edges = np.quantile(z, [1 / 3, 2 / 3])
    index = np.searchsorted(edges, z, side="right")
    groups = []
    for k in range(3):
        inside = index == k
        if inside.sum() < 2:
            continue
        median = np.median(g[inside])
        groups.append((s[inside & (g < median)], s[inside & (g > median)]))
    return pooled_auc(groups)


def _interval(
    records: Sequence[PolicyRecord],
    statistic: Callable[[Sequence[PolicyRecord]], float | None],
    resamples: int,
) -> tuple[float, float] | None:
    """Each policy is its own cluster: the runs are independent."""
    rng = np.random.default_rng(SEED)
    return cluster_interval([[r] for r in records], statistic, rng, resamples)


def signal_stats(records: Sequence[PolicyRecord], resamples: int = RESAMPLES) -> list[SignalStats]:
    """Every signal's ρ, partial ρ given the KL and AUC within KL tertiles, with CIs."""
    if len(records) < 6:
        raise ValueError(f"need at least 6 policies to compare, got {len(records)}")

    def column(rs: Sequence[PolicyRecord], key: str) -> list[float]:
        return [r.values[key] for r in rs]

    out = []
    for name, meaning in SIGNALS.items():
        observed = name in (KL, PROXY)

        def rho(rs: Sequence[PolicyRecord], key: str = name) -> float:
            return rank_correlation(column(rs, key), column(rs, GOLD))

        def partial(rs: Sequence[PolicyRecord], key: str = name) -> float | None:
            return partial_rank_correlation(column(rs, key), column(rs, GOLD), column(rs, KL))

        def partial_proxy(rs: Sequence[PolicyRecord], key: str = name) -> float | None:
            given = (column(rs, KL), column(rs, PROXY))
            return partial_rank_correlation(column(rs, key), column(rs, GOLD), *given)

        def auc(rs: Sequence[PolicyRecord], key: str = name) -> float | None:
            return auc_within_strata(column(rs, key), column(rs, GOLD), column(rs, KL))

        out.append(
            SignalStats(
                name=name,
                meaning=meaning,
                rho=rho(records),
                rho_ci=_interval(records, rho, resamples),
                partial_rho=None if name == KL else partial(records),
                partial_rho_ci=None if name == KL else _interval(records, partial, resamples),
                partial_rho_proxy=None if observed else partial_proxy(records),
                partial_rho_proxy_ci=None
                if observed
                else _interval(records, partial_proxy, resamples),
                auc_within_kl=auc(records),
                auc_within_kl_ci=_interval(records, auc, resamples),
            )
        )
    return out


# ------------------------------------------------------------------ measuring
def run_dirs(roots: Sequence[Path]) -> list[Path]:
    """Every finished run (``done.json`` and a checkpoint) under ``roots``."""
    found = []
    for root in roots:
        for done in sorted(root.glob("*/*/seed*/done.json")):
            if (done.parent / "checkpoint.pt").is_file():
                found.append(done.parent)
    return found


def measure(
    dirs: Sequence[Path], records: dict[str, PolicyRecord], save: Callable[[], None]
) -> None:
    """Evaluate every run of ``dirs`` (``run_dirs``, at least one) and the SFT policy that
    ``records`` lacks, saving after each."""
    from benchmarks.steering.ensemble import build_ensemble, evaluate_policy
    from reference_trainer.config import TrainConfig

    todo = [d for d in dirs if str(d) not in records]
    if not todo and SFT in records:
        return
    first = todo[0] if todo else dirs[0]
    base = TrainConfig(**json.loads((first / "config.json").read_text()))
    ensemble = build_ensemble(base)
    if SFT not in records:
        records[SFT] = PolicyRecord(SFT, evaluate_policy(base, None, ensemble))
        save()
    for i, directory in enumerate(todo, 1):
        config = TrainConfig(**json.loads((directory / "config.json").read_text()))
        records[str(directory)] = PolicyRecord(
            str(directory), evaluate_policy(config, directory, ensemble)
        )
        save()
        print(f"[{i}/{len(todo)}] {directory}", flush=True)


# ------------------------------------------------------------------ report
def markdown(rows: Sequence[SignalStats], records: Sequence[PolicyRecord], command: str) -> str:
    sft = next((r for r in records if r.name == SFT), None)
    table = [
        [
            f"`{s.name}`",
            s.meaning,
            value_and_interval(s.rho, s.rho_ci),
            value_and_interval(s.partial_rho, s.partial_rho_ci),
            value_and_interval(s.partial_rho_proxy, s.partial_rho_proxy_ci),
            value_and_interval(s.auc_within_kl, s.auc_within_kl_ci),
        ]
        for s in rows
    ]
    gold = [r.values[GOLD] for r in records]
    lines = [
        "# A reward-model ensemble's disagreement against gold, at equal KL",
        "",
        f"Generated by `{command}` from {len(records)} policies of the `reward-model` task "
        f"(gold {fmt(min(gold))} to {fmt(max(gold))}), each evaluated on the same 512 prompts "
        "(the sampling noise of its run's seed). The method is in "
        "`benchmarks/steering/disagreement.py`. ρ: Spearman's with gold; partial ρ: given the "
        "KL, and given the KL and the proxy (what the signal adds to what a run observes); "
        "AUC within KL tertiles: P(signal of a policy with below-median gold in its tertile > "
        "that of one above), 0.5 says nothing. CIs resample policies.",
        "",
        *markdown_table(
            [
                "signal",
                "what",
                "ρ with gold",
                "partial ρ given KL",
                "partial ρ given KL and proxy",
                "AUC within KL tertiles",
            ],
            table,
        ),
        "",
    ]
    if sft is not None:
        lines += [
            f"The SFT policy: gold {fmt(sft.values[GOLD])}, disagreement "
            f"{fmt(sft.values['disagreement'])}, proxy excess {fmt(sft.values['proxy_excess'])}.",
            "",
        ]
    return "\n".join(lines)


def load(path: Path) -> dict[str, PolicyRecord]:
    if not path.is_file():
        return {}
    return {r["name"]: PolicyRecord(**r) for r in json.loads(path.read_text())["records"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.steering.disagreement", description=__doc__
    )
    parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS), help="runs roots")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples")
    parser.add_argument("--report-only", action="store_true", help="measure nothing")
    args = parser.parse_args(argv)
    if args.resamples < 1:
        parser.error(f"--resamples must be >= 1, got {args.resamples}")
    out = Path(args.out)
    path = out / f"{STEM}.json"
    records = load(path)
    command = "python -m benchmarks.steering.disagreement"

    def save(rows: Sequence[SignalStats] = ()) -> None:
        out.mkdir(parents=True, exist_ok=True)
        payload = {
            "command": command,
            "resamples": args.resamples,
            "signals": [asdict(s) for s in rows],
            "records": [asdict(r) for r in records.values()],
        }
        write_json_atomic(path, payload)

    if not args.report_only:
        dirs = run_dirs([Path(r) for r in args.runs])
        if not dirs:
            print(f"error: no finished run with a checkpoint under {args.runs}", file=sys.stderr)
            return 2
        measure(dirs, records, save)
    rows = signal_stats(list(records.values()), args.resamples)
    save(rows)
    text = markdown(rows, list(records.values()), command)
    write_text_atomic(out / f"{STEM}.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
