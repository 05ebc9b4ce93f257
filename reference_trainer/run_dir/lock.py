"""One process per run directory: an exclusive lock held for the whole run.

The lock is ``flock`` on the run directory itself, so the kernel releases it when its holder
exits, however it dies (a lock left by a crashed, even SIGKILLed, run is stale by construction),
and nothing inside the directory can be deleted out from under it: a lock on a file in it was lost
when a dot-file cleanup or ``rsync --delete`` removed that file, and a second trainer then resumed
into the live run. ``.lock`` only names the holder (pid, host, start time), so that a refused
process can say who holds the run; it is created afresh, never written through, so a link planted
there cannot redirect the write to its target.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import time
from pathlib import Path

from .files import write_all

LOCK_NAME = ".lock"


class RunDirectoryBusy(RuntimeError):
    """Another live process holds the run directory."""


class RunLock:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``RunDirectoryBusy`` at once, naming the holder."""
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirectoryBusy(
                    f"{self.directory} is in use by {self._holder()}; wait for it to finish "
                    f"(or stop it) before training or resuming there"
                ) from None
            except OSError as exc:  # a filesystem without locks: say which directory
                raise OSError(exc.errno, f"cannot lock {self.directory}: {exc.strerror}") from exc
            self._write_holder()
        except BaseException:
            os.close(fd)  # the only descriptor: closing it releases the lock
            raise
        self._fd = fd

    def _write_holder(self) -> None:
        """A fresh ``.lock`` naming this process: the old name is unlinked (a hard link's other
        name keeps its content) and the file created with O_EXCL, which never follows a link.
        Written in place, not through a temporary file: the other ranks check the directory
        meanwhile, and would take a temporary for a file that is not the run's."""
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(mode):  # a symlink, directory or device is someone else's
                raise FileExistsError(
                    f"{self.path} is not a regular file; the run keeps its holder's name there: "
                    f"remove it, then retry"
                )
            os.unlink(self.path)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                write_all(fd, json.dumps(holder).encode())
            finally:
                os.close(fd)
        except OSError as exc:  # a full disk: say which file
            raise OSError(exc.errno, f"could not write {self.path}: {exc.strerror or exc}") from exc

    def _holder(self) -> str:
        """The holder as ``.lock`` names it; never read through a link."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                text = os.read(fd, 4096).decode(errors="replace").strip()
            finally:
                os.close(fd)
        except OSError:  # deleted, or not a file: the directory's lock still says it is held
            text = ""
        return text or "another process"

    def release(self) -> None:
        # .lock stays: a stale one is harmless, only the directory's lock counts. LOCK_UN, not
        # only close: a child forked meanwhile shares the descriptor and would keep it locked.
        if self._fd is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
