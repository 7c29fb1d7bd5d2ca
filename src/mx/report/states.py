"""A repository's model directories as they are at a revision, or in the work tree."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx import lfs, yamlio
from mx.errors import GitError
from mx.gitrepo import join
from mx.hooks.scope import manifest_dirs
from mx.names import MANIFEST_FILE

CARD_FILE = "README.md"


@dataclass
class ModelState:
    model_dir: str
    manifest_text: str
    manifest: dict[str, Any]  # plain data; {} when the text does not parse
    card: str | None
    bench: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)  # could not be read, and why
    digests: dict[str, tuple[str, int]] = field(default_factory=dict)  # artifact -> sha, size

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.model_dir))


def resolve(root: Path, rev: str, what: str) -> str:
    if rev.startswith("-"):  # never an option on the git command lines below
        raise GitError(f"{what} {rev}: not a commit (starts with '-')",
                       hint="pass a branch, tag or sha")
    proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                          cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise GitError(f"{what} {rev}: not a commit in {root}",
                       hint="fetch it first (git fetch origin), or pass a branch, tag or sha")
    return proc.stdout.strip()


def read(root: Path, rev: str | None, path: str) -> bytes | None:
    """A file's bytes at `rev` (None: the work tree)."""
    if rev is None:
        try:
            return (root / path).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True)
    return proc.stdout if proc.returncode == 0 else None


def model_dirs(root: Path, rev: str | None) -> list[str]:
    if rev is None:
        proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                               "--exclude-standard"], cwd=root, capture_output=True, check=True)
    else:
        proc = subprocess.run(["git", "ls-tree", "-r", "-z", "--name-only", rev], cwd=root,
                              capture_output=True, check=True)
    return sorted(manifest_dirs(proc.stdout.decode("utf-8", "replace").split("\0")))


def load_state(root: Path, rev: str | None, model_dir: str) -> ModelState | None:
    raw = read(root, rev, join(model_dir, MANIFEST_FILE))
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    state = ModelState(model_dir, text, {}, None, None)
    try:
        doc = yamlio.to_plain(yamlio.load_text(text, join(model_dir, MANIFEST_FILE)))
        state.manifest = doc if isinstance(doc, dict) else {}
    except Exception as exc:  # a broken manifest is reported, not fatal to the report
        state.problems.append(f"mx.yaml does not parse: {exc}")
    card = read(root, rev, join(model_dir, CARD_FILE))
    state.card = card.decode("utf-8", "replace") if card is not None else None
    arts = state.manifest.get("artifacts")
    for art in arts if isinstance(arts, list) else []:
        if isinstance(art, dict) and isinstance(art.get("path"), str):
            digest = _digest(root, rev, join(model_dir, art["path"]))
            if digest is not None:
                state.digests[art["path"]] = digest
    bench_rel = state.manifest.get("benchmarks")
    if isinstance(bench_rel, str):
        data = read(root, rev, join(model_dir, bench_rel))
        if data is not None:
            try:
                state.bench = json.loads(data)
            except ValueError:
                state.problems.append(f"{bench_rel} is not JSON")
    return state


def _digest(root: Path, rev: str | None, path: str) -> tuple[str, int] | None:
    """sha256 and size of a file's content: from its LFS pointer when git holds one.

    A work-tree file that is not a pointer is left to validation, which hashes it anyway
    (the report takes its digests), so no artifact is read twice."""
    import hashlib

    if rev is None:
        target = root / path
        if not lfs.looks_like_pointer(target):
            return None
        pointer = lfs.parse_pointer(target.read_bytes())
        return (pointer.oid, pointer.size) if pointer else None
    data = read(root, rev, path)
    if data is None:
        return None
    pointer = lfs.parse_pointer(data)
    return (pointer.oid, pointer.size) if pointer else (hashlib.sha256(data).hexdigest(),
                                                        len(data))
