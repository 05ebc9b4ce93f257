"""The stability study's results file: every run record, the aggregate and the words, as one
typed record that ``stability.json`` stores (``dataclasses.asdict``) and ``read_results`` reads
back."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from benchmarks.codec import decode
from benchmarks.stability.aggregate import StabilityAggregate
from benchmarks.stability.records import RunRecord
from benchmarks.stability.words import StabilityWords

RESULTS_NAME = "stability.json"


@dataclass(frozen=True)
class Meta:
    plan: str
    """"full" or "quick"."""
    machine: str
    """Where the runs were trained."""
    command: str
    """The command that wrote the results."""
    source: str
    """Where the records were read from: a runs directory or a results file."""
    plots: tuple[str, ...]
    """The plot files beside the results."""


@dataclass(frozen=True)
class StabilityResults:
    meta: Meta
    runs: tuple[RunRecord, ...]
    """Every run's record: the results regenerate from these alone."""
    aggregate: StabilityAggregate
    words: StabilityWords


@dataclass(frozen=True)
class StoredRecords:
    """The part of a results file that a report regenerates from."""

    meta: Meta
    runs: tuple[RunRecord, ...]


def read_results(path: Path) -> StabilityResults:
    return decode(StabilityResults, json.loads(path.read_text()))


def read_records(path: Path) -> StoredRecords:
    """The meta and run records of a results file (without decoding what derives from them)."""
    data = json.loads(path.read_text())
    if "runs" not in data:
        raise ValueError(f"{path} stores no run records (written before records were stored)")
    return decode(StoredRecords, {"meta": data["meta"], "runs": data["runs"]})


def write_results(results: StabilityResults, path: Path) -> None:
    path.write_text(json.dumps(dataclasses.asdict(results), indent=1, sort_keys=True) + "\n")
