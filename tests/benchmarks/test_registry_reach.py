"""A controller registered at run time reaches the plant and overhead benchmarks with no other
edit (issue 11's acceptance): the user's toy of ``tests/toy_controller.py``, registered for the
test, is swept by ``benchmarks.plant --quick`` and timed by
``benchmarks.speed.overhead --quick``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from toy_controller import registered

from benchmarks.plant.__main__ import main as plant_main
from benchmarks.speed import overhead
from safecontrol import registry


@pytest.fixture
def toy() -> Iterator[str]:
    with registered() as name:
        yield name
    assert name not in registry.names()


def test_a_registered_controller_is_swept_by_the_plant_benchmark(toy: str, tmp_path: Path) -> None:
    assert plant_main(["--quick", "--seeds", "1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "plant.json").read_text())
    assert toy in report["config"]["controllers"]
    assert report["config"]["controller_settings"][toy] == {}  # its registered defaults
    assert toy in report["results"]["overall"]
    assert toy in report["results"]["paired_overall"]
    for group in report["runs"].values():
        assert len(group[toy]["kl_p95"]) == 1
    assert f"| {toy} |" in (tmp_path / "plant.md").read_text()


def test_a_registered_controller_is_timed_by_the_overhead_benchmark(
    toy: str, tmp_path: Path
) -> None:
    assert overhead.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "overhead.json").read_text())
    assert result["controllers"][toy]["median_us"] > 0
    assert f"| {toy} |" in (tmp_path / "overhead.md").read_text()
