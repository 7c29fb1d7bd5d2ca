"""Small filesystem helpers: atomic writes, hashing, safe relative paths."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
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


def verify_digest(actual_sha: str, actual_size: int, sha256: str, size: int, what: str) -> None:
    if actual_size != size:
        raise IntegrityError(f"{what}: got {actual_size} bytes, expected {size}",
                             hint="the file on the server is not the one the index describes")
    if actual_sha != sha256:
        raise IntegrityError(f"{what}: sha256 is {actual_sha}, expected {sha256}",
                             hint="the file was altered or corrupted; nothing was installed")
