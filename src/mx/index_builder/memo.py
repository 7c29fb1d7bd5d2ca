"""What the last build published, per source, so that a rebuild reads only what changed.

A rebuild at 5,000 models would otherwise open every repository, parse every manifest,
render every document and hash every published file again to change one model. Here each
source is summed up by a fingerprint of its refs (tags and signature notes: a new release,
a moved tag or a new signature changes a ref file) and of the registry settings that shape
its documents; when the fingerprint, and each of its models' channels and yanks, are as
the last build left them, and the files that build wrote are still there with their sizes,
the source's models are taken from here without opening the repository.

The memo lives in the builder's own cache folder and holds only digests, sizes, names and
the search entries the builder computed: nothing in it is trusted over the output except
to skip work, and a memo that does not parse, or was written by another mx, is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx import __version__
from mx.fsutil import atomic_write_bytes
from mx.index_builder.registry import Registry, SourceSpec

FORMAT = 2
MAX_REF_FILES = 100_000  # a repo with more loose refs than this is read the slow way


@dataclass
class ModelOutput:
    """One model as the last build published it."""

    curation: str  # digest of its channels, yanks and the registry's document settings
    versions: list[str]
    namespace: str
    files: dict[str, list[Any]]  # rel path under the output -> [size, sha256, mtime_ns]
    mirrored: dict[str, int]  # artifacts/sha256/<oid> it names -> size
    search: dict[str, Any]  # its search.json entry, every card word kept (space-separated)
    page_key: str  # what the site's page of this model depends on
    shown: str  # the version its page shows

    @property
    def document(self) -> str:
        return next(rel for rel in self.files if rel.startswith("index/models/"))


@dataclass
class SourceOutput:
    fingerprint: str
    models: dict[str, ModelOutput] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def curation_digest(registry: Registry, name: str) -> str:
    return _digest([registry.channels.get(name), registry.yanked.get(name),
                    registry.mirror_artifacts])


def settings_digest(registry: Registry, strict: bool, allow_unsigned: bool,
                    trust_config: Path | None) -> str:
    """Everything but sources, channels and yanks that decides what a release publishes."""
    plain = registry.model_dump(mode="json", exclude={"sources", "channels", "yanked"})
    trust = trust_config.read_bytes().hex() if trust_config and trust_config.is_file() else None
    return _digest([__version__, FORMAT, plain, strict, allow_unsigned, trust])


def source_key(spec: SourceSpec) -> str:
    return _digest(spec.model_dump(mode="json"))


def refs_fingerprint(git_dir: Path) -> str | None:
    """Every ref file's name, inode, size and mtime, and packed-refs' (None: cannot tell,
    read the repository). Git replaces a ref file by renaming a new one over it, so a
    moved tag has a new inode even within one mtime tick."""
    root = str(git_dir)
    entries: list[tuple[str, int, int, int]] = []
    try:
        st = os.stat(root + "/packed-refs")
        entries.append(("packed-refs", st.st_ino, st.st_size, st.st_mtime_ns))
    except FileNotFoundError:
        pass
    stack = [root + "/refs"]
    while stack:
        folder = stack.pop()
        try:
            it = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            if folder == root + "/refs":
                return None
            continue
        with it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    st = entry.stat(follow_symlinks=False)
                    entries.append((entry.path[len(root):], st.st_ino, st.st_size,
                                    st.st_mtime_ns))
        if len(entries) > MAX_REF_FILES:
            return None
    entries.sort()
    return hashlib.sha256(repr(entries).encode()).hexdigest()


def local_git_dir(path: Path) -> Path | None:
    """The git directory of a local source path (a work tree or a bare repository); None for
    anything else (a linked worktree, a submodule): those are read the slow way."""
    if (path / ".git").is_dir():
        return path / ".git"
    if (path / "HEAD").is_file() and (path / "refs").is_dir():
        return path
    return None


class BuildMemo:
    def __init__(self, path: Path, settings: str) -> None:
        self.path = path
        self.settings = settings
        self.sources: dict[str, SourceOutput] = {}
        self.next: dict[str, SourceOutput] = {}
        try:
            raw = json.loads(path.read_bytes())
            if raw.get("format") == FORMAT and raw.get("settings") == settings:
                self.sources = {k: _source(v) for k, v in raw["sources"].items()}
        except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
            self.sources = {}

    def reuse(self, key: str, fingerprint: str | None, registry: Registry,
              out: Path) -> SourceOutput | None:
        """The source's models as last published, if nothing they depend on changed."""
        old = self.sources.get(key)
        if fingerprint is None or old is None or old.fingerprint != fingerprint:
            return None
        for name, model in old.models.items():
            if model.curation != curation_digest(registry, name):
                return None
            if not _still_there(out, model):
                return None
        self.next[key] = old
        return old

    def interrupted(self) -> bool:
        """A build of this output began and did not finish (it may have left temp files)."""
        return self.path.with_suffix(".building").exists()

    def begin(self) -> None:
        marker = self.path.with_suffix(".building")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()

    def record(self, key: str, source: SourceOutput) -> None:
        self.next[key] = source

    def published_files(self) -> set[str] | None:
        """Every file the last build published under the signed folders (None: unknown)."""
        if not self.sources:
            return None
        return {rel for s in self.sources.values() for m in s.models.values() for rel in m.files}

    def save(self) -> None:
        data = {"format": FORMAT, "settings": self.settings,
                "sources": {k: {"fingerprint": v.fingerprint, "warnings": v.warnings,
                                "models": {n: vars(m) for n, m in v.models.items()}}
                            for k, v in sorted(self.next.items())}}
        atomic_write_bytes(self.path, json.dumps(data, separators=(",", ":")).encode())
        self.path.with_suffix(".building").unlink(missing_ok=True)


def _still_there(out: Path, model: ModelOutput) -> bool:
    base = str(out)
    try:
        for rel, (size, _, mtime) in model.files.items():
            st = os.stat(f"{base}/{rel}")
            if st.st_size != size or st.st_mtime_ns != mtime:
                return False
        for oid, size in model.mirrored.items():
            if os.stat(f"{base}/artifacts/sha256/{oid}").st_size != size:
                return False
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _source(raw: dict[str, Any]) -> SourceOutput:
    return SourceOutput(raw["fingerprint"],
                        {n: ModelOutput(**m) for n, m in raw["models"].items()},
                        list(raw["warnings"]))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
