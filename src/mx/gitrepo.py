"""Read model releases straight from git objects with pygit2: no checkout, no git-lfs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mx.errors import GitError
from mx.semver import InvalidVersion, Version

_TAG_RE = re.compile(r"^(?:(?P<dir>.+)/)?v(?P<ver>\d+\.\d+\.\d+\S*)$")


@dataclass(frozen=True)
class ReleaseTag:
    model_dir: str  # "." for the repository root
    version: Version
    tag: str  # short name, e.g. "vision/resnet/v1.4.0"
    commit: str  # hex sha1 of the tagged commit
    tag_target: str  # hex id the ref points at (annotated tag object or commit)
    created: str  # RFC 3339, UTC: tagger time, else the commit's committer time


def _pygit2() -> Any:
    import pygit2

    return pygit2


def open_repo(path: Path) -> Any:
    pygit2 = _pygit2()
    try:
        return pygit2.Repository(str(path))
    except (pygit2.GitError, KeyError):
        raise GitError(
            f"{path}: not a git repository", hint="check the path or URL in registry.yaml"
        ) from None


def git_dir(repo: Any) -> Path:
    return Path(repo.path)


def _rfc3339(seconds: int) -> str:
    # Published in UTC so documents from different machines compare byte for byte.
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def release_tags(repo: Any) -> list[ReleaseTag]:
    """Every tag named `v<semver>` or `<dir>/v<semver>`, peeled to its commit."""
    pygit2 = _pygit2()
    out: list[ReleaseTag] = []
    for ref_name in repo.references:
        if not ref_name.startswith("refs/tags/"):
            continue
        short = ref_name[len("refs/tags/") :]
        m = _TAG_RE.match(short)
        if not m:
            continue
        try:
            version = Version.parse(m["ver"])
        except InvalidVersion:
            continue
        ref = repo.references[ref_name]
        target = repo[ref.target]
        created: str
        if isinstance(target, pygit2.Tag):
            obj = target.peel(pygit2.Commit)
            tagger = target.tagger
            created = (
                _rfc3339(tagger.time)
                if tagger is not None
                else _rfc3339(obj.committer.time)
            )
        else:
            try:
                obj = target.peel(pygit2.Commit)
            except (ValueError, pygit2.GitError):
                continue
            created = _rfc3339(obj.committer.time)
        out.append(
            ReleaseTag(m["dir"] or ".", version, short, str(obj.id), str(ref.target), created)
        )
    out.sort(key=lambda t: (t.model_dir, t.version))
    return out


def tree_entry_data(repo: Any, commit: str, path: str) -> bytes | None:
    """The blob at `path` in `commit`, or None if there is none (or it is not a blob)."""
    pygit2 = _pygit2()
    tree = repo[commit].tree
    try:
        entry = tree[path]
    except KeyError:
        return None
    obj = repo[entry.id]
    if not isinstance(obj, pygit2.Blob):
        return None
    data: bytes = obj.data
    return data


def tree_entry_bounded(repo: Any, commit: str, path: str, limit: int) -> bytes | None:
    """Like `tree_entry_data` for a file of at most `limit` bytes. A larger blob is not read
    (its size is in the object header): `limit` + 1 zero bytes stand for it, so that the
    caller's size check refuses it without a hostile repository's blob in memory."""
    pygit2 = _pygit2()
    try:
        entry = repo[commit].tree[path]
    except KeyError:
        return None
    kind, size = repo.odb.read_header(entry.id)
    if kind != pygit2.enums.ObjectType.BLOB:
        return None
    if size > limit:
        return bytes(limit + 1)
    data: bytes = repo[entry.id].data
    return data


def blob_id(repo: Any, commit: str, path: str) -> str | None:
    """The git object id at `path` in `commit` (names its exact bytes), or None."""
    try:
        return str(repo[commit].tree[path].id)
    except KeyError:
        return None


def head_commit(path: Path) -> str | None:
    """The HEAD commit of the repository containing `path`, if any (for `generated_from`)."""
    pygit2 = _pygit2()
    found = pygit2.discover_repository(str(path))
    if not found:
        return None
    repo = pygit2.Repository(found)
    if repo.head_is_unborn:
        return None
    return str(repo.head.target)


def head_commit_time(path: Path) -> int:
    """Commit time of HEAD of the repository containing `path` (0 if none): the build date
    of a site, so rebuilding the same registry state gives the same bytes."""
    pygit2 = _pygit2()
    found = pygit2.discover_repository(str(path))
    if not found:
        return 0
    repo = pygit2.Repository(found)
    return 0 if repo.head_is_unborn else int(repo[repo.head.target].commit_time)


def join(model_dir: str, rel: str) -> str:
    return rel if model_dir in ("", ".") else f"{model_dir}/{rel}"

