"""A run directory: config.json, metrics.jsonl, samples.jsonl and the checkpoint.

Only the writer (rank 0) touches files, and only while it holds the directory's lock
(``run_lock``): a second trainer or a ``--resume`` of a live run is refused at once. A directory
that holds files but no run of ours is never written to. ``metrics.jsonl`` gets one line per
iteration, flushed (and fsynced before each checkpoint, which must never be ahead of the logs);
on resume the lines after the checkpoint's step are dropped, so a resumed run's log equals an
uninterrupted one. A write the disk refuses names the file and leaves whole lines behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from safecontrol.atomic_files import write_json_atomic, write_text_atomic

from ..config import TrainConfig, as_dict
from . import checkpoint
from .files import read_json, read_step_records, write_all
from .lock import LOCK_NAME, RunLock

OUTCOME_FREE_KEYS = ("reward_timeout", "report_to", "checkpoint_every", "sample_every")
"""Config keys that cannot change what a run trains or logs per step: a timeout for a scorer that
hung, trackers, and how often checkpoints and samples are written."""
RESUMABLE_CHANGES = ("steps", "run_dir", "device", "micro_batch_size", *OUTCOME_FREE_KEYS)
"""Config keys a resumed run may change: those, more steps, where the directory now lives, and
the device and memory it continues on (the same run, equal within float rounding)."""
OWN_KEYS = frozenset({"algo", "run_dir", "kl_estimator", "seed"})
"""Keys that mark a ``config.json`` as one of ours (every version of TrainConfig has them)."""


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


def config_differences(saved: dict[str, Any], config: TrainConfig) -> list[str]:
    """Keys whose value differs between a saved config and ``config``, beyond those a resume
    may change; keys that an older version did not save count as their default."""
    mine = json.loads(json.dumps(as_dict(config)))
    defaults = json.loads(json.dumps(as_dict(TrainConfig())))
    return sorted(
        k
        for k in saved.keys() | mine.keys()
        if k not in RESUMABLE_CHANGES and saved.get(k, defaults.get(k)) != mine.get(k)
    )


class RunLog:
    def __init__(self, directory: Path, writer: bool = True) -> None:
        self.directory = directory
        self.writer = writer
        self.checkpoint_path = directory / checkpoint.CHECKPOINT_NAME
        self.metrics_path = directory / "metrics.jsonl"
        self.samples_path = directory / "samples.jsonl"
        self.config_path = directory / "config.json"

    # ------------------------------------------------------------------ opening
    def check(self, config: TrainConfig, resume: bool) -> None:
        """Refuse, before anything is written, a directory this run must not write to.

        New run: the directory is missing or empty. Resume: it holds a run of ours with the same
        config (a run that stopped before its first checkpoint restarts from step 0).
        """
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(f"run_dir {self.directory} is a file, not a directory")
        entries = (
            sorted(p.name for p in self.directory.iterdir() if p.name != LOCK_NAME)
            if self.directory.is_dir()
            else []
        )
        saved = self._saved_config()
        if saved is None:
            if entries:
                shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
                raise FileExistsError(
                    f"run_dir {self.directory} is not empty ({shown}) and holds no training run; "
                    f"choose a new or empty directory"
                )
            if resume:
                raise FileNotFoundError(f"--resume: {self.directory} holds no run to resume")
            return
        if not resume:
            hint = (
                "pass --resume to continue it"
                if self.checkpoint_path.is_file()
                else "it stopped before its first checkpoint; pass --resume to restart it from "
                "step 0"
            )
            raise FileExistsError(
                f"{self.directory} already holds a run; {hint}, or choose another run_dir"
            )
        changed = config_differences(saved, config)
        if changed:
            raise ValueError(
                f"--resume: config differs from the saved run ({self.config_path}) in {changed}"
            )

    def _saved_config(self) -> dict[str, Any] | None:
        """The saved config.json when it is one of ours, else None."""
        if not self.config_path.is_file():
            return None
        saved = read_json(self.config_path)
        if not isinstance(saved, dict) or not saved.keys() >= OWN_KEYS:
            return None
        return saved

    @contextlib.contextmanager
    def session(self, config: TrainConfig, resume: bool) -> Iterator[None]:
        """Hold the directory's lock for the block (writer only), checking it again under the
        lock; a directory this call created is removed again if the block fails before the
        config is written."""
        self.check(config, resume)
        if not self.writer:
            yield
            return
        created = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = RunLock(self.directory)
        try:
            lock.acquire()
        except BaseException:
            if created:
                shutil.rmtree(self.directory, ignore_errors=True)
            raise
        try:
            self.check(config, resume)
            yield
        except BaseException:
            if created and not self.config_path.exists():
                lock.release()
                shutil.rmtree(self.directory, ignore_errors=True)
            raise
        finally:
            lock.release()

    def write_config(self, config: TrainConfig) -> None:
        if self.writer:
            write_json_atomic(self.config_path, as_dict(config))

    # ------------------------------------------------------------------ checkpoints
    def latest_checkpoint(self, config: TrainConfig) -> dict[str, Any] | None:
        """The checkpoint (checked to belong to this run), or None when the run stopped before
        its first one."""
        if not self.checkpoint_path.is_file():
            if self.writer:
                print(
                    f"note: {self.directory} has no checkpoint yet; restarting it from step 0",
                    file=sys.stderr,
                )
            return None
        state = checkpoint.load(self.checkpoint_path)
        changed = config_differences(state["config"], config)
        if changed:
            raise ValueError(
                f"checkpoint {self.checkpoint_path} belongs to another run: its config differs "
                f"in {changed}"
            )
        return state

    def truncate_metrics(self, step: int) -> None:
        """Keep the metric lines of steps ≤ ``step`` (the checkpoint's)."""
        for path in (self.metrics_path, self.samples_path):
            if not self.writer or not path.exists():
                continue
            _drop_cut_short_line(path)
            kept = read_step_records(path, keep=lambda row: row["step"] <= step)
            write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in kept))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Rank 0 writes ``state`` (every rank's RNG streams in it) after the logs it covers."""
        if self.writer:
            for path in (self.metrics_path, self.samples_path):
                _fsync(path)
            checkpoint.save_atomic(self.checkpoint_path, state)

    # ------------------------------------------------------------------ logs
    def log_metrics(self, metrics: dict[str, Any]) -> None:
        self._append(self.metrics_path, metrics)

    def log_samples(
        self, step: int, samples: list[tuple[str, str]], metrics: dict[str, Any]
    ) -> None:
        self._append(
            self.samples_path,
            {
                "step": step,
                "reward_mean": metrics["reward_mean"],
                "samples": [{"prompt": p, "completion": c} for p, c in samples],
            },
        )

    def progress(self, total: int, initial: int, enabled: bool) -> Any:
        if not (enabled and self.writer):
            return _NoBar()
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc="train", file=sys.stderr, dynamic_ncols=True)

    def _append(self, path: Path, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        line = json.dumps(record, allow_nan=False)  # strict JSON: a NaN metric is a bug upstream
        try:
            _append_whole(path, (line + "\n").encode())
        except OSError as exc:  # a full disk, a permission: say which file
            raise OSError(exc.errno, f"could not append to {path}: {exc.strerror or exc}") from exc


def _append_whole(path: Path, data: bytes) -> None:
    """Append ``data`` whole or not at all: what a full disk took of it is cut off again, so the
    log keeps whole lines (``report`` and ``--resume`` read lines)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        end = os.fstat(fd).st_size
        try:
            write_all(fd, data)
        except OSError:
            with contextlib.suppress(OSError):  # the write's error is the one to report
                os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)


def _drop_cut_short_line(path: Path) -> None:
    """Cut off, with a warning, a last line that is not JSON and lacks its newline. Only an
    append cut short by a kill or a power loss leaves one (``_append`` writes line and newline in
    one piece, before its step's checkpoint), so its step lies past the checkpoint a resume
    starts from: the resumed run writes it again, and refusing it as corrupt would make the run
    unresumable. Any other corrupt line is still refused, naming file and line."""
    data = path.read_bytes()
    whole = data.rfind(b"\n") + 1
    if whole == len(data) or _is_json(data[whole:]):
        return
    number = data.count(b"\n", 0, whole) + 1
    print(
        f"warning: {path} line {number} was cut short by a crash during its append (it has no "
        f"newline); dropping it, the resumed run writes that step again",
        file=sys.stderr,
    )
    os.truncate(path, whole)


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def _fsync(path: Path) -> None:
    """Put ``path``'s appended lines on disk (a missing file has none)."""
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
