"""A full disk at any write of a run, or a crash in the middle of an append, loses nothing
already saved, names the file it could not write, and leaves a run that ``--resume`` continues."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from trainer import test_run_directory as run_directory

from reference_trainer.__main__ import main
from reference_trainer.run_dir import checkpoint
from reference_trainer.run_dir.files import read_step_records

cli = run_directory.cli
tiny = run_directory.tiny  # the tiny-model fixture (a fixture is found by its name here)

pytestmark = pytest.mark.skipif(
    not (Path("/dev/full").exists() and Path("/proc/self/fd").is_dir()),
    reason="injects ENOSPC through /dev/full and names descriptors through /proc (Linux)",
)


@pytest.fixture(scope="module")
def saved_run(tiny, tmp_path_factory) -> Path:
    """A run that saved step 1 (checkpoint, metrics and samples lines); each test copies it."""
    run_dir = tmp_path_factory.mktemp("saved") / "run"
    assert main(cli(tiny, run_dir, "--set", "steps=1")) == 0
    return run_dir


def full_disk(monkeypatch: pytest.MonkeyPatch, name: str, how: str) -> None:
    """From now on a write to the run file ``name`` fails with ENOSPC: ``how="in place"`` after
    taking the first half of the first write (a disk that fills mid-line), ``how="atomic"`` at
    the temporary file that would replace it (it is opened on /dev/full)."""
    if how == "in place":
        write, filled = os.write, []

        def failing_write(fd: int, data: bytes) -> int:
            if Path(os.readlink(f"/proc/self/fd/{fd}")).name != name:
                return write(fd, data)
            if not filled:
                filled.append(True)
                return write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "write", failing_write)
    else:
        mkstemp = tempfile.mkstemp

        def full_mkstemp(suffix=None, prefix=None, dir=None, text=False):
            fd, path = mkstemp(suffix, prefix, dir, text)
            if prefix != f".{name}.":
                return fd, path
            os.close(fd)
            return os.open("/dev/full", os.O_WRONLY), path

        monkeypatch.setattr(tempfile, "mkstemp", full_mkstemp)


def steps(path: Path) -> list[int]:
    return [row["step"] for row in read_step_records(path)]


@pytest.mark.parametrize(
    "name, how",
    [
        (".lock", "in place"),  # the holder's name, written when the lock is taken
        ("metrics.jsonl", "atomic"),  # cut back to the checkpoint's step on resume
        ("samples.jsonl", "atomic"),
        ("config.json", "atomic"),
        ("metrics.jsonl", "in place"),  # a line appended per step
        ("samples.jsonl", "in place"),
        ("checkpoint.pt", "atomic"),
    ],
)
def test_a_full_disk_at_any_write_loses_nothing_and_the_run_resumes_once_space_is_back(
    tiny, saved_run, tmp_path, monkeypatch, capsys, name, how
):
    run_dir = tmp_path / "run"
    shutil.copytree(saved_run, run_dir)
    saved = {log: (run_dir / log).read_bytes() for log in ("metrics.jsonl", "samples.jsonl")}
    with monkeypatch.context() as patch:
        full_disk(patch, name, how)
        assert main(cli(tiny, run_dir, "--resume", "--set", "steps=3")) == 2
    err = capsys.readouterr().err
    assert f"{run_dir / name}: No space left on device" in err
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    # Nothing saved is lost: the checkpoint loads; the logs hold whole lines, step 1 unchanged.
    assert checkpoint.load(run_dir / "checkpoint.pt")["step"] == 1
    assert json.loads((run_dir / "config.json").read_text())["steps"] in (1, 3)  # old or new
    for log in ("metrics.jsonl", "samples.jsonl"):
        assert (run_dir / log).read_bytes().startswith(saved[log])
        assert steps(run_dir / log)[0] == 1
    assert main(cli(tiny, run_dir, "--resume", "--set", "steps=3")) == 0
    assert checkpoint.load(run_dir / "checkpoint.pt")["step"] == 3
    assert steps(run_dir / "metrics.jsonl") == steps(run_dir / "samples.jsonl") == [1, 2, 3]


@pytest.mark.parametrize("log", ["metrics.jsonl", "samples.jsonl"])
@pytest.mark.parametrize("checkpointed", [True, False], ids=["past the checkpoint", "from step 0"])
def test_a_line_cut_short_by_a_crash_is_dropped_on_resume_with_a_warning(
    tiny, saved_run, tmp_path, capsys, log, checkpointed
):
    """A kill or a power loss in the middle of an append leaves half a line
    (no newline) after the last checkpoint; every later ``--resume`` was refused."""
    run_dir = tmp_path / "run"
    shutil.copytree(saved_run, run_dir)
    if not checkpointed:  # the run stopped before its first checkpoint
        (run_dir / "checkpoint.pt").unlink()
    line = json.dumps({"step": 2, "reward_mean": 0.5, "samples": []})
    with open(run_dir / log, "a") as handle:
        handle.write(line[: len(line) // 2])
    assert main(cli(tiny, run_dir, "--resume", "--set", "steps=3")) == 0
    assert f"{run_dir / log} line 2" in capsys.readouterr().err
    assert steps(run_dir / "metrics.jsonl") == steps(run_dir / "samples.jsonl") == [1, 2, 3]


def test_a_corrupt_line_the_checkpoint_covers_still_refuses_naming_file_and_line(
    tiny, saved_run, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    shutil.copytree(saved_run, run_dir)
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "rew\n')
    assert main(cli(tiny, run_dir, "--resume", "--set", "steps=3")) == 2
    assert f"{run_dir / 'metrics.jsonl'} line 1 is corrupt" in capsys.readouterr().err
