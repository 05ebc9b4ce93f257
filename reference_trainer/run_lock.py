"""One process per run directory: an exclusive lock held for the whole run.

The lock is ``flock`` on ``<run_dir>/.lock``, so the kernel releases it when its holder exits,
however it dies: a lock left by a crashed (even SIGKILLed) run is stale by construction and the
next run simply takes it. The file names its holder (pid, host, start time) so that a refused
process can say who holds the run.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

LOCK_NAME = ".lock"


class RunDirectoryBusy(RuntimeError):
    """Another live process holds the run directory."""


class RunLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._handle: Any = None

    def acquire(self) -> None:
        """Take the lock or raise ``RunDirectoryBusy`` at once, naming the holder."""
        handle = open(self.path, "a+")  # noqa: SIM115 (held open for the whole run)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "an unknown process"
            handle.close()
            raise RunDirectoryBusy(
                f"{self.path.parent} is in use by {holder}; wait for it to finish "
                f"(or stop it) before training or resuming there"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%S"),
                }
            )
        )
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        # The file stays: unlinking it would let a process that opened it before the unlink lock
        # the orphaned inode while a third locks a new file, two holders at once.
        if self._handle is None:
            return
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
