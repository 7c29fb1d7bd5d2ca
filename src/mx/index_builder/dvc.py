"""Artifacts tracked with DVC, read at a release tag.

The pointer comes from the tag's tree (mx.dvctrack): the artifact's `.dvc` file, a tracked
folder's listing, else the output of a pipeline stage in the nearest dvc.lock that lists it
(mx.dvclock); a folder's listing, and the object's bytes, from
the source's own DVC cache (a local source with a work tree) or its DVC remote: a local
folder (local sources only), http(s) or s3. The index records sha256, which DVC does not
know: the builder reads each object once, checks its md5 and size against the pointer,
and keeps its sha256 by DVC's md5 in the build cache, so no later build reads it again.

An object on an http(s) or s3 remote may be published at its remote URL (clients check
the sha256 the builder computed); one only on this machine is always mirrored.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mx import dvcdir, dvcfiles, dvctrack, gitrepo
from mx.dvcfiles import DvcPointer, ObjectHasher
from mx.dvclock import Pipelines
from mx.dvctrack import Listings, Tracked
from mx.errors import ConfigError, DvcProblem, MxError
from mx.fsutil import atomic_write_bytes
from mx.gitrepo import ReleaseTag
from mx.http import Transport


@dataclass
class DvcObject:
    """Where one DVC object's bytes are, for mirroring or publishing."""

    key: str  # md5:<md5> (or md5-dos2unix:<md5> for a DVC 2 output)
    local: Path | None  # a file on this machine holding the bytes
    url: str | None  # http(s) or s3 URL on the remote, which clients may fetch


@dataclass
class DvcArtifact:
    pointer: DvcPointer
    sha256: str
    size: int  # the pointer's, or as read (a file of a folder, whose listing has no sizes)
    obj: DvcObject


class DvcObjects:
    """sha256 and size by DVC object key, kept between builds in one small JSON file."""

    def __init__(self, path: Path, transport: Any = None) -> None:
        self.path = path
        self._transport = transport
        try:
            loaded = json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError):
            loaded = {}
        self.known: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
        self.dirty = False
        self.reads = 0  # objects read this build (tests check a rebuild reads none)
        self.listing_reads = 0  # folders' listings read this build (small; read each build)
        self._lock_memo: dict[tuple[str, str], Any] = {}  # parsed dvc.lock files, by bytes
        self._pipelines: dict[tuple[str, str], Pipelines] = {}
        self._listings: dict[str, dict[str, DvcPointer]] = {}  # parsed, by the listing's key

    def save(self) -> None:
        if self.dirty:
            atomic_write_bytes(self.path, json.dumps(self.known, sort_keys=True).encode())
            self.dirty = False

    def transport(self) -> Any:
        if self._transport is None:

            self._transport = Transport()
        return self._transport

    def pipelines(self, source: Any, commit: str) -> Pipelines:
        """The dvc.lock files of `commit`, read from git."""
        key = (str(source.repo.path), commit)
        if key not in self._pipelines:
            def read(rel: str, limit: int) -> bytes | None:
                return gitrepo.tree_entry_bounded(source.repo, commit, rel, limit)

            self._pipelines = {key: Pipelines(read, self._lock_memo)}  # one tag at a time
        return self._pipelines[key]

    def track(self, source: Any, tag: ReleaseTag, path: str) -> Tracked | None:
        """The DVC pointer of `path` (repository-relative, not in git) at the tag, or None.

        Raises DvcProblem naming what cannot be read, in one line."""
        def read(rel: str, limit: int) -> bytes | None:
            return gitrepo.tree_entry_bounded(source.repo, tag.commit, rel, limit)

        def held(folder: str) -> bool:  # git's tree has the folder (a `DIR.dvc` found it)
            return gitrepo.blob_id(source.repo, tag.commit, folder) is not None

        try:
            return dvctrack.find(path, tag.model_dir if tag.model_dir != "." else "", read,
                                 self.pipelines(source, tag.commit), self.listings(source, tag),
                                 held)
        except ConfigError as exc:
            raise DvcProblem(exc.with_hint()) from None

    def listings(self, source: Any, tag: ReleaseTag) -> Listings:
        """Folders' listings at the tag, from the source's DVC cache or remote. A listing
        that is not JSON the pointer names raises DvcProblem, as one that is missing."""
        def listing(directory: DvcPointer, shown: str) -> bytes:
            return self._listing(source, tag, directory, shown)

        return _SourceListings(listing, self._listings)

    def _listing(self, source: Any, tag: ReleaseTag, directory: DvcPointer,
                 shown: str) -> bytes:
        """The bytes of a folder's listing object (checked by mx.dvcdir)."""
        obj = locate(source, tag, directory)
        self.listing_reads += 1
        try:
            if obj.local is not None:
                with obj.local.open("rb") as f:
                    return f.read(dvcdir.MAX_LISTING + 1)
            if obj.url is not None:
                return bytes(self.transport().get(obj.url, dvcdir.MAX_LISTING).data)
        except OSError as exc:
            raise DvcProblem(f"{shown}: cannot read its listing {obj.local}: "
                             f"{exc.strerror}") from None
        except MxError as exc:
            raise DvcProblem(f"{shown}: cannot read its listing: {exc}") from None
        raise DvcProblem(f"{shown}: the folder's listing {directory.md5}.dir is neither in "
                         "the source's DVC cache nor on a remote the builder can read; "
                         "`dvc push` it to a local folder (local sources), http(s) or s3 "
                         "remote")

    def artifact(self, source: Any, tag: ReleaseTag, pointer: DvcPointer,
                 shown: str) -> DvcArtifact:
        """The DVC artifact whose pointer is `pointer`, read from `shown` (the `.dvc` file,
        or the dvc.lock and its field) in messages.

        Raises DvcProblem naming what is wrong, in one line."""
        obj = locate(source, tag, pointer)
        hit = self.known.get(pointer.key)
        if (isinstance(hit, list) and len(hit) == 2 and isinstance(hit[0], str)
                and type(hit[1]) is int and pointer.size in (None, hit[1])
                and 0 <= hit[1] <= pointer.limit):
            return DvcArtifact(pointer, hit[0], hit[1], obj)
        digests = self._read(obj, pointer, shown)
        self.known[pointer.key] = [digests.sha256, digests.size]
        self.dirty = True
        return DvcArtifact(pointer, digests.sha256, digests.size, obj)

    def _read(self, obj: DvcObject, pointer: DvcPointer, shown: str) -> dvcfiles.Digests:
        self.reads += 1
        if obj.local is not None:
            got = dvcfiles.hash_file(obj.local, pointer.legacy)
            where = str(obj.local)
        elif obj.url is not None:
            hasher = ObjectHasher(pointer.legacy)
            try:
                # a file of a folder has no size in the listing: the folder's total caps it
                self.transport().download(obj.url, hasher, pointer.limit,
                                          exact=pointer.size is not None)
            except MxError as exc:
                raise DvcProblem(f"{shown}: cannot read its object: {exc}") from None
            got, where = hasher.result(), obj.url
        else:
            raise DvcProblem(f"{shown}: DVC object {pointer.md5} is neither in the source's "
                             "DVC cache nor on a remote the builder can read; `dvc push` it "
                             "to a local folder (local sources), http(s) or s3 remote")
        if not pointer.matches(got) or got.size > pointer.limit:
            raise DvcProblem(f"{shown}: the object at {where} has md5 {got.md5} and {got.size} "
                             f"bytes, not {pointer.described()}")
        return got


class _SourceListings(Listings):
    """Listings from a source: one that is not what its pointer names is a DvcProblem (the
    release's problem), as a missing one is, not a ConfigError of the build's own input."""

    def files(self, directory: DvcPointer, shown: str) -> dict[str, DvcPointer]:
        try:
            return super().files(directory, shown)
        except ConfigError as exc:
            raise DvcProblem(exc.with_hint()) from None


def _dvc_root(source: Any, commit: str, model_dir: str) -> str | None:
    """The DVC repository at the tag: the nearest folder at or above the model's whose
    tree holds `.dvc/config` ("" for the repository's root), or None."""
    parts = PurePosixPath(model_dir).parts if model_dir else ()
    for n in range(len(parts), -1, -1):
        rel = "/".join(parts[:n])
        if gitrepo.tree_entry_data(source.repo, commit,
                                   gitrepo.join(rel, ".dvc/config")) is not None:
            return rel
    return None


def locate(source: Any, tag: ReleaseTag, pointer: DvcPointer) -> DvcObject:
    """Where the object of `pointer` is: the source's DVC cache, and its remote's URL."""
    root = _dvc_root(source, tag.commit, tag.model_dir)
    workdir = None if source.repo.is_bare else Path(source.repo.workdir)
    local_source = source.url.startswith("file:")
    local: Path | None = None
    if workdir is not None and local_source:
        local = dvcfiles.cached_object(workdir / (root or ""), pointer)
    url: str | None = None
    if root is not None:
        config = gitrepo.tree_entry_data(source.repo, tag.commit,
                                         gitrepo.join(root, ".dvc/config")) or b""
        remote = dvcfiles.remote_url(config.decode("utf-8", "replace"), pointer.remote)
        if remote is None:
            pass
        elif dvcfiles.is_local(remote):
            # Only a source named by its path may read folders on this machine: a fetched
            # repository's config must not make the builder publish another store's files.
            if local is None and local_source and workdir is not None:
                base = dvcfiles.local_remote_dir(remote, workdir / (root or "") / ".dvc")
                candidate = base / pointer.object_rel
                local = candidate if candidate.is_file() else None
        elif _publishable(remote):
            url = dvcfiles.object_url(remote, pointer)
    return DvcObject(pointer.key, local, url)


def _publishable(url: str) -> bool:
    """An http(s) or s3 remote without credentials in its URL."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower() in ("http", "https", "s3") and "@" not in parts.netloc
