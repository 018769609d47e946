"""Per-run locks on one results folder: at most one process runs (and checkpoints) a given run at a time.

Two suites on one ``--out`` (identical or overlapping) both plan the runs the store does not hold yet. Before a
process runs one, it takes the run's lock, an OS file lock on ``OUT/locks/<run_id>.lock``, and reads the store
again: a run another process stored meanwhile is not run twice. A run whose lock another process holds is
put off (``wait=False``) and waited for at the end, when it is usually stored already. The OS drops the lock
of a process that dies (even by ``kill -9``), so a crashed suite never leaves a run locked; the lock files
themselves stay behind, empty and harmless.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


def lock_path(out: str | os.PathLike, run_id: str) -> Path:
    """The lock file of run ``run_id`` under the results folder ``out``."""
    return Path(out) / "locks" / f"{run_id}.lock"


class RunLock:
    """The exclusive lock of one run in one results folder; release it (or leave the ``with`` block) when done."""

    def __init__(self, out: str | os.PathLike, run_id: str):
        self.path = lock_path(out, run_id)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, wait: bool) -> bool:
        """Take the lock; with ``wait`` False, return False at once when another process holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if _lock(fd, wait):
                self._fd = fd
                return True
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return False

    def release(self) -> None:
        """Drop the lock (a no-op when not held)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            _unlock(fd)
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock(fd: int, wait: bool) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True
    while True:  # msvcrt: LK_LOCK gives up after 10 s, so a waiting caller retries
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            if not wait:
                return False
            time.sleep(0.5)


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
