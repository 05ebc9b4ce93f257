"""The stability study's sentences, computed once from the aggregate and stored in the results:
one verdict per claim of the paper (SPEC §1.5), regime by regime, and one reading per ablation.

``render`` (the results page) and ``benchmarks.readme_results`` (the README) print these stored
sentences; neither rebuilds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmarks.stability.aggregate import PairedTest, StabilityAggregate
from benchmarks.stability.plan import BASELINE, FULL_SAFE
from benchmarks.stability.records import MEASURES
from benchmarks.stats import Estimate
from benchmarks.text import fmt

NEGLIGIBLE_CRASHES = 0.5
"""A method's crashes are "negligible" when the upper CI of its crashes per run is below this."""
NEGLIGIBLE_CONTROLLER_SHARE = 0.001
"""The controller's update is negligible below this share of a trainer step."""
NEGLIGIBLE_ITERATION_OVERHEAD = 0.05
"""A SAFE iteration costing more than this over PPO's makes the overhead claim "mixed"."""
OVERHEAD_CLAIM = "minimal computational overhead"
ABLATION_MEASURES = ("reward_mean", "kl_p95", "entropy_min", "crashes")


def difference_words(test: PairedTest) -> str:
    """ "Δ -0.048 (-6.1%), CI [-0.067, -0.030], p = 0.00781"."""
    d = test.difference
    rel = "" if test.relative is None else f" ({100 * test.relative:+.1f}%)"
    bounds = "" if d.ci is None else f", CI [{fmt(d.ci[0])}, {fmt(d.ci[1])}]"
    p = "" if test.p_value is None else f", p = {test.p_value:.3g}"
    return f"Δ {fmt(d.mean)}{rel}{bounds}{p}"


@dataclass(frozen=True)
class RegimeReading:
    """A claim read in one regime off SAFE against PPO on one measure."""

    verdict: str
    test: PairedTest
    """SAFE − PPO on the claim's measure, on their common seeds."""
    shown: Mapping[str, float | None]
    """Seed means shown beside the verdict (e.g. each method's distinct-1)."""
    sentence: str


@dataclass(frozen=True)
class OverheadReading:
    controller_us_per_update: float
    """Median µs of ``SafeController.update`` (overhead.json)."""
    controller_share_of_step: float
    """That update's share of a reference-trainer step."""
    iteration_seconds: Mapping[str, float]
    """A whole PPO and SAFE iteration on a quiet machine (trainer_speed.json)."""
    method_overhead: float
    """SAFE's iteration / PPO's − 1."""
    sentence: str


@dataclass(frozen=True)
class Claim:
    claim: str
    verdict: str
    per_regime: Mapping[str, RegimeReading]
    overhead: OverheadReading | None = None
    """The overhead claim's measurements (absent from the other claims)."""


@dataclass(frozen=True)
class MeasureReading:
    reading: str
    """"higher" / "lower" where the bootstrap CI of the paired difference excludes 0, else
    "no clear change"."""
    relative: float | None
    test: str
    """The paired test's verdict (whether the seeds suffice for p < 0.05)."""


@dataclass(frozen=True)
class AblationReading:
    """What removing one part of SAFE did, against full SAFE on the same seeds."""

    regime: str
    variant: str
    measures: Mapping[str, MeasureReading]
    sentence: str


@dataclass(frozen=True)
class StabilityWords:
    claims: tuple[Claim, ...]
    ablations: tuple[AblationReading, ...]


@dataclass(frozen=True)
class SpeedResults:
    """What the overhead claim reads from ``overhead.json`` and ``trainer_speed.json``."""

    controller_us_per_update: float
    controller_share_of_step: float
    iteration_seconds: Mapping[str, float]


def speed_results(
    overhead: Mapping[str, Any] | None, trainer_speed: Mapping[str, Any] | None
) -> SpeedResults | None:
    """SAFE's row of the overhead benchmark (its registry name) and the PPO and SAFE iterations
    of the trainer-speed benchmark; None unless both files exist."""
    if overhead is None or trainer_speed is None:
        return None
    safe = overhead["controllers"]["safe"]
    return SpeedResults(
        controller_us_per_update=safe["median_us"],
        controller_share_of_step=safe["share_of_step"],
        iteration_seconds={a: trainer_speed["results"][a]["total"] for a in ("ppo", "safe")},
    )


def _combine(verdicts: Mapping[str, str]) -> str:
    values = set(verdicts.values())
    if not values:
        return "not measured (no SAFE and PPO runs on common seeds)"
    if len(values) == 1:
        return values.pop()
    return "mixed" if any(v.startswith("confirmed") for v in values) else "not confirmed"


def _judge(test: PairedTest) -> str:
    return {"better": "confirmed", "worse": "refuted"}.get(test.verdict, "not confirmed")


def _safe_against_ppo(aggregate: StabilityAggregate, measure: str) -> dict[str, PairedTest]:
    out = {}
    for regime in aggregate.regimes:
        comparison = aggregate.comparison(regime, FULL_SAFE, BASELINE)
        test = None if comparison is None else comparison.measures[measure]
        if test is not None:
            out[regime] = test
    return out


def _mean(aggregate: StabilityAggregate, regime: str, variant: str, measure: str) -> Estimate:
    group = aggregate.group(regime, variant)
    if group is None:
        raise ValueError(f"no {regime}/{variant} runs to read {measure} from")
    return group.measures[measure]


def _sentence(verdict: str, test: PairedTest, extra: str = "") -> str:
    return f"{verdict} — SAFE − PPO {difference_words(test)}; test: {test.verdict}{extra}."


def _two(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def reward_claim(aggregate: StabilityAggregate) -> Claim:
    per_regime = {}
    for regime, test in _safe_against_ppo(aggregate, "reward_mean").items():
        # VADER can be gamed: a higher reward with fewer distinct words is hacking.
        safe = _mean(aggregate, regime, FULL_SAFE, "distinct_1_final").mean
        ppo = _mean(aggregate, regime, BASELINE, "distinct_1_final").mean
        verdict = _judge(test)
        extra = f"; distinct-1 at the end SAFE {_two(safe)}, PPO {_two(ppo)}"
        per_regime[regime] = RegimeReading(
            verdict,
            test,
            {"safe_distinct_1": safe, "ppo_distinct_1": ppo},
            _sentence(verdict, test, extra),
        )
    return Claim(
        "higher training-average reward than PPO (paper: +5.15%)",
        _combine({r: c.verdict for r, c in per_regime.items()}),
        per_regime,
    )


def _negligible(crashes: Estimate) -> bool:
    """The upper CI bound (the mean with too few seeds) of crashes per run is below the bar."""
    upper = crashes.high if crashes.ci else crashes.mean
    return upper is not None and upper < NEGLIGIBLE_CRASHES


def crash_claim(aggregate: StabilityAggregate) -> Claim:
    per_regime = {}
    for regime, test in _safe_against_ppo(aggregate, "crashes").items():
        safe = _mean(aggregate, regime, FULL_SAFE, "crashes")
        ppo = _mean(aggregate, regime, BASELINE, "crashes")
        if test.verdict == "worse" or not _negligible(safe):
            verdict = "refuted"
        elif _negligible(ppo):
            verdict = "confirmed, but no advantage: PPO's crashes are negligible too"
        else:
            verdict = "confirmed"
        bounds = "" if safe.ci is None else f" [{fmt(safe.ci[0])}, {fmt(safe.ci[1])}]"
        extra = f"; crashes per run SAFE {fmt(safe.mean)}{bounds}, PPO {fmt(ppo.mean)}"
        per_regime[regime] = RegimeReading(
            verdict,
            test,
            {"safe_crashes_per_run": safe.mean, "ppo_crashes_per_run": ppo.mean},
            _sentence(verdict, test, extra),
        )
    return Claim(
        "negligible reward crashes (here: the upper 95% CI of SAFE's crashes per run "
        f"is below {NEGLIGIBLE_CRASHES}, and not significantly more than PPO)",
        _combine({r: c.verdict for r, c in per_regime.items()}),
        per_regime,
    )


def kl_claim(aggregate: StabilityAggregate) -> Claim:
    per_regime = {}
    for regime, test in _safe_against_ppo(aggregate, "kl_p95").items():
        above = _mean(aggregate, regime, FULL_SAFE, "kl_above").mean
        verdict = _judge(test)
        extra = "" if above is None else f"; SAFE above its own threshold {above:.0%} of steps"
        per_regime[regime] = RegimeReading(
            verdict,
            test,
            {"safe_steps_above_own_threshold": above},
            _sentence(verdict, test, extra),
        )
    return Claim(
        "superior KL control (here: lower per-token KL p95 than PPO, paired)",
        _combine({r: c.verdict for r, c in per_regime.items()}),
        per_regime,
    )


def overhead_claim(aggregate: StabilityAggregate, speed: SpeedResults | None) -> Claim:
    """The controller's share of a trainer step and SAFE's whole iteration against PPO's, both
    measured on a quiet machine (the sweep's wall times share two cores between two runs and are
    only indicative: they are shown, not judged)."""
    per_regime = {
        regime: RegimeReading(test.verdict, test, {}, _sentence(test.verdict, test))
        for regime, test in _safe_against_ppo(aggregate, "wall_seconds").items()
    }
    if speed is None:
        verdict = "not measured (run the overhead and trainer-speed benchmarks)"
        return Claim(OVERHEAD_CLAIM, verdict, per_regime)
    iteration = speed.iteration_seconds
    method_overhead = iteration["safe"] / iteration["ppo"] - 1.0
    negligible = speed.controller_share_of_step < NEGLIGIBLE_CONTROLLER_SHARE
    verdict = (
        "refuted"
        if not negligible
        else "mixed"
        if method_overhead > NEGLIGIBLE_ITERATION_OVERHEAD
        else "confirmed"
    )
    note = (
        "the controller's update is below 0.1% of a trainer step; a SAFE iteration costs "
        f"{100 * method_overhead:+.0f}% against PPO's (the preview forward of step scaling and "
        "the second value head)"
    )
    reading = OverheadReading(
        controller_us_per_update=speed.controller_us_per_update,
        controller_share_of_step=speed.controller_share_of_step,
        iteration_seconds=dict(iteration),
        method_overhead=method_overhead,
        sentence=(
            f"`SafeController.update`: {fmt(speed.controller_us_per_update)} µs, "
            f"{100 * speed.controller_share_of_step:.4f}% of a trainer step; {note}."
        ),
    )
    return Claim(OVERHEAD_CLAIM, verdict, per_regime, reading)


def ablation_readings(aggregate: StabilityAggregate) -> tuple[AblationReading, ...]:
    """Per ablation and ``ABLATION_MEASURES``: "higher" / "lower" where the bootstrap CI of the
    paired difference against full SAFE excludes 0, else "no clear change"."""
    out = []
    for comparison in aggregate.comparisons:
        if comparison.baseline != FULL_SAFE:
            continue
        measures = {}
        for name in ABLATION_MEASURES:
            test = comparison.measures[name]
            if test is None:
                continue
            ci = test.difference.ci
            reading = (
                "no clear change"
                if ci is None or ci[0] <= 0.0 <= ci[1]
                else "higher"
                if ci[0] > 0
                else "lower"
            )
            measures[name] = MeasureReading(reading, test.relative, test.verdict)
        parts = []
        for name, m in measures.items():
            rel = "" if m.relative is None else f" ({100 * m.relative:+.1f}%)"
            parts.append(f"{MEASURES[name].label} {m.reading}{rel}")
        test_words = measures["reward_mean"].test if "reward_mean" in measures else "–"
        sentence = f"{comparison.variant}: " + ", ".join(parts) + f"; Wilcoxon: {test_words}."
        out.append(AblationReading(comparison.regime, comparison.variant, measures, sentence))
    return tuple(out)


def stability_words(aggregate: StabilityAggregate, speed: SpeedResults | None) -> StabilityWords:
    """Every claim and ablation reading of ``aggregate``; ``speed``: the overhead benchmarks."""
    claims = (
        reward_claim(aggregate),
        crash_claim(aggregate),
        kl_claim(aggregate),
        overhead_claim(aggregate, speed),
    )
    return StabilityWords(claims, ablation_readings(aggregate))
