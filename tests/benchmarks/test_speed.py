"""``python -m benchmarks.speed`` lists every speed benchmark, each a command; trainer_speed and
entropy_from_logits render their committed pages again from their committed json."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.speed.__main__ import BENCHMARKS, HERE, listing

ROOT = HERE.parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def test_the_listing_names_every_benchmark_module_of_the_package_once() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == listing()
    lines = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [words[0] for words in lines] == list(BENCHMARKS)
    assert all(len(words) > 3 for words in lines)  # each with its one-line description
    helpers = {"step_clock", "trl_peer", "__init__", "__main__"}
    modules = {p.stem for p in HERE.glob("*.py")} | {p.name for p in HERE.iterdir() if p.is_dir()}
    assert modules - helpers - {"__pycache__"} == set(BENCHMARKS)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_listed_benchmark_answers_help(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.speed.{name}", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"python -m benchmarks.speed.{name}" in done.stdout


def test_trainer_speed_renders_its_committed_page_again_from_the_json(tmp_path: Path) -> None:
    trainer_speed = importlib.import_module("benchmarks.speed.trainer_speed")
    shutil.copy(RESULTS / "trainer_speed.json", tmp_path / "trainer_speed.json")
    trainer_speed.main(["--render", "--out", str(tmp_path)])
    rendered = (tmp_path / "trainer_speed.md").read_text()
    assert rendered == (RESULTS / "trainer_speed.md").read_text()


@pytest.mark.parametrize("stem", ["entropy_from_logits", "entropy_from_logits_1thread"])
def test_entropy_from_logits_renders_its_committed_pages_again(stem: str) -> None:
    entropy = importlib.import_module("benchmarks.speed.entropy_from_logits")
    data = json.loads((RESULTS / f"{stem}.json").read_text())
    assert entropy.render_markdown(data) == (RESULTS / f"{stem}.md").read_text()
