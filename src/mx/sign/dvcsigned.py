"""The files DVC tracks in a model directory at a commit, for signing it and for checking
a signature against it: `NAME.dvc` pointers (a file, or a folder whose listing names its
files) and stage outputs of the dvc.lock files at or above the directory and inside it.

The signer reads listings and objects from the work tree's DVC cache; the index builder
passes its own (mx.index_builder.dvc), which also reads remotes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from mx import dvcdir, dvcfiles, gitrepo
from mx.dvcfiles import DvcPointer
from mx.dvclock import Pipelines
from mx.dvctrack import Listings
from mx.errors import DvcProblem, MxError
from mx.sign.statement import IGNORED

DvcDigest = Callable[[str, DvcPointer], str | None]  # (path in the model dir, pointer) -> sha256


def dvc_outputs(repo: Any, tree: Any) -> dict[str, DvcPointer]:
    """What `tree`'s `NAME.dvc` blobs track: {name: pointer} (a `directory` pointer for a
    folder) for each that points at a `name` which git does not hold (DVC git-ignores
    what it tracks)."""
    import pygit2

    names = {e.name for e in tree}
    out: dict[str, DvcPointer] = {}
    for entry in tree:
        name = entry.name.removesuffix(dvcfiles.SUFFIX)
        if name == entry.name or not name or name in names:
            continue
        obj = repo[entry.id]
        if not isinstance(obj, pygit2.Blob) or obj.size > dvcfiles.MAX_DVC_FILE:
            continue
        try:
            out[name] = dvcfiles.parse_pointer(obj.data, entry.name, name)
        except MxError:
            continue  # not a pointer mx can read: signed as the file it is
    return out


def pipeline_outputs(repo: Any, commit: str, model_dir: str, lock_dirs: list[str],
                     taken: set[str]) -> dict[str, DvcPointer]:
    """The outputs in the model directory that only a dvc.lock tracks (`dvc repro`'s):
    {path in the model directory: pointer}, from the dvc.lock files at or above it and in
    `lock_dirs` (its folders holding one, relative to it), less `taken` (what git or a
    `.dvc` file holds) and the outputs at folders git holds files in (mx.dvctrack refuses an
    artifact in such a folder output; DVC refuses such an output). The index builder
    resolves an artifact the same way."""
    top = "" if model_dir in ("", ".") else model_dir
    above = [p.as_posix() for p in (PurePosixPath(top), *PurePosixPath(top).parents)]
    folders = [("" if f == "." else f) for f in above]
    folders += ["/".join(p for p in (top, d.rstrip("/")) if p) for d in lock_dirs]

    def read(rel: str, limit: int) -> bytes | None:
        return gitrepo.tree_entry_bounded(repo, commit, rel, limit)

    found = Pipelines(read).files_under(top, folders)
    held = {p.as_posix() for t in taken for p in PurePosixPath(t).parents}
    return {rel: pointer for rel, pointer in found.items()
            if rel.split("/")[0] not in IGNORED and rel not in held
            and not any(p.as_posix() in taken for p in (PurePosixPath(rel),
                                                        *PurePosixPath(rel).parents))}


def _dvc_root(repo: Any, model_dir: str) -> Path | None:
    if repo.workdir is None:
        return None
    return dvcfiles.find_root(Path(repo.workdir) / ("" if model_dir == "." else model_dir))


def _cached(repo: Any, model_dir: str,
            pointer: DvcPointer) -> tuple[Path, dvcfiles.Digests] | None:
    """The file's object in the work tree's DVC cache and its digests (one read gives md5
    and sha256), when it is there and matches its pointer."""
    root = _dvc_root(repo, model_dir)
    path = dvcfiles.cached_object(root, pointer) if root is not None else None
    if path is None:
        return None
    got = dvcfiles.hash_file(path, pointer.legacy)
    return (path, got) if pointer.matches(got) else None


def cached_object(repo: Any, model_dir: str, pointer: DvcPointer) -> Path | None:
    """The file's object in the work tree's DVC cache, checked against its pointer."""
    hit = _cached(repo, model_dir, pointer)
    return hit[0] if hit is not None else None


def cached_sha256(repo: Any, model_dir: str, pointer: DvcPointer) -> str | None:
    """The sha256 of the file's object in the work tree's DVC cache, checked against its
    pointer in the same read."""
    hit = _cached(repo, model_dir, pointer)
    return hit[1].sha256 if hit is not None else None


def cache_listings(repo: Any, model_dir: str) -> Listings:
    """Folder listings from the work tree's DVC cache (DvcProblem when one is not there)."""
    def read(directory: DvcPointer, shown: str) -> bytes:
        return dvcdir.read_cached(_dvc_root(repo, model_dir), directory, shown)

    return Listings(read)


def files_of(outputs: dict[str, DvcPointer], listings: Listings,
             base: str) -> tuple[dict[str, DvcPointer], set[str]]:
    """`outputs` ({path: pointer}, paths below `base`) with each folder replaced by its
    files, and the folders whose listing could not be had (DvcProblem from `listings`)."""
    files: dict[str, DvcPointer] = {}
    unread: set[str] = set()
    for path, pointer in outputs.items():
        if not pointer.directory:
            files[path] = pointer
            continue
        try:
            listed = listings.files(pointer, dvcfiles.pointer_path(base + path))
        except DvcProblem:
            unread.add(path)
            continue
        for rel, file in listed.items():
            files[f"{path}/{rel}"] = file
    return files, unread
