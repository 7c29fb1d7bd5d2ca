"""Signatures live in git notes: `refs/notes/mx-signatures` on the release commit holds a
JSON object from model directory ("." for the root) to bundle. A release is a tag, so
its signature cannot live inside the tagged tree."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mx import dvclock, gitrepo, lfs
from mx.dvcfiles import DvcPointer
from mx.dvctrack import Listings
from mx.errors import GitError
from mx.sign.dvcsigned import (
    DvcDigest,
    cache_listings,
    cached_object,
    cached_sha256,
    dvc_outputs,
    files_of,
    pipeline_outputs,
)
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


@dataclass
class TreeDigests:
    files: dict[str, str]  # path in the model directory -> sha256
    # DVC-tracked paths whose sha256 could not be had here (a folder: all its files); their
    # pointer, which is in the tree, is what binds them
    unread: set[str] = field(default_factory=set)

    def covers(self, path: str) -> bool:
        """Whether `path` is one of `unread` or lies in one, and its sha256 is not known: a
        file whose digest is known is compared whatever pointer above it was not read."""
        return path not in self.files and any(
            p.as_posix() in self.unread
            for p in (PurePosixPath(path), *PurePosixPath(path).parents))


def tree_digests(repo: Any, commit: str, model_dir: str,
                 dvc_digest: DvcDigest | None = None) -> dict[str, str]:
    """sha256 of every file of a model directory at `commit` (`tree_files`, where every
    DVC-tracked file must be known)."""
    return tree_files(repo, commit, model_dir, dvc_digest).files


def tree_files(repo: Any, commit: str, model_dir: str, dvc_digest: DvcDigest | None = None,
               listings: Listings | None = None) -> TreeDigests:
    """sha256 of every file of a model directory at `commit`, from git alone
    (LFS pointers give their oid, which is the content's sha256), and of each file DVC
    tracks there: `dvc_digest` says it (the index builder knows its artifacts'), else the
    work tree's DVC cache does. `listings` reads folders' listings (the work tree's DVC
    cache by default)."""
    import pygit2

    listings = listings or cache_listings(repo, model_dir)

    def digest_of(rel: str, pointer: DvcPointer) -> str | None:
        got = dvc_digest(rel, pointer) if dvc_digest else None
        return got if got is not None else cached_sha256(repo, model_dir, pointer)

    tree = repo[commit].tree
    if model_dir not in ("", "."):
        try:
            tree = repo[tree[model_dir].id]
        except KeyError:
            raise GitError(f"{model_dir}: not a directory at {commit[:12]}") from None
    found = TreeDigests({})
    out = found.files
    taken: set[str] = set()
    lock_dirs: list[str] = []
    top = "" if model_dir in ("", ".") else model_dir + "/"

    def add_dvc(outputs: dict[str, DvcPointer]) -> None:
        files, unread = files_of(outputs, listings, top)
        found.unread.update(unread)
        for rel, pointer in files.items():
            sha = digest_of(rel, pointer)
            if sha is None:
                found.unread.add(rel)
            else:
                out[rel] = sha

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
        outputs = {base + name: p for name, p in dvc_outputs(repo, t).items()}
        taken.update(outputs)
        add_dvc(outputs)

    walk(tree, "")
    taken.update(out)
    add_dvc(pipeline_outputs(repo, commit, model_dir, lock_dirs, taken))
    return found


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
            why = _name_problem(entry.name)
            if why is not None:
                shown = ascii((base / entry.name).relative_to(dest).as_posix())
                raise GitError(f"{shown} at {commit[:12]}: {why}, so the release cannot be "
                               "signed", hint="rename it in a new commit and tag that")
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
        outputs = {(base / name).relative_to(dest).as_posix(): p
                   for name, p in dvc_outputs(repo, t).items()}
        taken.update(outputs)
        link_dvc(outputs)

    def link_dvc(outputs: dict[str, DvcPointer]) -> None:
        files, unread = files_of(outputs, listings, top)
        if unread:
            raise GitError(f"{min(unread)}: the DVC folder's listing is not in the DVC cache, "
                           "so its files cannot be signed",
                           hint="run `dvc fetch` (or `dvc pull`) first")
        for rel, dvc_pointer in files.items():
            target = dest / rel
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                clash = target.exists()
            except (FileExistsError, NotADirectoryError):
                clash = True  # a folder above it is a file
            if clash:
                # Two pointers (dvc.lock files at different levels) name the path as a
                # file and as a folder: no link may replace what the other wrote.
                raise GitError(f"{rel}: DVC outputs name it both as a file and as a "
                               "folder (or twice), so the model cannot be signed",
                               hint="DVC refuses overlapping outputs; record each file once")
            _link_dvc_object(repo, model_dir, dvc_pointer, dest, target)

    listings = cache_listings(repo, model_dir)
    top = "" if model_dir in ("", ".") else model_dir + "/"
    dest.mkdir(parents=True, exist_ok=True)
    walk(tree, dest, True)
    dirs = [d for d in lock_dirs if d != "."]
    link_dvc(pipeline_outputs(repo, commit, model_dir, dirs, taken))


def _name_problem(name: str) -> str | None:
    """Why a tree entry's name cannot be written out and signed, or None. Crafted tree
    objects can hold `..` (libgit2 reads it, git refuses to check it out): written out, it
    would land above the temp folder."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        return "not a file name git would check out (a crafted tree)"
    if name.casefold().rstrip(". ") in (".git", "git~1"):
        return "a name git keeps for itself"
    if any("\udc80" <= c <= "\udcff" for c in name):  # pygit2's surrogateescape
        return "a file name that is not UTF-8, which signatures name files in"
    return None


def _link_dvc_object(repo: Any, model_dir: str, pointer: DvcPointer, dest: Path,
                     target: Path) -> None:
    cached = cached_object(repo, model_dir, pointer)
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
