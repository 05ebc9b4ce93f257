"""``python -m benchmarks.speed.overhead``: every registered controller and the simple-pid peer are
timed; the committed results render again from their json."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.speed import overhead
from safecontrol import registry

ROOT = Path(overhead.__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "speed" / "overhead.py"


def test_our_pid_and_the_simple_pid_peer_compute_the_same_outputs() -> None:
    # The peer comparison is only fair if both do the same work: same gains, limits, dt.
    factories = overhead.controllers()
    ours, peer = factories["safecontrol.PID"](), factories["simple_pid.PID (peer)"]()
    for k, h, r in overhead.stream(300):
        assert ours(k, h, r) == pytest.approx(peer(k, h, r), abs=1e-12)


def test_every_registered_controller_is_timed_first_then_the_peers() -> None:
    names = list(overhead.controllers())
    assert names[: len(registry.names())] == list(registry.names())
    assert {"safecontrol.PID", "simple_pid.PID (peer)"} <= set(names)


def test_quick_run_writes_every_controller_with_a_share_of_the_trainer_step(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed.overhead", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "overhead.json").read_text())
    assert set(result["controllers"]) == set(overhead.controllers())
    for row in result["controllers"].values():
        assert 0 < row["median_us"] <= row["p90_us"]
        assert 0 < row["share_of_step"] < 1
    assert set(result["goals"]) == {"safe_update_us", "safe_share_of_step"}
    assert result["meta"]["command"] == "python -m benchmarks.speed.overhead --quick"
    assert f"| {overhead.SAFE} |" in (tmp_path / "overhead.md").read_text()


def test_the_script_form_runs_from_any_directory(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", "."],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "overhead.json").is_file()


def test_bad_block_size_is_an_error_naming_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed.overhead", "--block", "0", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode != 0 and "--block" in done.stderr
    assert not (tmp_path / "overhead.json").exists()


def test_before_times_safe_of_a_git_revision_beside_todays(tmp_path: Path) -> None:
    assert overhead.main(["--quick", "--before", "HEAD", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "overhead.json").read_text())["controllers"]
    assert {"safe", "safe (before: HEAD)"} <= set(rows)
    assert all(row["median_us"] > 0 for row in rows.values())


def test_before_an_unknown_revision_is_an_error_naming_it(tmp_path: Path, capsys) -> None:
    assert overhead.main(["--quick", "--before", "no-such-rev", "--out", str(tmp_path)]) == 2
    assert "no-such-rev" in capsys.readouterr().err


def test_the_committed_markdown_renders_again_from_the_committed_json(tmp_path: Path) -> None:
    results = ROOT / "benchmarks" / "results"
    shutil.copy(results / "overhead.json", tmp_path / "overhead.json")
    assert overhead.main(["--render", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "overhead.md").read_text() == (results / "overhead.md").read_text()


def test_the_committed_results_time_every_registered_controller() -> None:
    result = json.loads((ROOT / "benchmarks" / "results" / "overhead.json").read_text())
    assert set(registry.names()) <= set(result["controllers"])
    assert len(result["meta"]["load_average_at_start"]) == 3
