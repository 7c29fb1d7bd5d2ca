"""Small filesystem helpers: atomic writes, hashing, safe relative paths."""

from __future__ import annotations

import hashlib
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from mx.errors import IntegrityError

CHUNK = 1 << 20
# Longest file or folder name (in UTF-8 bytes) a model may use: filesystems stop at 255,
# and mx writes `.<name>.<8 hex>` temp names beside each file before renaming it.
MAX_NAME_BYTES = 200


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None,
                       tmp_dir: Path | None = None) -> None:
    """Write `data` to a temp file beside `path` (or in `tmp_dir`), fsync-free, then rename
    over it.

    Readers see the old file or the new one, never a half-written one.
    """
    with atomic_writer(path, mode, tmp_dir) as f:
        f.write(data)


@contextmanager
def atomic_writer(path: Path, mode: int | None = None,
                  tmp_dir: Path | None = None) -> Iterator[BinaryIO]:
    """A file to stream into; it replaces `path` only if the block finishes.

    `tmp_dir` (on the same filesystem as `path`) keeps the temp file out of a folder that
    others read, such as a published index: a process killed mid-write leaves it there.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    where = tmp_dir if tmp_dir is not None else path.parent
    where.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=where, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, mode if mode is not None else _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mode_for(path: Path) -> int:
    """Keep an existing file's mode; a new file gets what open() would give it (umask)."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_if_changed(path: Path, data: bytes, tmp_dir: Path | None = None) -> bool:
    """Atomically write unless the file already holds exactly `data` (keeps mtimes stable)."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    atomic_write_bytes(path, data, tmp_dir=tmp_dir)
    return True


def walk_files(root: Path, rel: str = "") -> Iterator[tuple[str, Path]]:
    """(path relative to root's parent as `rel/...`, path) of every regular file under
    `root`, symlinks not followed, in no particular order. os.scandir, not Path.rglob: a
    rebuild walks tens of thousands of published files, and rglob is ten times slower."""
    stack = [(root, rel)]
    while stack:
        folder, prefix = stack.pop()
        try:
            it = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for entry in it:
                name = f"{prefix}/{entry.name}" if prefix else entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), name))
                elif entry.is_file(follow_symlinks=False):
                    yield name, Path(entry.path)


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def unsafe_relpath_reason(rel: str) -> str | None:
    """Why `rel` may not name a file inside a model directory, or None if it may."""
    if not rel or rel.strip() != rel:
        return "is empty or has surrounding spaces"
    if "\\" in rel or "\x00" in rel:
        return "contains a backslash or NUL"
    p = PurePosixPath(rel)
    if p.is_absolute() or (len(rel) > 1 and rel[1] == ":"):
        return "is absolute"
    if any(part == ".." for part in p.parts):
        return "contains '..'"
    # `.GIT`, `.git.` and `GIT~1` are `.git` on case-insensitive (macOS, Windows)
    # filesystems: written under `mx install --to .`, they would replace .git/config.
    if any(part.casefold().rstrip(". ") in (".git", "git~1") for part in p.parts):
        return "points into .git"
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for part in p.parts):
        return f"has a name longer than {MAX_NAME_BYTES} bytes"
    return None


def odd_characters_reason(rel: str) -> str | None:
    """Why a path read from JSON or YAML escapes (a DVC listing, a dvc.lock) cannot name a
    file, or None. A lone surrogate (`\\ud800`) is no file name any system can hold: making a
    path of it raises UnicodeEncodeError, not OSError. A control character (a newline) would
    break the one-line messages that name the path."""
    if any("\ud800" <= c <= "\udfff" for c in rel):
        return "is not valid Unicode (a lone surrogate)"
    if any(c < " " or "\x7f" <= c <= "\x9f" for c in rel):
        return "contains a control character"
    return None


def resolve_inside(root: Path, rel: str) -> Path | None:
    """`root/rel` with links resolved, or None when it would leave `root`."""
    real_root = root.resolve()
    target = (root / rel).resolve()
    if target == real_root or real_root in target.parents:
        return target
    return None


class HashingWriter:
    """A download sink: writes to a temp file and hashes the same bytes on the way.

    Writing and hashing run on a worker thread (both release the GIL), so they
    overlap with reading the network instead of following it. Chunks are handed
    over in batches, without copying. `reset` starts over (a server that ignored
    a Range request sends everything again); `resume` continues after what the file
    already holds.
    """

    BATCH = 8 << 20

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._h = hashlib.sha256()
        self.size = 0
        self._pending: list[bytes | memoryview] = []
        self._pending_size = 0
        self._queue: queue.Queue[list[bytes | memoryview] | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._drain, daemon=True)
        self._worker.start()

    def _drain(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                if self._error is None:
                    for chunk in batch:
                        self._f.write(chunk)
                        self._h.update(chunk)
            except BaseException as exc:  # handed to the caller on its next call
                self._error = exc
            finally:
                self._queue.task_done()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, chunk: bytes | memoryview) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        self.size += len(chunk)
        if self._pending_size >= self.BATCH:
            self._submit()

    def _submit(self) -> None:
        self._check()
        if self._pending:
            self._queue.put(self._pending)
            self._pending, self._pending_size = [], 0

    def flush(self) -> None:
        self._submit()
        self._queue.join()
        self._check()

    def resume(self) -> None:
        """Hash the bytes already in the file (an earlier attempt's prefix) and count them,
        so the digest at the end covers the whole file. Call before the first write."""
        self.flush()
        self._f.seek(0)
        for chunk in iter(lambda: self._f.read(CHUNK), b""):
            self._h.update(chunk)
            self.size += len(chunk)

    def reset(self) -> None:
        self.flush()
        self._f.seek(0)
        self._f.truncate()
        self._h = hashlib.sha256()
        self.size = 0

    def hexdigest(self) -> str:
        self.flush()
        return self._h.hexdigest()

    def close(self) -> None:
        """Stop the worker; call once, also after a failure."""
        self._pending = []
        self._queue.put(None)
        self._worker.join()


def fetch_verified(dest: Path, sha256: str, size: int, tmp_dir: Path,
                   fill: Callable[[HashingWriter], None], what: str) -> None:
    """Fill a process-unique temp file, check size and sha256, then rename it to `dest`.

    Nothing reaches `dest` unverified; a failure leaves no temp file behind.
    """
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=f"{sha256[:16]}.{os.getpid()}.",
                               suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            writer = HashingWriter(f)
            try:
                fill(writer)
                digest = writer.hexdigest()
            finally:
                writer.close()
        verify_digest(digest, writer.size, sha256, size, what)
        os.chmod(tmp, 0o444)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def verify_digest(actual_sha: str, actual_size: int, sha256: str, size: int, what: str) -> None:
    if actual_size != size:
        raise IntegrityError(f"{what}: got {actual_size} bytes, expected {size}",
                             hint="the file on the server is not the one the index describes")
    if actual_sha != sha256:
        raise IntegrityError(f"{what}: sha256 is {actual_sha}, expected {sha256}",
                             hint="the file was altered or corrupted; nothing was installed")
