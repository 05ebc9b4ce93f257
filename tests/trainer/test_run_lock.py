"""One process per run directory: a second trainer on a live run is refused at once naming the
holder, even when ``.lock`` was deleted or replaced by a link; a lock left by a killed process does
not block the next run (``reference_trainer/run_dir/lock.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from trainer import test_run_directory as run_directory

from reference_trainer.__main__ import main
from reference_trainer.run import train
from reference_trainer.run_dir import checkpoint

cli, config, constant_reward = (
    run_directory.cli,
    run_directory.config,
    run_directory.constant_reward,
)
tiny = run_directory.tiny  # the tiny-model fixture (a fixture is found by its name here)


HOLDER = """
import sys, time
from pathlib import Path
from reference_trainer.run_dir.lock import RunLock
lock = RunLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


@contextlib.contextmanager
def held(run_dir: Path) -> Iterator[subprocess.Popen]:
    """Another process holding ``run_dir``'s lock for the block."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_second_trainer_on_a_live_run_directory_is_refused_at_once_naming_the_holder(
    tiny, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    train(config(tiny, run_dir), reward_fn=constant_reward, progress=False)
    with held(run_dir) as holder:
        metrics_before = (run_dir / "metrics.jsonl").read_bytes()
        start = time.monotonic()
        assert main(cli(tiny, run_dir, "--resume", "--set", "steps=4")) == 2
        assert time.monotonic() - start < 30  # refused at once, not after training
        err = capsys.readouterr().err
        assert "in use by" in err and f'"pid": {holder.pid}' in err
        assert (run_dir / "metrics.jsonl").read_bytes() == metrics_before


def test_deleting_the_lock_file_of_a_live_run_does_not_let_a_second_trainer_in(
    tiny, tmp_path, capsys
):
    """A dot-file cleanup or ``rsync --delete`` removing ``.lock`` from under a live run."""
    run_dir = tmp_path / "run"
    train(config(tiny, run_dir), reward_fn=constant_reward, progress=False)
    with held(run_dir):
        (run_dir / ".lock").unlink()
        metrics_before = (run_dir / "metrics.jsonl").read_bytes()
        assert main(cli(tiny, run_dir, "--resume", "--set", "steps=4")) == 2
        assert f"{run_dir} is in use by" in capsys.readouterr().err
        assert (run_dir / "metrics.jsonl").read_bytes() == metrics_before


@pytest.mark.parametrize("link", [os.symlink, os.link], ids=["symlink", "hard link"])
def test_a_linked_lock_file_never_writes_through_to_its_target(tiny, tmp_path, capsys, link):
    """``.lock`` once was opened in place and truncated, overwriting a link's target with the
    holder's JSON."""
    run_dir = tmp_path / "run"
    train(config(tiny, run_dir), reward_fn=constant_reward, progress=False)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run_dir / ".lock").unlink()
    link(victim, run_dir / ".lock")
    code = main(cli(tiny, run_dir, "--resume", "--set", "steps=3"))
    assert victim.read_text() == "precious\n"
    if link is os.symlink:  # refused, naming it
        assert code == 2
        assert f"{run_dir / '.lock'} is not a regular file" in capsys.readouterr().err
    else:  # a regular file: replaced, the other name keeps its content
        assert code == 0
        assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()


def test_a_lock_left_by_a_killed_process_does_not_block_the_next_run(tiny, tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir.parent)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()  # SIGKILL: the lock file stays, naming a dead pid
    holder.wait()
    run_dir.mkdir()
    os.replace(run_dir.parent / ".lock", run_dir / ".lock")
    train(config(tiny, run_dir), reward_fn=constant_reward, progress=False)
    assert checkpoint.load(run_dir / "checkpoint.pt")["step"] == 2
