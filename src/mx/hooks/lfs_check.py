"""`mx-lfs`: model bytes go to Git LFS, and the pointers git stores are well formed.

Three rules, all read from git itself (what is staged is what the commit will hold):
every artifact listed in an mx.yaml has `filter=lfs` from .gitattributes; every staged
file with `filter=lfs` is stored as a well-formed pointer; no other staged binary is
larger than `max_plain_bytes`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mx import lfs
from mx.errors import ConfigError
from mx.gitrepo import join
from mx.hooks import HookOutcome
from mx.hooks.scope import model_dirs, tracked_files
from mx.manifest import load_manifest
from mx.validate import Problem

DEFAULT_MAX_PLAIN_BYTES = 512 * 1024


@dataclass(frozen=True)
class StagedBlob:
    path: str
    oid: str
    size: int


def check_lfs(root: Path, files: list[str],
              max_plain_bytes: int = DEFAULT_MAX_PLAIN_BYTES) -> HookOutcome:
    tracked = tracked_files(root)
    dirs = model_dirs(root, tracked)
    out = HookOutcome()
    artifact_paths = _artifact_paths(root, dirs)  # all: .gitattributes is shared
    candidates = sorted(set(files or tracked) | set(artifact_paths))
    if not candidates:
        out.skipped = "no files to check"
        return out
    filters = lfs_filters(root, candidates)
    for path in artifact_paths:
        if filters.get(path) != "lfs":
            out.problems.append(Problem(
                ".gitattributes", None,
                f"no Git LFS pattern covers the artifact {path}; run "
                f"`git lfs track \"*{PurePosixPath(path).suffix or path}\"` and `git add "
                f".gitattributes {path}`"))
    in_index = set(tracked)
    staged = {b.path: b for b in staged_blobs(root, [p for p in candidates if p in in_index])}
    contents = read_small_blobs(root, [b for b in staged.values() if b.size <= lfs.POINTER_MAX])
    for path, blob in sorted(staged.items()):
        out.checked.append(path)
        data = contents.get(blob.oid)
        if filters.get(path) == "lfs":
            if data is None or lfs.parse_pointer(data) is None:
                what = ("a malformed LFS pointer" if data is not None
                        and data.startswith(b"version https://git-lfs") else "a plain git blob")
                out.problems.append(Problem(
                    path, None, f"is tracked by Git LFS but staged as {what}; run "
                    f"`git rm --cached {path} && git add {path}` with git-lfs installed"))
        elif blob.size > max_plain_bytes and _is_binary(root / path):
            out.problems.append(Problem(
                path, None, f"is a {blob.size}-byte binary staged outside Git LFS (limit "
                f"{max_plain_bytes}); run `git lfs track` for it, then `git add` again"))
    return out


def _artifact_paths(root: Path, dirs: list[str]) -> list[str]:

    out = []
    for d in dirs:
        try:
            loaded = load_manifest(root / d)
        except ConfigError:
            continue  # mx-validate reports a broken manifest; nothing to read here
        out += [join(d, a.path) for a in loaded.manifest.artifacts]
    return sorted(set(out))


def lfs_filters(root: Path, paths: list[str]) -> dict[str, str]:
    """The `filter` attribute git computes for each path (from every .gitattributes)."""
    proc = subprocess.run(["git", "check-attr", "-z", "--stdin", "filter"], cwd=root,
                          input=b"\0".join(p.encode() for p in paths) + b"\0",
                          capture_output=True, check=True)
    parts = proc.stdout.decode("utf-8", "replace").split("\0")
    return {parts[i]: parts[i + 2] for i in range(0, len(parts) - 2, 3)}


def staged_blobs(root: Path, paths: list[str]) -> list[StagedBlob]:
    if not paths:
        return []
    proc = subprocess.run(["git", "ls-files", "-s", "-z", "--", *paths], cwd=root,
                          capture_output=True, check=True)
    entries = []
    for rec in proc.stdout.decode("utf-8", "replace").split("\0"):
        if rec:
            meta, _, path = rec.partition("\t")
            mode, oid, _stage = meta.split()
            if mode != "160000":  # submodules are not blobs
                entries.append((path, oid))
    sizes = _blob_sizes(root, [oid for _, oid in entries])
    return [StagedBlob(path, oid, sizes[oid]) for path, oid in entries]


def _blob_sizes(root: Path, oids: list[str]) -> dict[str, int]:
    if not oids:
        return {}
    proc = subprocess.run(["git", "cat-file", "--batch-check"], cwd=root,
                          input="\n".join(oids).encode() + b"\n", capture_output=True, check=True)
    out = {}
    for line in proc.stdout.decode().splitlines():
        oid, _kind, size = line.split()
        out[oid] = int(size)
    return out


def read_small_blobs(root: Path, blobs: list[StagedBlob]) -> dict[str, bytes]:
    """Contents of (pointer-sized) blobs, through one `git cat-file --batch`."""
    oids = sorted({b.oid for b in blobs})
    if not oids:
        return {}
    proc = subprocess.run(["git", "cat-file", "--batch"], cwd=root,
                          input="\n".join(oids).encode() + b"\n", capture_output=True, check=True)
    out: dict[str, bytes] = {}
    data, pos = proc.stdout, 0
    for oid in oids:  # each answer: "<oid> <type> <size>\n<content>\n"
        end = data.index(b"\n", pos)
        size = int(data[pos:end].split()[2])
        out[oid] = data[end + 1:end + 1 + size]
        pos = end + 1 + size + 1
    return out


def _is_binary(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return b"\0" in fh.read(8000)
    except OSError:
        return True  # staged but gone from the work tree: judge by size alone
