"""The plant study's verdicts, computed once from the aggregate and stored in the results JSON:
for SAFE against each other controller and event, whether the exact test concludes and which way.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.plant.aggregate import PairedEvent, PlantAggregate
from benchmarks.stats import CONFIDENCE

NO_DISCORDANT = "cannot conclude: no discordant pairs (identical outcomes on every pair)"


def verdict(item: PairedEvent, p_value: float, p_name: str) -> str:
    """ "fewer under SAFE" / "more under SAFE" when ``p_value`` is below 1 − CONFIDENCE, else why
    not (``p_name`` names the p-value in the sentence)."""
    if item.discordant == 0:
        return NO_DISCORDANT
    if p_value >= 1 - CONFIDENCE:
        return f"cannot conclude ({p_name} = {p_value:.2g})"
    return "fewer under SAFE" if item.difference < 0 else "more under SAFE"


@dataclass(frozen=True)
class PlantWords:
    """Verdicts of SAFE against each other controller, by event."""

    overall: dict[str, dict[str, str]]
    """Other controller → event → verdict of the Holm-adjusted test."""
    by_preset: dict[str, dict[str, dict[str, str]]]
    """Preset → other controller → event → verdict of the raw test."""


def plant_words(aggregate: PlantAggregate) -> PlantWords:
    overall: dict[str, dict[str, str]] = {}
    for other, events in aggregate.paired_overall.items():
        overall[other] = {}
        for event, item in events.items():
            assert item.p_holm is not None  # the overall comparisons are always adjusted
            overall[other][event] = verdict(item, item.p_holm, "p holm")
    by_preset = {
        preset: {
            other: {e: verdict(item, item.p_value, "p value") for e, item in events.items()}
            for other, events in per_other.items()
        }
        for preset, per_other in aggregate.paired_by_preset.items()
    }
    return PlantWords(overall=overall, by_preset=by_preset)
