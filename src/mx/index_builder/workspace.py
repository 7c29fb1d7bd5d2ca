"""Who may write an output folder, and where a build keeps its temp files.

One build per output at a time: the lock lives in the build cache dir, keyed by the
output's absolute path, so nothing of the build's bookkeeping is published (or shows up
in the registry repository's `git status`). Temp files go to a folder on the output's
filesystem, so that one rename publishes a finished file, but outside the output, so a
build killed mid-write publishes no half-written file.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mx.errors import BuildError
from mx.fsutil import walk_files
from mx.locking import acquire

# What an interrupted atomic write leaves beside its target (mx.fsutil.atomic_writer, and
# the site's copies): `.<name>.<random>.tmp` or `.<name>.tmp`.
_TEMP = re.compile(r"^\..+\.tmp$")


def _key(out: Path) -> str:
    return hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]


def lock_path(out: Path, cache_dir: Path) -> Path:
    return cache_dir / "locks" / f"out-{_key(out)}.lock"


def state_path(out: Path, cache_dir: Path, name: str) -> Path:
    """A file of the builder's own about one output (what it last published there)."""
    return cache_dir / "state" / f"out-{_key(out)}.{name}"


@contextmanager
def output_lock(out: Path, cache_dir: Path, wait: float = 0) -> Iterator[None]:
    """Hold `out` for one build; after `wait` seconds, refuse in one line."""
    path = lock_path(out, cache_dir)
    lock = acquire(path, timeout=wait)
    if lock is None:
        waited = f" after waiting {wait:g} s" if wait else ""
        raise BuildError(f"{out}: another `mx index build` is writing this output (it holds "
                         f"{path}); nothing was written{waited}",
                         hint="let that build finish, or pass --wait SECONDS to queue behind it")
    with lock:
        yield


def temp_dir(out: Path, cache_dir: Path) -> Path:
    """An empty folder for this build's temp files (call with the output lock held)."""
    out.mkdir(parents=True, exist_ok=True)
    device = out.stat().st_dev
    candidates = [cache_dir / "tmp" / f"out-{_key(out)}",
                  out.resolve().parent / f".{out.resolve().name}.mx-tmp",
                  out / ".mx-tmp"]  # a mount point of its own: a dot-folder, removed after
    for folder in candidates:
        shutil.rmtree(folder, ignore_errors=True)  # what a killed build left
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if folder.stat().st_dev == device:
            return folder
        folder.rmdir()
    raise BuildError(f"{out}: no folder for temp files on the same filesystem",
                     hint="make the output's parent folder writable")


def reclaim_output(out: Path) -> int:
    """Remove temp files a killed build left inside `out` (call with the lock held): files
    of older mx versions, and of writers that cannot be told where to put them."""
    removed = 0
    if not out.is_dir():
        return removed
    legacy = out / "artifacts" / ".tmp"
    if legacy.is_dir():
        shutil.rmtree(legacy, ignore_errors=True)
        removed += 1
    for _, path in walk_files(out):
        if path.name.startswith(".") and _TEMP.match(path.name):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
