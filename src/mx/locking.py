"""Advisory file locks between mx processes: exclusive or shared (flock).

The kernel drops a lock when its holder exits, kill -9 included, so a lock is never
stale and never needs breaking. A lock file may be deleted while held (`mx cache clean`,
`mx cache prune` tidy them): whoever then gets the lock of a file that is no longer at its
path lets go and locks the file now there, so two holders never lock different files of
one name. Threads of one process exclude each other too (each acquire opens its own file).

Where flock is missing (Windows) every lock is exclusive: slower under contention, but sound.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import suppress
from pathlib import Path
from types import TracebackType

if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int, shared: bool) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _wait_lock(fd: int, shared: bool) -> None:
        while not _try_lock(fd, shared):
            time.sleep(0.05)
else:
    import fcntl

    def _try_lock(fd: int, shared: bool) -> bool:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _wait_lock(fd: int, shared: bool) -> None:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)


class Lock:
    """A held lock; `release` (or leaving the `with` block, or exit) lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the lock
            self._fd = None

    def unlink(self) -> None:
        """Delete the lock file while holding it (see the module docstring)."""
        if self._fd is not None:
            with suppress(OSError):  # Windows keeps open files; the file then stays
                self.path.unlink(missing_ok=True)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def acquire(path: Path, *, shared: bool = False, timeout: float | None = None) -> Lock | None:
    """Lock `path` (created if missing). `timeout` None waits as long as it takes, 0 tries
    once; returns None when the time ran out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            if deadline is None:
                _wait_lock(fd, shared)
                got = True
            else:
                got = _try_lock(fd, shared)
            if got and _still_there(fd, path):
                lock, fd = Lock(path, fd), -1
                return lock
        finally:
            if fd >= 0:
                os.close(fd)
        if got:
            continue  # the file was deleted while we waited for it: lock the new one
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def try_acquire(path: Path, *, shared: bool = False) -> Lock | None:
    """The lock if nobody holds it now, else None (for reclaiming: busy means alive)."""
    return acquire(path, shared=shared, timeout=0)


def _still_there(fd: int, path: Path) -> bool:
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_ino, here.st_dev) == (mine.st_ino, mine.st_dev)
