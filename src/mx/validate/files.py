"""Artifact files: safe paths, present, not LFS pointers, hashes, LFS hygiene in git;
DVC pointers for artifacts tracked with DVC (`model.onnx.dvc`, a file of a folder tracked
with `dvc add`, or a stage output in dvc.lock: mx.dvctrack)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from mx import dvcdir, dvcfiles, dvctrack, lfs, yamlio
from mx.dvcfiles import DvcPointer
from mx.dvclock import Pipelines, disk_reader
from mx.dvctrack import Listings, Tracked
from mx.errors import ConfigError, DvcProblem
from mx.fsutil import resolve_inside, sha256_file
from mx.manifest import Artifact, LoadedManifest
from mx.validate import Problem

Digests = dict[str, tuple[str, int]]  # artifact path -> (sha256, size) as found on disk


class _Reporter:
    """Collects one artifact's problems, each prefixed with `artifacts[i] path`."""

    def __init__(self, out: list[Problem], path: str, prefix: str, line: int | None) -> None:
        self.out, self.path, self.prefix, self.line = out, path, prefix, line

    def __call__(self, msg: str, line: int | None = None) -> None:
        self.out.append(Problem(self.path, line or self.line, f"{self.prefix}: {msg}"))

    def warn(self, msg: str) -> None:
        self.out.append(Problem(self.path, self.line, f"{self.prefix}: {msg}", "warning"))


def check(loaded: LoadedManifest, write: bool) -> tuple[list[Problem], Digests]:
    m = loaded.manifest
    model_dir = loaded.path.parent
    manifest_path = str(loaded.path)
    problems: list[Problem] = []
    digests: Digests = {}
    staged = _staged_blobs(model_dir)
    patterns = _lfs_patterns(model_dir)
    root = staged[1] if staged is not None else model_dir.resolve()
    locks = Pipelines(disk_reader(root))
    listings = Listings(_cached_listing(model_dir))
    held = _held(staged[2]) if staged is not None else None
    for i, art in enumerate(m.artifacts):
        line = yamlio.line_of(loaded.doc, ("artifacts", i, "path"))
        problem = _Reporter(problems, manifest_path, f"artifacts[{i}] {art.path}", line)
        target = resolve_inside(model_dir, art.path)
        if target is None:
            problem("resolves outside the model directory (a link or '..'); keep artifacts inside")
            continue
        try:
            tracked = _dvc_pointer(model_dir, art, root, staged, locks, listings, held)
        except ConfigError as exc:
            problem(exc.with_hint())
            continue
        except DvcProblem as exc:  # a folder's listing is not here: its files are unchecked
            problem.warn(exc.with_hint())
            if not target.is_file():
                continue
            tracked = None
        if tracked is not None and not _dvc_check(loaded, i, art, target, tracked, write,
                                                  problem):
            continue  # tracked with DVC and not in the work tree: the pointer is what we have
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


def _dvc_pointer(model_dir: Path, art: Artifact, root: Path,
                 staged: tuple[Any, Path, dict[str, Any]] | None, locks: Pipelines,
                 listings: Listings, held: Callable[[str], bool] | None) -> Tracked | None:
    """The DVC pointer of an artifact and where it was read, as the index builder finds it
    at the tag (mx.dvctrack), when git does not hold the file. None when DVC does not
    track it.

    Raises ConfigError naming the file and field, DvcProblem when a folder's listing is
    not in the DVC cache."""
    try:
        top = model_dir.resolve().relative_to(root).as_posix()
        rel = (model_dir.resolve() / art.path).relative_to(root).as_posix()
    except ValueError:
        return None
    if staged is not None and rel in staged[2] and not (root / f"{rel}.dvc").is_file():
        return None  # in git: published as the file (or LFS pointer) it is
    return dvctrack.find(rel, "" if top == "." else top, disk_reader(root), locks, listings,
                         held)


def _held(entries: dict[str, Any]) -> Callable[[str], bool]:
    """Whether git's index holds files in a folder (repository-relative); the folders are
    listed once, when first asked."""
    folders: set[str] = set()

    def held(folder: str) -> bool:
        if not folders:
            folders.update(p.as_posix() for path in entries
                           for p in PurePosixPath(path).parents)
        return folder in folders

    return held


def _cached_listing(model_dir: Path) -> dvctrack.ListingReader:
    """Listings from the work tree's DVC cache."""
    def read(directory: DvcPointer, shown: str) -> bytes:
        return dvcdir.read_cached(dvcfiles.find_root(model_dir.resolve()), directory, shown)

    return read


def _dvc_check(loaded: LoadedManifest, i: int, art: Artifact, target: Path,
               tracked: Tracked, write: bool, problem: _Reporter) -> bool:
    """Check the DVC pointer of artifact `i`, and the data against it where the work tree or
    the DVC cache has it. True when the file is in the work tree (the usual checks follow)."""
    pointer, shown = tracked.pointer, tracked.shown
    if art.size is not None and pointer.size not in (None, art.size) and not write:
        problem(f"{shown} says {pointer.size} bytes but mx.yaml says {art.size}",
                yamlio.line_of(loaded.doc, ("artifacts", i, "size")))
    here = target.is_file() and not lfs.looks_like_pointer(target)
    data = target if here else None
    if data is None:
        root = dvcfiles.find_root((loaded.path.parent / art.path).parent)
        data = dvcfiles.cached_object(root, pointer) if root is not None else None
    if data is None:
        problem.warn("not in the work tree or the DVC cache; `dvc pull` to check its bytes")
        return False
    got = dvcfiles.hash_file(data, pointer.legacy)
    where = "the file" if here else "its object in the DVC cache"
    if not pointer.matches(got):
        problem(f"{where} has md5 {got.md5} and {got.size} bytes but {shown} says "
                f"{pointer.described()}; {tracked.redo} after an intended change (or "
                "`dvc checkout` to restore it)")
    elif not here and art.sha256 is not None and art.sha256 != got.sha256 and not write:
        problem(f"sha256 of its object in the DVC cache is {got.sha256} but mx.yaml says "
                f"{art.sha256}", yamlio.line_of(loaded.doc, ("artifacts", i, "sha256")))
    elif not here and art.size is not None and art.size != got.size and not write:
        problem(f"its object in the DVC cache is {got.size} bytes but mx.yaml says "
                f"{art.size}", yamlio.line_of(loaded.doc, ("artifacts", i, "size")))
    return here


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
