"""Every registered controller is in each committed result that compares every controller.

The frontier, the plant and the overhead benchmark run "every registered controller" by reading
the registry at run time; a controller registered after their results were last generated is
missing from them until they are regenerated, and this test says which. (The stability study is
SAFE's published comparison, the steering and TRL studies measure kl-budget against fixed β: they
name their controllers, so they are not held to the registry.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safecontrol import registry

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def frontier_controllers() -> set[str]:
    records = json.loads((RESULTS / "frontier.json").read_text())["records"]
    return {r["algo"] for r in records}


def plant_controllers() -> set[str]:
    return set(json.loads((RESULTS / "plant.json").read_text())["config"]["controllers"])


def overhead_controllers() -> set[str]:
    return set(json.loads((RESULTS / "overhead.json").read_text())["controllers"])


@pytest.mark.parametrize(
    "controllers", [frontier_controllers, plant_controllers, overhead_controllers]
)
def test_every_registered_controller_is_in_the_committed_result(controllers) -> None:
    missing = set(registry.names()) - controllers()
    assert not missing, f"{controllers.__name__[:-12]} lacks {sorted(missing)}: regenerate it"
