"""The content of ``plant.json``: how the study ran (meta, config, settings), its aggregate and
words, and the per-run records; written compactly and read back for regeneration.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.plant.aggregate import PlantAggregate, aggregate
from benchmarks.plant.plan import DEFINITIONS
from benchmarks.plant.records import Runs, runs_from_json, runs_to_json
from benchmarks.plant.words import PlantWords, plant_words
from benchmarks.stats import RESAMPLES


@dataclass(frozen=True)
class PlantReport:
    meta: dict[str, Any]
    """How the sweep ran: command, date, machine, run count and times."""
    config: dict[str, Any]
    """What it ran: controllers and their settings, seeds, steps, grid, presets, statistics."""
    settings: dict[str, dict[str, Any]]
    """Setting name → preset, factors, plant config and seed range (in sweep order)."""
    results: PlantAggregate
    words: PlantWords
    runs: Runs
    definitions: dict[str, str]


def build(
    meta: dict[str, Any],
    config: dict[str, Any],
    settings: dict[str, dict[str, Any]],
    runs: Runs,
    resamples: int = RESAMPLES,
) -> PlantReport:
    """The report of ``runs``: statistics and verdicts computed here, once."""
    results = aggregate(runs, {name: s["preset"] for name, s in settings.items()}, resamples)
    return PlantReport(
        meta=meta,
        config=config,
        settings=settings,
        results=results,
        words=plant_words(results),
        runs=runs,
        definitions=dict(DEFINITIONS),
    )


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _compact(data: Any) -> str:
    """Indented JSON, every list of scalars and every innermost object on one line."""
    text = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False)
    text = re.sub(r"\[[^\[\]{}]*\]", lambda m: " ".join(m.group(0).split()), text)
    return re.sub(r"\{[^{}]*\}", lambda m: " ".join(m.group(0).split()), text) + "\n"


def dumps(report: PlantReport) -> str:
    """``plant.json``: statistics to 6 significant digits, the per-run records exactly."""
    summary = {
        "meta": report.meta,
        "config": report.config,
        "definitions": report.definitions,
        "settings": report.settings,
        "results": asdict(report.results),
        "words": asdict(report.words),
    }
    return _compact({**_rounded(summary), "runs": runs_to_json(report.runs)})


def rebuild(data: dict[str, Any], resamples: int = RESAMPLES) -> PlantReport:
    """The report of a ``plant.json``'s stored runs, its statistics computed afresh (with
    ``resamples``, which the config then records); meta and settings as stored."""
    config = {**data["config"], "bootstrap": {**data["config"]["bootstrap"]}}
    config["bootstrap"]["n_resamples"] = resamples
    return build(data["meta"], config, data["settings"], runs_from_json(data["runs"]), resamples)
