"""The TRL frontier's sentences, computed once from the aggregate and stored beside it in
``trl_frontier.json``: the results page and the README read them, never rebuild them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.codec import decode
from benchmarks.text import difference_text, fmt, signed
from benchmarks.trl_frontier.aggregate import (
    Regret,
    StepLimitCost,
    TrlFrontier,
)
from benchmarks.trl_frontier.plan import (
    COST_PLAIN,
    COST_REGIME,
    COST_WARMUP,
    LEARNING_RATES,
    LIMITED,
    UNLIMITED,
)


@dataclass(frozen=True)
class TrlFrontierWords:
    regrets: dict[str, tuple[str, ...]]
    """Per regime, one sentence per controlled variant's gold regret."""
    limit_cost_in_sweep: str | None
    """The step limit's cost as the sweep's paired runs saw it; None without paired runs."""
    limit_cost_measured: str | None
    """The cost measured apart (``--cost``); None where it was never measured."""


@dataclass(frozen=True)
class TrlFrontierResults:
    """What ``trl_frontier.json`` holds: the aggregate and its words."""

    frontier: TrlFrontier
    words: TrlFrontierWords

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrlFrontierResults:
        return decode(cls, data)


def regret_sentence(regret: Regret) -> str:
    gold = regret.gold
    if gold.ci is None:
        shown = f"{signed(gold.mean)} (n = {gold.n} paired seed, no CI)"
    else:
        shown = f"{difference_text(gold)} (95% CI, n = {gold.n} paired seeds)"
    return f"gold regret of {regret.variant} against {regret.against}: {shown}"


def limit_cost_in_sweep(frontier: TrlFrontier) -> str | None:
    ratios = [(r.regime, r.limit_cost_ratio) for r in frontier.regimes]
    shown = ", ".join(f"{regime} {fmt(ratio, 2)}×" for regime, ratio in ratios if ratio is not None)
    if not shown:
        return None
    return (
        f"Cost of the step limit: median seconds per step of {LIMITED} with the limit / without "
        f"it, paired by seed: {shown} (runs two at a time on two shared cores)."
    )


def limit_cost_measured(cost: StepLimitCost) -> str:
    s = cost.seconds_per_step
    return (
        f"Cost of the step limit, measured apart (`--cost`: lr {LEARNING_RATES[COST_REGIME]:g}, "
        f"{cost.steps_measured} steps per variant after a {COST_WARMUP}-step warm-up, one "
        f"process, the variants interleaved): median seconds per step plain TRL (β "
        f"{COST_PLAIN.removeprefix('beta-')}) {fmt(s[COST_PLAIN])}, {LIMITED} without its limit "
        f"{fmt(s[UNLIMITED])}, with it {fmt(s[LIMITED])}: "
        f"**{fmt(cost.limit_over_plain_trl, 2)}× plain TRL**, "
        f"{fmt(cost.limit_over_no_limit, 2)}× {LIMITED} without the limit."
    )


def with_words(frontier: TrlFrontier) -> TrlFrontierResults:
    cost = frontier.step_limit_cost
    words = TrlFrontierWords(
        regrets={r.regime: tuple(regret_sentence(g) for g in r.regrets) for r in frontier.regimes},
        limit_cost_in_sweep=limit_cost_in_sweep(frontier),
        limit_cost_measured=None if cost is None else limit_cost_measured(cost),
    )
    return TrlFrontierResults(frontier, words)
