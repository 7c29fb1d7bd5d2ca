"""Artifact files: safe paths, present, not LFS pointers, hashes, LFS hygiene in git."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mx import lfs, yamlio
from mx.fsutil import resolve_inside, sha256_file
from mx.manifest import LoadedManifest
from mx.validate import Problem

Digests = dict[str, tuple[str, int]]  # artifact path -> (sha256, size) as found on disk


class _Reporter:
    """Collects one artifact's problems, each prefixed with `artifacts[i] path`."""

    def __init__(self, out: list[Problem], path: str, prefix: str, line: int | None) -> None:
        self.out, self.path, self.prefix, self.line = out, path, prefix, line

    def __call__(self, msg: str, line: int | None = None) -> None:
        self.out.append(Problem(self.path, line or self.line, f"{self.prefix}: {msg}"))


def check(loaded: LoadedManifest, write: bool) -> tuple[list[Problem], Digests]:
    m = loaded.manifest
    model_dir = loaded.path.parent
    manifest_path = str(loaded.path)
    problems: list[Problem] = []
    digests: Digests = {}
    staged = _staged_blobs(model_dir)
    patterns = _lfs_patterns(model_dir)
    for i, art in enumerate(m.artifacts):
        line = yamlio.line_of(loaded.doc, ("artifacts", i, "path"))
        problem = _Reporter(problems, manifest_path, f"artifacts[{i}] {art.path}", line)
        target = resolve_inside(model_dir, art.path)
        if target is None:
            problem("resolves outside the model directory (a link or '..'); keep artifacts inside")
            continue
        if not target.exists():
            problem("file does not exist")
            continue
        if not target.is_file():
            problem("is not a regular file")
            continue
        if lfs.looks_like_pointer(target):
            problem("is a Git LFS pointer, not the model itself; run `git lfs pull`")
            continue
        digest, size = sha256_file(target)
        digests[art.path] = (digest, size)
        if art.size is not None and art.size != size and not write:
            problem(f"size is {size} bytes but mx.yaml says {art.size}; run `mx validate --write` "
                    "after an intended change",
                    yamlio.line_of(loaded.doc, ("artifacts", i, "size")))
        if art.sha256 is not None and art.sha256 != digest and not write:
            problem(f"sha256 is {digest} but mx.yaml says {art.sha256}; run `mx validate --write` "
                    "after an intended change",
                    yamlio.line_of(loaded.doc, ("artifacts", i, "sha256")))
        problems += _git_hygiene(model_dir, art.path, staged, patterns, manifest_path, line)
    return problems, digests


def fill_hashes(loaded: LoadedManifest, digests: Digests) -> bool:
    """Write sha256 and size into the round-trip document; True if anything changed."""
    changed = False
    for i, art in enumerate(loaded.manifest.artifacts):
        if art.path not in digests:
            continue
        digest, size = digests[art.path]
        node = loaded.doc["artifacts"][i]
        if node.get("sha256") != digest:
            node["sha256"] = digest
            changed = True
        if node.get("size") != size:
            node["size"] = size
            changed = True
    return changed


def _lfs_patterns(model_dir: Path) -> list[str]:
    """LFS patterns from .gitattributes in the model directory or the repo root."""
    out = list(lfs.DEFAULT_PATTERNS)
    for d in (model_dir, *model_dir.resolve().parents):
        ga = d / ".gitattributes"
        if ga.is_file():
            out += lfs.gitattributes_lfs_patterns(ga.read_text(encoding="utf-8", errors="replace"))
        if (d / ".git").exists():
            break
    return out


def _staged_blobs(model_dir: Path) -> tuple[Any, Path, dict[str, Any]] | None:
    """(repo, workdir, index entries by path) if the directory is inside a git work tree."""
    import pygit2

    found = pygit2.discover_repository(str(model_dir))
    if not found:
        return None
    repo = pygit2.Repository(found)
    if repo.is_bare or repo.workdir is None:
        return None
    entries = {e.path: e for e in repo.index}
    return repo, Path(repo.workdir).resolve(), entries


def _git_hygiene(model_dir: Path, rel: str, staged: tuple[Any, Path, dict[str, Any]] | None,
                 patterns: list[str], manifest_path: str, line: int | None) -> list[Problem]:
    if staged is None:
        return []
    repo, workdir, entries = staged
    try:
        repo_rel = (model_dir.resolve() / rel).relative_to(workdir).as_posix()
    except ValueError:
        return []
    entry = entries.get(repo_rel)
    if entry is None or not lfs.matches_any(rel, patterns):
        return []
    blob = repo[entry.id]
    if lfs.parse_pointer(blob.data if blob.size <= lfs.POINTER_MAX else b"") is None:
        return [Problem(manifest_path, line,
                        f"{rel} matches the LFS patterns but is committed as a plain git blob; "
                        f"run `git rm --cached {repo_rel} && git add {repo_rel}` with git-lfs "
                        "installed (or `git lfs migrate import`)")]
    return []
