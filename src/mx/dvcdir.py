"""DVC directory outputs: the listing that names the files of a tracked folder.

`dvc add models` (or a stage output `models/`) records one output, `md5: <hex>.dir`, with
the folder's total `size` and `nfiles`. The folder's files are listed in an object of their
own, stored beside the files' objects (`files/md5/<2>/<30>.dir`, or `<2>/<30>.dir` for DVC
2), whose md5 is that `<hex>`: a JSON array sorted by `relpath`,

    [{"md5": "b1946ac9...", "relpath": "a.txt"}, {"md5": "87b53081...", "relpath": "sub/w.bin"}]

as dvc-data's `Tree.as_bytes` writes it (checked with DVC 3.67). Entries carry no size
(one written `with_meta` may: then it is read).

The listing comes from a cache or remote mx does not trust: its md5 must be the one the
pointer in git names, and it is bounded in bytes and entries; each `relpath` is checked
as any path from outside before a path is built from it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Any

from mx import dvcfiles
from mx.dvcfiles import MD5_RE, DvcPointer
from mx.errors import ConfigError, DvcProblem
from mx.fsutil import odd_characters_reason, unsafe_relpath_reason

MAX_LISTING = 64 << 20  # ~80 bytes an entry: some 800,000 files
MAX_FILES = 200_000


def parse_listing(data: bytes, directory: DvcPointer, shown: str) -> dict[str, DvcPointer]:
    """{relpath: pointer} for the files of the directory output `directory`, from its
    listing object's bytes; `shown` names the output in messages (`models.dvc`).

    A file's pointer has the listing's size for it, else none (`size` None) and the
    directory's total as its cap. Raises ConfigError with one line naming what is wrong."""
    where = f"{shown}: its listing {directory.md5}.dir"
    if len(data) > MAX_LISTING:
        raise ConfigError(f"{where} is over {MAX_LISTING >> 20} MiB, the most mx reads")
    got = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if got != directory.md5:
        raise ConfigError(f"{where} has md5 {got}: not the listing the pointer names",
                          hint="the DVC cache or remote holds another object under its name")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise ConfigError(f"{where} is not JSON") from None
    if not isinstance(doc, list):
        raise ConfigError(f"{where} is not a JSON array of files")
    if len(doc) > MAX_FILES:
        raise ConfigError(f"{where} lists more than {MAX_FILES:,} files")
    total = directory.limit
    files: dict[str, DvcPointer] = {}
    for i, entry in enumerate(doc):
        rel, pointer = _entry(entry, f"{where} [{i}]", directory, total)
        if rel in files:
            raise ConfigError(f"{where} [{i}] lists {rel!r} twice")
        files[rel] = pointer
    _no_file_holds_files(files, where)
    known = sum(p.size for p in files.values() if p.size is not None)
    if known > total:
        raise ConfigError(f"{where} lists {known} bytes of files, more than the "
                          f"{total} bytes its pointer says")
    return files


def _no_file_holds_files(files: dict[str, DvcPointer], where: str) -> None:
    """Refuse a listing that names `a` and `a/b`: no folder DVC hashed holds a file and a
    folder of one name, and writing both out (`mx sign`) would fail on the clash."""
    for i, rel in enumerate(files):  # in the listing's order: duplicates are refused
        for parent in PurePosixPath(rel).parents:
            if parent.as_posix() in files:
                raise ConfigError(f"{where} [{i}] relpath {rel[:200]!r} lies in the file "
                                  f"{parent.as_posix()[:200]!r} it also lists")


def _entry(entry: Any, field: str, directory: DvcPointer,
           total: int) -> tuple[str, DvcPointer]:
    if not isinstance(entry, dict):
        raise ConfigError(f"{field} is not an object")
    rel = entry.get("relpath")
    if not isinstance(rel, str) or not rel:
        raise ConfigError(f"{field}.relpath is missing")
    why = unsafe_relpath_reason(rel) or odd_characters_reason(rel)
    if why is None and (rel != rel.strip() or "\\" in rel or "//" in rel
                        or any(p in (".", "") for p in rel.split("/"))):
        why = "is not a plain relative path"
    if why is not None:
        raise ConfigError(f"{field}.relpath {rel[:200]!r} {why}")
    md5 = entry.get("md5")
    if not isinstance(md5, str) or not MD5_RE.fullmatch(md5):
        raise ConfigError(f"{field}.md5 {str(md5)[:40]!r} is not 32 lower-case hex digits")
    size = entry.get("size")
    if size is not None and (type(size) is not int or not 0 <= size <= total):
        raise ConfigError(f"{field}.size {str(size)[:40]!r} is not a byte count from 0 to "
                          f"the directory's {total}")
    return rel, DvcPointer(md5, size, legacy=directory.legacy, remote=directory.remote,
                           cap=total)


def member(files: dict[str, DvcPointer], rel: str, shown: str, directory: DvcPointer,
           redo: str) -> DvcPointer:
    """The pointer of the file `rel` of a directory output; ConfigError when the listing
    has no such file (`redo` says how to record it again: `dvc add models`)."""
    hit = files.get(rel)
    if hit is None:
        raise ConfigError(f"{shown}: the directory's listing {directory.md5}.dir has no "
                          f"file {rel!r}", hint=f"{redo} after adding it")
    return hit


def read_cached(root: Path | None, directory: DvcPointer, shown: str) -> bytes:
    """The bytes of a folder's listing in the DVC cache of the repository at `root`, at
    most MAX_LISTING + 1 (`parse_listing` checks them); DvcProblem when it is not there."""
    path = dvcfiles.cached_object(root, directory) if root is not None else None
    if path is None:
        raise DvcProblem(f"{shown}: the folder's listing {directory.md5}.dir is not in the "
                         "DVC cache, so the files in it cannot be checked against it; "
                         "`dvc fetch` (or `dvc pull`) first")
    with path.open("rb") as f:
        return f.read(MAX_LISTING + 1)
