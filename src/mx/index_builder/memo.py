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
Its shards are marshal files, not JSON: read at every build, marshal loads them several
times faster, and nothing but this builder writes that folder.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx import __version__
from mx.fsutil import atomic_write_bytes
from mx.index_builder.registry import Registry, SourceSpec

FORMAT = 6  # 6: version records carry the input profile
MAX_REF_FOLDERS = 10_000  # a repo with more ref folders than this is read the slow way
SHARDS = 64  # memo files: a rebuild rewrites those of the sources it read


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
    """The registry settings one model's document depends on (repr, not JSON: it is
    computed for every model at every build; the values are str -> str maps)."""
    channels, yanked = registry.channels.get(name) or {}, registry.yanked.get(name) or {}
    return hashlib.sha256(repr((sorted(channels.items()), sorted(yanked.items()),
                                registry.mirror_artifacts)).encode()).hexdigest()


def settings_digest(registry: Registry, registry_dir: Path, strict: bool, allow_unsigned: bool,
                    trust_config: Path | None) -> str:
    """Everything but sources, channels and yanks that decides what a release publishes:
    registry.yaml's settings, and the files they name (the trust config, the signers' keys:
    a key replaced in place changes no byte of registry.yaml)."""
    plain = registry.model_dump(mode="json", exclude={"sources", "channels", "yanked"})
    named = [trust_config] + [registry_dir / s.public_key for ns in registry.namespaces.values()
                              for s in ns.signers if s.public_key
                              and not s.public_key.lstrip().startswith("-----BEGIN")]
    files = [[str(p), _read(p)] for p in named if p is not None]
    # marshal's format is the interpreter's: another Python reads the memo as missing
    return _digest([__version__, FORMAT, sys.version, plain, strict, allow_unsigned, files])


def _read(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None  # the build that needs it says so


def source_key(spec: SourceSpec) -> str:
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def source_fingerprint(path: Path) -> str | None:
    """What a source's releases depend on, from its git directory's release refs: the
    inode and mtime of packed-refs, and of refs/tags and refs/notes and every folder under
    them (None: not a plain local repository, or unreadable; read it the slow way).

    Git writes a ref by renaming a lock file over it: a new, moved or deleted tag or note
    changes its folder's mtime, and packing refs replaces packed-refs. Other refs
    (branches) do not decide what is released, so a commit on main costs nothing here."""
    root = f"{path}/.git"
    try:
        packed: os.stat_result | None = os.stat(root + "/packed-refs")
    except FileNotFoundError:
        packed = None
    except NotADirectoryError:
        return None  # .git is a file: a linked worktree or a submodule
    if packed is None and not os.path.isdir(root + "/refs"):
        root = str(path)  # a bare repository
        try:
            packed = os.stat(root + "/packed-refs")
        except (FileNotFoundError, NotADirectoryError):
            packed = None
    entries: list[tuple[str, int, int]] = []
    if packed is not None:
        entries.append(("packed-refs", packed.st_ino, packed.st_mtime_ns))
    stack = [root + "/refs/tags", root + "/refs/notes"]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            it = os.scandir(folder)
        except FileNotFoundError:
            if folder == root + "/refs/tags":
                return None  # not a git directory
            continue  # no notes yet
        except NotADirectoryError:
            return None
        entries.append((folder[len(root):], st.st_ino, st.st_mtime_ns))
        with it:
            stack.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
        if len(entries) > MAX_REF_FOLDERS:
            return None
    entries.sort()
    return hashlib.sha256(repr([str(path), entries]).encode()).hexdigest()


class BuildMemo:
    """The memo of one output: `head.json` (format and settings) and SHARDS files of
    sources by key, so that a rebuild rewrites only the files of the sources it read."""

    def __init__(self, folder: Path, settings: str, out: Path) -> None:
        self.folder = folder
        self.settings = settings
        self.out = out
        self.sources: dict[str, SourceOutput] = {}
        self.next: dict[str, SourceOutput] = {}
        self.dirty: set[int] = set()
        # The output as this memo's build left it: else another build (another cache dir)
        # wrote it since, and what it added is nobody's to remove but a full sweep's.
        try:
            head = json.loads((folder / "head.json").read_bytes())
        except (FileNotFoundError, ValueError):
            head = {}
        self.foreign = not isinstance(head, dict) or head.get("output") != output_stamp(out)
        try:
            if self.foreign:
                raise ValueError("the output was written by another build")
            if head.get("format") != FORMAT or head.get("settings") != settings:
                raise ValueError("another mx, or other settings")
            for shard in range(SHARDS):
                raw = marshal.loads((folder / f"{shard:02d}.bin").read_bytes())
                self.sources.update({k: _source(v) for k, v in raw.items()})
        except (FileNotFoundError, ValueError, EOFError, KeyError, TypeError, AttributeError):
            self.sources = {}
            self.dirty = set(range(SHARDS))

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
        return (self.folder / "building").exists()

    def begin(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "building").touch()

    def record(self, key: str, source: SourceOutput) -> None:
        self.next[key] = source
        self.dirty.add(_shard(key))

    def published_files(self) -> set[str] | None:
        """Every file the last build published under the signed folders (None: unknown)."""
        if not self.sources:
            return None
        return {rel for s in self.sources.values() for m in s.models.values() for rel in m.files}

    def save(self) -> None:
        self.dirty.update(_shard(k) for k in self.sources.keys() - self.next.keys())
        shards: dict[int, dict[str, Any]] = {i: {} for i in self.dirty}
        for key, source in self.next.items():
            if (shard := _shard(key)) in shards:
                shards[shard][key] = {
                    "fingerprint": source.fingerprint, "warnings": source.warnings,
                    "models": {n: vars(m) for n, m in source.models.items()}}
        self.folder.mkdir(parents=True, exist_ok=True)
        for shard, data in sorted(shards.items()):
            atomic_write_bytes(self.folder / f"{shard:02d}.bin", marshal.dumps(data))
        atomic_write_bytes(self.folder / "head.json", json.dumps({
            "format": FORMAT, "settings": self.settings,
            "output": output_stamp(self.out)}).encode())
        (self.folder / "building").unlink(missing_ok=True)


def output_stamp(out: Path) -> list[list[int]] | None:
    """Inode, size and mtime of the listing and config every build that changes the
    output writes (None: no index there yet)."""
    try:
        return [[st.st_ino, st.st_size, st.st_mtime_ns]
                for st in (os.stat(out / "index" / n) for n in ("search.json", "config.json"))]
    except (FileNotFoundError, NotADirectoryError):
        return None


def _shard(key: str) -> int:
    return int(key[:8], 16) % SHARDS


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
