"""Tidying the cache while other mx processes use it: verify, prune, clean, reclaim.

Everything here follows the lock protocol in mx.client.cache: what a live process holds
is never removed, and what a killed process left (partial downloads, stage folders, temp
files) is reclaimed by the next command that takes its lock.
"""

from __future__ import annotations

import re
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from mx.client.cache import Cache
from mx.errors import MxError
from mx.locking import try_acquire

# A partial download is worth keeping for a resume this long after its last write; an
# install reclaims older ones (prune takes every one nobody is writing).
PART_GRACE = 24 * 3600
# Temp files of older mx versions carry no lock: their age is all that says they are dead.
LEGACY_GRACE = 3600
PRUNE_BATCH = 256

# A partial download and, for one fetched in ranged parts, the list of parts it holds.
_PART = re.compile(r"^([0-9a-f]{64})\.(part|ranges)$")
# What a writer of variant <v> leaves beside it: stage and retired folders, temp records.
_BESIDE = re.compile(r"^\.(?P<variant>.+?)\.(stage-[0-9a-f]{8}|retired-[0-9a-f]{8}"
                     r"|record\.json\.[^/]+\.tmp)$")


@dataclass
class Tally:
    files: int = 0
    bytes: int = 0

    def remove(self, path: Path) -> None:
        """Remove a file or folder, counting the bytes that really go (a file with another
        hard link keeps its bytes); gone already is fine."""
        try:
            if path.is_dir() and not path.is_symlink():
                size = sum(_freed(p) for p in path.rglob("*"))
                shutil.rmtree(path)
            else:
                size = _freed(path)
                path.unlink()
        except FileNotFoundError:
            return
        self.files += 1
        self.bytes += size


def _freed(path: Path) -> int:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 else 0


def reclaim_tmp(cache: Cache, part_grace: float = PART_GRACE) -> Tally:
    """Remove partial downloads nobody is writing that are older than `part_grace`, and
    what older mx versions left in tmp/."""
    tally = Tally()
    if not cache.tmp.is_dir():
        return tally
    now = time.time()
    for entry in sorted(cache.tmp.iterdir()):
        try:
            age = now - entry.lstat().st_mtime
        except FileNotFoundError:
            continue
        m = _PART.match(entry.name)
        if m is None:
            if age > LEGACY_GRACE:
                tally.remove(entry)
            continue
        if age < part_grace:
            continue
        lock = try_acquire(cache.blob_lock_path(m.group(1)))
        if lock is not None:  # busy means a download is writing it now
            with lock:
                tally.remove(entry)
    return tally


def reclaim_beside(cache: Cache, version_dir: Path, held: str | None = None) -> Tally:
    """Remove stage folders and temp records left beside the variant folders of one version
    (`held`: the variant whose lock the caller holds already)."""
    tally = Tally()
    try:
        entries = sorted(version_dir.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return tally
    for entry in entries:
        m = _BESIDE.match(entry.name)
        if m is None:
            continue
        variant = m.group("variant")
        if variant == held:
            tally.remove(entry)
            continue
        lock = try_acquire(cache.variant_lock_path(version_dir / variant))
        if lock is not None:
            with lock:
                tally.remove(entry)
    return tally


def _version_dirs(cache: Cache) -> Iterator[Path]:
    yield from sorted(p for p in cache.models.glob("*/*/*/*") if p.is_dir())


def reclaim(cache: Cache, held: Path | None = None, part_grace: float = PART_GRACE) -> Tally:
    """What killed processes left anywhere in the cache (`held`: the variant folder whose
    lock the caller holds)."""
    tally = reclaim_tmp(cache, part_grace)
    for version_dir in _version_dirs(cache):
        mine = held.name if held is not None and held.parent == version_dir else None
        extra = reclaim_beside(cache, version_dir, mine)
        tally.files += extra.files
        tally.bytes += extra.bytes
    return tally


def prune(cache: Cache) -> tuple[int, int]:
    """Remove blobs no installed model uses, and what killed processes left: (files, bytes)."""
    with cache.shared():
        tally = reclaim(cache, part_grace=0)
        used = cache.used_blobs()
        candidates = sorted(b.name for b in cache.blobs.iterdir() if b.name not in used)
        for start in range(0, len(candidates), PRUNE_BATCH):
            with ExitStack() as stack:
                held = []
                for sha in candidates[start:start + PRUNE_BATCH]:
                    lock = try_acquire(cache.blob_lock_path(sha))
                    if lock is not None:  # busy: an install is fetching or linking it
                        held.append(sha)
                        stack.enter_context(lock)
                        stack.callback(lock.unlink)  # runs before the release
                # Read the records again now that we hold the locks: an install that
                # linked one of these blobs wrote its record before it let go.
                used = cache.used_blobs()
                for sha in held:
                    if sha not in used:
                        tally.remove(cache.blob(sha))
    return tally.files, tally.bytes


def verify(cache: Cache, repair: bool = False) -> tuple[list[str], dict[Path, list[str]]]:
    """Re-hash every blob and check every installed file: (corrupt blobs, variant folder ->
    missing files). With `repair`, remove both (the next install brings them back)."""
    with cache.shared():
        bad = cache.corrupt_blobs()
        broken = cache.broken_files()
        if not repair:
            return bad, broken
        for variant_dir, rec in cache.records():
            if set((rec.get("files") or {}).values()) & set(bad):
                broken.setdefault(variant_dir, [])
        for variant_dir in broken:
            cache.remove_variant(variant_dir)
        for sha in bad:
            with cache.holding_blob(sha):
                cache.blob(sha).unlink(missing_ok=True)
        return bad, broken


def clean(cache: Cache, timeout: float | None) -> None:
    """Empty the cache, once no other mx process uses it (waiting up to `timeout` s).

    CACHEDIR.TAG and the cache lock stay: an empty cache is still a cache, so a clean that
    was interrupted can be run again, and a process waiting for the lock finds it."""
    home = cache.home
    if not home.exists():
        return
    if not (home / "CACHEDIR.TAG").exists() and any(home.iterdir()):
        raise MxError(f"{home}: has no CACHEDIR.TAG, so it is not an mx cache; "
                      "nothing was removed", hint="check MX_HOME")
    lock = cache.exclusive(timeout)
    if lock is None:
        raise MxError(f"{home}: another mx process is using the cache (an install, prune or "
                      f"verify); nothing was removed after waiting {timeout:g} s",
                      hint="run `mx cache clean` again when it has finished")
    tally = Tally()
    with lock:
        for entry in sorted(home.iterdir()):
            if entry.name not in ("CACHEDIR.TAG", "locks"):
                tally.remove(entry)
        for entry in sorted(cache.locks.iterdir()):
            if entry.name != "cache.lock":
                tally.remove(entry)
