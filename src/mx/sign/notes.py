"""Signatures live in git notes: `refs/notes/mx-signatures` on the release commit holds a
JSON object from model directory ("." for the root) to bundle. A release is a tag, so
its signature cannot live inside the tagged tree."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from mx import dvcfiles, dvclock, gitrepo, lfs
from mx.dvcfiles import DvcPointer
from mx.dvclock import Pipelines
from mx.errors import GitError, MxError
from mx.sign.statement import IGNORED

NOTES_REF = "refs/notes/mx-signatures"


def read_signatures(repo: Any, commit: str) -> dict[str, Any]:
    """The note on `commit` as a dict (empty when there is none or it is not JSON)."""
    try:
        note = repo.lookup_note(commit, NOTES_REF)
    except KeyError:
        return {}
    try:
        data = json.loads(note.message)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def write_signature(repo: Any, commit: str, model_dir: str, bundle: dict[str, Any]) -> None:
    import pygit2

    notes = read_signatures(repo, commit)
    notes[model_dir] = bundle
    sig = repo.default_signature if _has_identity(repo) else pygit2.Signature(
        "mx", "mx@localhost")
    repo.create_note(json.dumps(notes, sort_keys=True, indent=1) + "\n", sig, sig, commit,
                     NOTES_REF, True)


def _has_identity(repo: Any) -> bool:
    try:
        repo.default_signature  # noqa: B018
        return True
    except KeyError:
        return False


DvcDigest = Callable[[str, DvcPointer], str | None]  # (path in the model dir, pointer) -> sha256


def dvc_outputs(repo: Any, tree: Any) -> dict[str, DvcPointer]:
    """The files of `tree` that DVC tracks: {name: pointer} for each `name.dvc` blob that
    points at a `name` which git does not hold (DVC git-ignores what it tracks)."""
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
    """The files of the model directory that only a dvc.lock tracks (outputs of `dvc
    repro`): {path in the model directory: pointer}, from the dvc.lock files at or above
    it and in `lock_dirs` (its folders holding one, relative to it), less `taken` (what git
    or a `.dvc` file holds). The index builder resolves an artifact the same way."""
    top = "" if model_dir in ("", ".") else model_dir
    above = [p.as_posix() for p in (PurePosixPath(top), *PurePosixPath(top).parents)]
    folders = [("" if f == "." else f) for f in above]
    folders += ["/".join(p for p in (top, d.rstrip("/")) if p) for d in lock_dirs]

    def read(rel: str, limit: int) -> bytes | None:
        return gitrepo.tree_entry_bounded(repo, commit, rel, limit)

    found = Pipelines(read).files_under(top, folders)
    return {rel: pointer for rel, pointer in found.items()
            if rel.split("/")[0] not in IGNORED
            and not any(p.as_posix() in taken for p in (PurePosixPath(rel),
                                                        *PurePosixPath(rel).parents))}


def _cached_dvc_object(repo: Any, model_dir: str, pointer: DvcPointer) -> Path | None:
    """The object in the work tree's DVC cache, checked against its md5 and size."""
    if repo.workdir is None:
        return None
    root = dvcfiles.find_root(Path(repo.workdir) / ("" if model_dir == "." else model_dir))
    path = dvcfiles.cached_object(root, pointer) if root is not None else None
    if path is None:
        return None
    got = dvcfiles.hash_file(path, pointer.legacy)
    return path if (got.md5, got.size) == (pointer.md5, pointer.size) else None


def tree_digests(repo: Any, commit: str, model_dir: str,
                 dvc_digest: DvcDigest | None = None) -> dict[str, str]:
    """sha256 of every file of a model directory at `commit`, from git alone
    (LFS pointers give their oid, which is the content's sha256), and of each file DVC
    tracks there: `dvc_digest` says it (the index builder knows its artifacts'), else the
    work tree's DVC cache does (a DVC-tracked file that is no artifact)."""
    import pygit2

    def from_cache(rel: str, pointer: DvcPointer) -> str | None:
        path = _cached_dvc_object(repo, model_dir, pointer)
        return dvcfiles.hash_file(path, pointer.legacy).sha256 if path is not None else None

    def digest_of(rel: str, pointer: DvcPointer) -> str | None:
        return (dvc_digest(rel, pointer) if dvc_digest else None) or from_cache(rel, pointer)

    tree = repo[commit].tree
    if model_dir not in ("", "."):
        try:
            tree = repo[tree[model_dir].id]
        except KeyError:
            raise GitError(f"{model_dir}: not a directory at {commit[:12]}") from None
    out: dict[str, str] = {}
    taken: set[str] = set()
    lock_dirs: list[str] = []

    def walk(t: Any, base: str) -> None:
        for entry in t:
            if not base and entry.name in IGNORED:
                continue
            obj = repo[entry.id]
            if isinstance(obj, pygit2.Tree):
                walk(obj, f"{base}{entry.name}/")
            elif isinstance(obj, pygit2.Blob):
                pointer = lfs.parse_pointer(obj.data) if obj.size <= lfs.POINTER_MAX else None
                out[base + entry.name] = (pointer.oid if pointer
                                          else hashlib.sha256(obj.data).hexdigest())
                if entry.name == dvclock.LOCK_FILE:
                    lock_dirs.append(base)
        for name, dvc_pointer in dvc_outputs(repo, t).items():
            taken.add(base + name)
            sha = digest_of(base + name, dvc_pointer)
            if sha is not None:
                out[base + name] = sha

    walk(tree, "")
    taken.update(out)
    for rel, dvc_pointer in pipeline_outputs(repo, commit, model_dir, lock_dirs,
                                             taken).items():
        sha = digest_of(rel, dvc_pointer)
        if sha is not None:
            out[rel] = sha
    return out


def materialize(repo: Any, commit: str, model_dir: str, dest: Path) -> None:
    """Write a model directory as it is at `commit` into `dest`, LFS content included
    (from the repository's local LFS store), so it can be signed exactly."""
    import pygit2

    tree = repo[commit].tree
    if model_dir not in ("", "."):
        tree = repo[tree[model_dir].id]
    git_dir = gitrepo.git_dir(repo)
    taken: set[str] = set()
    lock_dirs: list[str] = []

    def walk(t: Any, base: Path, top: bool) -> None:
        for entry in t:
            if top and entry.name in IGNORED:
                continue
            obj = repo[entry.id]
            target = base / entry.name
            if isinstance(obj, pygit2.Tree):
                target.mkdir(parents=True, exist_ok=True)
                walk(obj, target, False)
            elif isinstance(obj, pygit2.Blob):
                taken.add(target.relative_to(dest).as_posix())
                if entry.name == dvclock.LOCK_FILE:
                    lock_dirs.append(base.relative_to(dest).as_posix())
                pointer = lfs.parse_pointer(obj.data) if obj.size <= lfs.POINTER_MAX else None
                if pointer is None:
                    target.write_bytes(obj.data)
                    continue
                stored = lfs.local_object(git_dir, pointer.oid)
                if not stored.is_file():
                    raise GitError(f"{target.relative_to(dest)}: LFS object {pointer.oid} is "
                                   "not in the local store, so it cannot be signed",
                                   hint="run `git lfs fetch` for this tag first")
                _link(stored, target)
        for name, dvc_pointer in dvc_outputs(repo, t).items():
            taken.add((base / name).relative_to(dest).as_posix())
            _link_dvc_object(repo, model_dir, dvc_pointer, dest, base / name)

    dest.mkdir(parents=True, exist_ok=True)
    walk(tree, dest, True)
    dirs = [d for d in lock_dirs if d != "."]
    for rel, dvc_pointer in pipeline_outputs(repo, commit, model_dir, dirs, taken).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        _link_dvc_object(repo, model_dir, dvc_pointer, dest, dest / rel)


def _link_dvc_object(repo: Any, model_dir: str, pointer: DvcPointer, dest: Path,
                     target: Path) -> None:
    cached = _cached_dvc_object(repo, model_dir, pointer)
    if cached is None:
        raise GitError(f"{target.relative_to(dest)}: DVC object {pointer.md5} is not in the "
                       "DVC cache, so it cannot be signed",
                       hint="run `dvc fetch` (or `dvc pull`) first")
    _link(cached, target)


def _link(stored: Path, target: Path) -> None:
    try:
        os.link(stored, target)  # read-only use: no need to copy gigabytes
    except OSError:
        shutil.copyfile(stored, target)
