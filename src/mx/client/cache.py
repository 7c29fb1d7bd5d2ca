"""The content-addressed cache under $MX_HOME (DESIGN section 5).

blobs/sha256/<hex> are immutable and read-only; models/<registry>/<ns>/<name>/<version>/
<variant>/<path> are links to them, and a `<variant>.record.json` beside each variant
folder says what it holds. A variant folder appears by one rename, so it is complete or absent.

Any number of mx processes may share one cache. The locks under locks/ (flock, see
mx.locking) say who may touch what:

- `cache.lock`: every process that uses the cache holds it shared; `mx cache clean`
  holds it exclusive, so it never empties a cache under a running install.
- `<sha256>.lock`: whoever holds it owns that blob and its partial download
  `tmp/<sha256>.part`. An install holds the locks of every blob it needs from before it
  looks for them until they are linked and recorded: prune deletes a blob only while
  holding its lock, and only when no record names it, so it never takes a blob from under
  an install and never leaves a link dangling.
- `variant-<hash>.lock`: one writer per variant folder; it also owns the stage folders
  and temp files beside that folder (`.<variant>.stage-*`, `.<variant>.retired-*`).

Locks are taken in that order (cache, variant, blobs sorted by hash), so installs never
wait on each other in a circle; prune and reclaim only ever try a lock, never wait.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx.fsutil import atomic_write_bytes, sha256_file
from mx.locking import Lock, acquire

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

CACHEDIR_TAG = (b"Signature: 8a477f597d28d172789f06886806bc55\n"
                b"# This file is a cache directory tag created by mx.\n"
                b"# For information about cache directory tags see https://bford.info/cachedir/\n")


@dataclass
class Cache:
    home: Path
    # Blobs whose locks this process holds now (`pinned`): fetching one of them must not
    # lock it again, which would wait on itself.
    _pinned: set[str] = field(default_factory=set, init=False, repr=False)

    @property
    def blobs(self) -> Path:
        return self.home / "blobs" / "sha256"

    @property
    def tmp(self) -> Path:
        return self.home / "tmp"

    @property
    def locks(self) -> Path:
        return self.home / "locks"

    @property
    def models(self) -> Path:
        return self.home / "models"

    def ensure(self) -> None:
        """The cache's folders; call with the cache lock held (clean may be emptying it)."""
        self.ensure_tag()
        for d in (self.blobs, self.tmp, self.locks):
            d.mkdir(parents=True, exist_ok=True)

    def ensure_tag(self) -> None:
        # The tag before anything else: a folder holding anything of ours is then always
        # recognisably a cache, even if this process is killed a moment later. Created in
        # place (one small write), so there is no temp file for a concurrent clean to meet.
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.home / "CACHEDIR.TAG", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return
        with os.fdopen(fd, "wb") as f:
            f.write(CACHEDIR_TAG)

    # -- locks ------------------------------------------------------------------

    def shared(self) -> Lock:
        """The cache lock, shared: held by every process using the cache."""
        self.ensure_tag()
        lock = acquire(self.locks / "cache.lock", shared=True)
        assert lock is not None  # no timeout: waits for a clean to finish
        self.ensure()
        return lock

    def exclusive(self, timeout: float | None) -> Lock | None:
        """The cache lock, exclusive (clean): None if others still use the cache."""
        self.ensure_tag()
        return acquire(self.locks / "cache.lock", timeout=timeout)

    def blob_lock_path(self, sha256: str) -> Path:
        return self.locks / f"{sha256}.lock"

    def variant_lock_path(self, variant_dir: Path) -> Path:
        rel = variant_dir.relative_to(self.models).as_posix()
        return self.locks / f"variant-{hashlib.sha256(rel.encode()).hexdigest()[:32]}.lock"

    def variant_lock(self, variant_dir: Path) -> Lock:
        lock = acquire(self.variant_lock_path(variant_dir))
        assert lock is not None
        return lock

    @contextmanager
    def pinned(self, shas: Iterable[str]) -> Iterator[None]:
        """Hold the locks of these blobs (in sorted order) for the length of the block."""
        with ExitStack() as stack:
            added = sorted(set(shas) - self._pinned)
            for sha in added:
                stack.enter_context(self._blob_lock(sha))
                self._pinned.add(sha)
            try:
                yield
            finally:
                self._pinned.difference_update(added)

    def holding_blob(self, sha256: str) -> AbstractContextManager[Lock | None]:
        """A context holding the blob's lock, unless this process holds it already."""
        return nullcontext() if sha256 in self._pinned else self._blob_lock(sha256)

    def _blob_lock(self, sha256: str) -> Lock:
        lock = acquire(self.blob_lock_path(sha256))
        assert lock is not None
        return lock

    # -- blobs and variant folders ------------------------------------------------

    def blob(self, sha256: str) -> Path:
        return self.blobs / sha256

    def part(self, sha256: str) -> Path:
        """Where the download of a blob grows, kept across processes so a rerun resumes."""
        return self.tmp / f"{sha256}.part"

    def store_blob(self, data: bytes) -> str:
        """Put bytes mx made itself (an input profile from the index record, never a
        download) in the blob store, read-only like the rest. The caller holds the blob's
        lock (`pinned`). Returns the sha256."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha, len(data)):
            atomic_write_bytes(self.blob(sha), data, mode=0o444, tmp_dir=self.tmp)
        return sha

    def has_blob(self, sha256: str, size: int) -> bool:
        try:
            return self.blob(sha256).stat().st_size == size
        except FileNotFoundError:
            return False

    def variant_dir(self, registry: str, name: str, version: str, variant: str) -> Path:
        return self.models / registry / name / version / variant

    def record_path(self, variant_dir: Path) -> Path:
        return variant_dir.with_name(variant_dir.name + ".record.json")

    def read_record(self, variant_dir: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(self.record_path(variant_dir).read_bytes())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        return data if _well_formed(data) else None

    def installed_files(self, variant_dir: Path, artifacts: list[dict[str, Any]]) -> bool:
        """True when every artifact is linked in the variant folder with the right size and
        the folder's record says it holds exactly that sha256 at that path.

        The digest matters: the folder is named by registry, model, version and variant,
        and another install (an `mx.lock` from anywhere) may have filled it with other
        bytes of the same size; those must be replaced, not handed out as this release."""
        record = self.read_record(variant_dir)
        files = record.get("files") if record is not None else None
        if not isinstance(files, dict):
            return False
        try:
            return all(files.get(a["path"]) == a["sha256"]
                       and (variant_dir / a["path"]).stat().st_size == a["size"]
                       for a in artifacts)
        except OSError:
            return False

    def link_snapshot(self, variant_dir: Path, files: dict[str, str],
                      record: dict[str, Any]) -> None:
        """Make `variant_dir` hold `files` (path -> sha256) by building it aside, then renaming.

        The caller holds the variant's lock and the locks of the blobs in `files`."""
        old = self.read_record(variant_dir) if variant_dir.exists() else None
        wanted = dict(old.get("files", {})) if old else {}
        wanted.update(files)
        # Staged beside its final place, so relative symlinks stay right after the rename.
        variant_dir.parent.mkdir(parents=True, exist_ok=True)
        stage = variant_dir.with_name(f".{variant_dir.name}.stage-{uuid.uuid4().hex[:8]}")
        try:
            for rel, sha in sorted(wanted.items()):
                link_file(self.blob(sha), stage / rel)
            # The record goes first and names a superset of what the folder holds, so prune
            # never sees a linked blob that no record claims.
            record = {**record, "files": dict(sorted(wanted.items()))}
            atomic_write_bytes(self.record_path(variant_dir),
                               json.dumps(record, sort_keys=True, indent=1).encode())
            if variant_dir.exists():
                retired = variant_dir.with_name(
                    f".{variant_dir.name}.retired-{uuid.uuid4().hex[:8]}")
                os.replace(variant_dir, retired)
                shutil.rmtree(retired, ignore_errors=True)
            os.replace(stage, variant_dir)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def records(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """(variant folder, record) for every variant folder that exists."""
        for rec_path in sorted(self.models.glob("*/*/*/*/*.record.json")):
            variant_dir = rec_path.with_name(rec_path.name.removesuffix(".record.json"))
            rec = self.read_record(variant_dir)
            if rec is not None and variant_dir.is_dir():
                yield variant_dir, rec

    def used_blobs(self) -> set[str]:
        """Every blob a record names: its files and its signature bundle."""
        used: set[str] = set()
        for _, rec in self.records():
            used.update(s for s in (rec.get("files") or {}).values() if isinstance(s, str))
            sig = (rec.get("signature") or {}).get("sha256")
            if isinstance(sig, str):
                used.add(sig)
        return used

    # -- cache commands ---------------------------------------------------------

    def installed(self) -> list[dict[str, Any]]:
        out = []
        for variant_dir, rec in self.records():
            size = 0
            for sha in rec.get("files", {}).values():
                # pruned or repaired meanwhile: `mx cache verify` reports it
                with suppress(OSError):
                    size += self.blob(sha).stat().st_size
            sig = rec.get("signature") or {}
            out.append({"registry": rec.get("registry"), "name": rec.get("name"),
                        "version": rec.get("version"), "variant": rec.get("variant"),
                        "path": str(variant_dir), "size": size,
                        "files": rec.get("files", {}), "signature": sig.get("sha256")})
        return out

    def corrupt_blobs(self) -> list[str]:
        """Blobs whose bytes no longer hash to their name."""
        bad: list[str] = []
        if not self.blobs.exists():
            return bad
        for blob in sorted(self.blobs.iterdir()):
            try:
                digest, _ = sha256_file(blob)
            except FileNotFoundError:
                continue  # pruned while we looked
            if digest != blob.name:
                bad.append(blob.name)
        return bad

    def broken_files(self) -> dict[Path, list[str]]:
        """Variant folder -> files its record names that are missing or the wrong size
        (a dangling link, a deleted file): what an install would have to redo."""
        broken: dict[Path, list[str]] = {}
        for variant_dir, rec in self.records():
            sizes = {a.get("path"): a.get("size") for a in rec.get("artifacts") or []
                     if isinstance(a, dict)}
            for rel, sha in sorted((rec.get("files") or {}).items()):
                try:
                    size = (variant_dir / rel).stat().st_size
                    blob = self.blob(sha).stat().st_size
                except OSError:
                    broken.setdefault(variant_dir, []).append(rel)
                    continue
                if size != blob or sizes.get(rel, size) != size:
                    broken.setdefault(variant_dir, []).append(rel)
        return broken

    def remove_variant(self, variant_dir: Path) -> None:
        """Drop one installed variant (folder, then record), under its lock."""
        with self.variant_lock(variant_dir):
            shutil.rmtree(variant_dir, ignore_errors=True)
            self.record_path(variant_dir).unlink(missing_ok=True)


def _well_formed(rec: Any) -> bool:
    """A record of the shape mx writes: anything else (a hand edit, a half-written disk,
    another tool) is read as no record, so the variant is reinstalled, never crashed on
    and never followed outside its folder."""
    if not isinstance(rec, dict):
        return False
    files = rec.get("files", {})
    if not isinstance(files, dict) or not all(
            isinstance(rel, str) and _inside(rel) and isinstance(sha, str)
            and SHA256_HEX.match(sha) for rel, sha in files.items()):
        return False
    sig = rec.get("signature")
    if sig is not None and not (isinstance(sig, dict) and isinstance(sig.get("sha256"),
                                                                     str | None)):
        return False
    arts = rec.get("artifacts", [])
    return isinstance(arts, list) and all(
        isinstance(a, dict) and isinstance(a.get("path"), str | None)
        and isinstance(a.get("size"), int | None) for a in arts)


def _inside(rel: str) -> bool:
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and ".." not in parts and "\\" not in rel


def link_file(src: Path, dest: Path) -> None:
    """Hard link, else relative symlink, else copy (DESIGN section 5)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}")
    try:
        os.link(src, tmp)
    except FileNotFoundError:
        raise  # never a link to nothing
    except OSError:
        try:
            os.symlink(os.path.relpath(src, dest.parent), tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
