"""Run records → the frontier study's per-cell statistics (SPEC §7).

Per task × regime (a *cell*), from whatever runs have finished:

- per variant, the mean and 95% bootstrap CI over seeds (``benchmarks.stats``) of every metric of
  ``records.METRICS``, crash totals, and its frontier gaps;
- per baseline family (fixed β: every ``beta-<β>``; trust-region β: every ``tr-beta-<β>``, fixed
  β with the trainer's per-step KL limit), the family's *headline seeds* (every seed one of its
  members has), its frontier (the members with all of those seeds, mean points sorted by KL) and
  its best member in hindsight (the highest mean final gold among those);
- per variant and family, the gold regret: final gold − the family best's on the same seed,
  ``paired_difference`` over the seeds both have;
- per task, the best (β, lr) pair: the fixed-β family's best of the regime (learning rate) whose
  best has the highest mean final gold; every cell's regret against it (a user who tunes the
  learning rate with β; its runs are in another cell when the best lr is another regime's);
- frontier gaps: a variant's mean proxy (gold) − the fixed-β frontier's, interpolated linearly in
  log KL at the variant's mean KL; no value outside the frontier's KL range (no extrapolation).

``choices.py`` turns the cells into the picks and the goal check; ``aggregate.py`` joins both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.frontier.plan import (
    FIXED_BETA_PREFIX,
    REGIMES,
    TASKS,
    TRUST_REGION_PREFIX,
    VARIANTS,
)
from benchmarks.frontier.records import METRICS, RunRecord
from benchmarks.stats import Estimate, mean_estimate, paired_difference

REGRET_TOLERANCE = 0.02
"""Gold units: a controller "matches" a family's best when its regret CI's lower bound is
≥ −this."""
FIXED_BETA, TRUST_REGION = "fixed-beta", "trust-region-beta"
FAMILIES = (FIXED_BETA, TRUST_REGION)
"""The tuned baselines a controller is judged against, each by its best member in hindsight."""
BEST_PAIR = "best-beta-lr"
REGRET_FAMILIES = (*FAMILIES, BEST_PAIR)
"""Every baseline a regret is given against: the families' bests in their cell, and the task's best
(β, lr) pair across its cells."""
FAMILY_LABELS = {FIXED_BETA: "fixed β", TRUST_REGION: "trust-region β", BEST_PAIR: "(β, lr) pair"}
SAFE_PUBLISHED, SAFE, NO_BETA = "safe-published", "safe", "kl-budget"
"""``kl-budget``: the controller that needs no β (the default)."""


def family_of(variant: str) -> str | None:
    """The baseline family of a variant (None: a controller)."""
    if variant.startswith(TRUST_REGION_PREFIX):
        return TRUST_REGION
    if variant.startswith(FIXED_BETA_PREFIX):
        return FIXED_BETA
    return None


def beta_of(variant: str) -> float | None:
    """The fixed β of a family member, per token (None: a controller)."""
    family = family_of(variant)
    if family is None:
        return None
    prefix = TRUST_REGION_PREFIX if family == TRUST_REGION else FIXED_BETA_PREFIX
    return float(variant[len(prefix) :])


@dataclass(frozen=True)
class Crashes:
    total: int
    runs_with_any: int


@dataclass(frozen=True)
class Gap:
    """A variant's mean minus the fixed-β frontier at its mean KL."""

    gap: float | None
    status: str
    """"inside"; "outside" (KL beyond the frontier's range); "no frontier" (< 2 points);
    "no value"."""


@dataclass(frozen=True)
class Regret:
    """Final gold − a family best's on the same seed, over the seeds both have."""

    family: str
    against: str
    """The family's best variant."""
    seeds: tuple[int, ...]
    estimate: Estimate
    within_tolerance: bool | None
    """CI lower bound ≥ −``REGRET_TOLERANCE`` (None: no CI, one pair)."""
    above_zero: bool | None
    """CI lower bound > 0 (None: no CI)."""


@dataclass(frozen=True)
class VariantStats:
    name: str
    seeds: tuple[int, ...]
    algo: str | None
    family: str | None
    beta: float | None
    metrics: dict[str, Estimate]
    proxy_crashes: Crashes
    gold_crashes: Crashes
    proxy_gap: Gap
    gold_gap: Gap
    regrets: dict[str, Regret | None]
    """Family → regret against its best (None: the family has no best here, or no shared seed)."""

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def gold_regret(self) -> Regret | None:
        """The regret against the best fixed β."""
        return self.regrets[FIXED_BETA]


@dataclass(frozen=True)
class FrontierPoint:
    variant: str
    beta: float
    n: int
    kl_final: float
    reward_final: float | None
    gold_final: float | None


@dataclass(frozen=True)
class FamilyBest:
    """A baseline family in one cell."""

    family: str
    members: tuple[str, ...]
    """Every member with a finished run here (empty: the family was not run)."""
    headline_seeds: tuple[int, ...]
    """Every seed one of its members has; only members with all of them compete."""
    frontier: tuple[FrontierPoint, ...]
    """The complete members' mean points with a positive KL, sorted by KL."""
    best: str | None
    """The complete member with the highest mean final gold (the smallest β on a tie)."""


@dataclass(frozen=True)
class Cell:
    task: str
    regime: str
    lr: float | None
    steps: int | None
    variants: dict[str, VariantStats]
    families: dict[str, FamilyBest]
    best_pair: str | None = None
    """The task's best (β, lr) pair, e.g. "beta-0.3 at lr 0.001" (None: no fixed β anywhere)."""

    @property
    def best_beta(self) -> str | None:
        return self.families[FIXED_BETA].best

    @property
    def frontier(self) -> tuple[FrontierPoint, ...]:
        return self.families[FIXED_BETA].frontier


def _crashes(counts: Iterable[int | None]) -> Crashes:
    known = [c for c in counts if c is not None]
    return Crashes(total=sum(known), runs_with_any=sum(c > 0 for c in known))


def _metrics(runs: Sequence[RunRecord]) -> dict[str, Estimate]:
    out = {}
    for name in METRICS:
        values = [v for r in runs if (v := r.metric(name)) is not None]
        out[name] = mean_estimate(values)
    # A fixed β (β = 0 + entropy control too) is given no KL budget: the summary's adherence of
    # such a run is against a default it never saw, not a property of the method.
    if runs[0].algo == "fixed-kl":
        out["budget_adherence"] = Estimate(n=0, mean=None)
    return out


def frontier_gap(
    points: Sequence[FrontierPoint], key: str, kl: float | None, value: float | None
) -> Gap:
    """``value`` − the frontier's ``key`` ("reward_final" or "gold_final") interpolated linearly
    in log KL at ``kl``."""
    usable = [(p.kl_final, y) for p in points if (y := getattr(p, key)) is not None]
    if value is None or kl is None:
        return Gap(None, "no value")
    if len(usable) < 2:
        return Gap(None, "no frontier")
    log_kl = np.log([x for x, _ in usable])
    if kl <= 0.0 or not log_kl[0] <= math.log(kl) <= log_kl[-1]:
        return Gap(None, "outside")
    on_frontier = float(np.interp(math.log(kl), log_kl, [y for _, y in usable]))
    return Gap(value - on_frontier, "inside")


def _family(
    family: str, runs: dict[str, list[RunRecord]], metrics: dict[str, dict[str, Estimate]]
) -> FamilyBest:
    members = sorted((v for v in runs if family_of(v) == family), key=lambda v: beta_of(v) or 0.0)
    seeds = sorted({r.seed for v in members for r in runs[v]})
    complete = [v for v in members if set(seeds) <= {r.seed for r in runs[v]}]
    points = []
    for v in complete:
        kl = metrics[v]["kl_final"].mean
        if kl is not None and kl > 0.0:
            points.append(
                FrontierPoint(
                    variant=v,
                    beta=beta_of(v) or 0.0,
                    n=len(runs[v]),
                    kl_final=kl,
                    reward_final=metrics[v]["reward_final"].mean,
                    gold_final=metrics[v]["gold_final"].mean,
                )
            )
    scored = [
        (gold, -i, v)
        for i, v in enumerate(complete)
        if (gold := metrics[v]["gold_final"].mean) is not None
    ]
    return FamilyBest(
        family=family,
        members=tuple(members),
        headline_seeds=tuple(seeds),
        frontier=tuple(sorted(points, key=lambda p: p.kl_final)),
        best=max(scored)[2] if scored else None,
    )


def paired_regret(
    family: str, against: str, runs: Sequence[RunRecord], best: Sequence[RunRecord]
) -> Regret | None:
    """Mean of gold_final(variant, s) − gold_final(best, s) over the seeds both have a finite
    gold on, with its bootstrap CI; None without such a seed."""
    theirs = {r.seed: r.gold_final for r in best}
    pairs = sorted(
        (r.seed, r.gold_final, g)
        for r in runs
        if r.gold_final is not None and (g := theirs.get(r.seed)) is not None
    )
    if not pairs:
        return None
    estimate = paired_difference([p[1] for p in pairs], [p[2] for p in pairs])
    ci = estimate.ci
    return Regret(
        family=family,
        against=against,
        seeds=tuple(p[0] for p in pairs),
        estimate=estimate,
        within_tolerance=None if ci is None else ci[0] >= -REGRET_TOLERANCE,
        above_zero=None if ci is None else ci[0] > 0.0,
    )


def _ordered(names: Iterable[str]) -> list[str]:
    """The fixed-β family by β, the trust-region family by β, then the plan's order (any
    variant outside the plan last)."""
    names = set(names)
    plan = list(VARIANTS)

    def rank(name: str) -> tuple[int, float, int, str]:
        family = family_of(name)
        if family is not None:
            return (FAMILIES.index(family), beta_of(name) or 0.0, 0, name)
        known = plan.index(name) if name in plan else len(plan)
        return (len(FAMILIES), 0.0, known, name)

    return sorted(names, key=rank)


Pair = tuple[str, Sequence[RunRecord]]
"""The task's best (β, lr) pair: its label and its runs."""


@dataclass(frozen=True)
class CellRuns:
    """One task × regime's runs by variant, their statistics and the families' bests: what a
    cell's regrets are computed from (once per cell, before the task's best pair is known)."""

    runs: dict[str, list[RunRecord]]
    metrics: dict[str, dict[str, Estimate]]
    families: dict[str, FamilyBest]


def cell_runs(records: Sequence[RunRecord]) -> CellRuns:
    runs: dict[str, list[RunRecord]] = {}
    for r in sorted(records, key=lambda r: r.seed):
        runs.setdefault(r.variant, []).append(r)
    runs = {v: runs[v] for v in _ordered(runs)}
    metrics = {v: _metrics(rs) for v, rs in runs.items()}
    return CellRuns(runs, metrics, {f: _family(f, runs, metrics) for f in FAMILIES})


def cell_stats(task: str, regime: str, parts: CellRuns, pair: Pair | None = None) -> Cell:
    """Everything the report says about one task × regime (with ``pair``: the regrets against
    the task's best (β, lr) pair too)."""
    runs, metrics, families = parts.runs, parts.metrics, parts.families
    frontier = families[FIXED_BETA].frontier
    variants = {}
    for v, rs in runs.items():
        m = metrics[v]
        kl = m["kl_final"].mean
        variants[v] = VariantStats(
            name=v,
            seeds=tuple(r.seed for r in rs),
            algo=rs[0].algo,
            family=family_of(v),
            beta=beta_of(v),
            metrics=m,
            proxy_crashes=_crashes(r.proxy_crashes for r in rs),
            gold_crashes=_crashes(r.gold_crashes for r in rs),
            proxy_gap=frontier_gap(frontier, "reward_final", kl, m["reward_final"].mean),
            gold_gap=frontier_gap(frontier, "gold_final", kl, m["gold_final"].mean),
            regrets={
                **{
                    f: None if (b := fam.best) is None else paired_regret(f, b, rs, runs[b])
                    for f, fam in families.items()
                },
                BEST_PAIR: None if pair is None else paired_regret(BEST_PAIR, pair[0], rs, pair[1]),
            },
        )
    first = runs[next(iter(runs))][0]
    return Cell(
        task=task,
        regime=regime,
        lr=first.lr,
        steps=first.steps,
        variants=variants,
        families=families,
        best_pair=None if pair is None else pair[0],
    )


def pair_label(variant: str, lr: float | None) -> str:
    return f"{variant} at lr {lr:g}" if lr is not None else variant


def best_pair(by_regime: dict[str, CellRuns]) -> Pair | None:
    """The fixed-β best of the regime whose best has the highest mean final gold, with its runs."""
    scored = []
    for regime, parts in by_regime.items():
        best = parts.families[FIXED_BETA].best
        gold = None if best is None else parts.metrics[best]["gold_final"].mean
        if best is not None and gold is not None:
            scored.append((gold, regime, best))
    if not scored:
        return None
    _, regime, variant = max(scored)
    runs = by_regime[regime].runs[variant]
    return pair_label(variant, runs[0].lr), runs


def _rank(name: str, known: Sequence[str]) -> tuple[int, str]:
    return (list(known).index(name), "") if name in known else (len(known), name)


def cells_of(records: Iterable[RunRecord]) -> dict[str, dict[str, Cell]]:
    """{task: {regime: cell}}, tasks and regimes in the sweep's order (any others after them)."""
    grouped: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        grouped.setdefault((r.task, r.regime), []).append(r)
    parts: dict[str, dict[str, CellRuns]] = {}
    for task, regime in sorted(
        grouped, key=lambda k: (_rank(k[0], TASKS), _rank(k[1], tuple(REGIMES)))
    ):
        parts.setdefault(task, {})[regime] = cell_runs(grouped[(task, regime)])
    # The best (β, lr) pair needs every regime's fixed-β best before any cell's regrets.
    cells: dict[str, dict[str, Cell]] = {}
    for task, by_regime in parts.items():
        pair = best_pair(by_regime)
        cells[task] = {r: cell_stats(task, r, p, pair) for r, p in by_regime.items()}
    return cells
