"""Publish a built output folder to S3-compatible storage (`mx index build -o s3://...`).

The build itself runs as for a folder, into a staging folder kept in the build cache
(`<cache-dir>/publish/s3-<key>/out`), so it stays incremental between builds. Then only
what changed is uploaded, in the order the builder writes a folder, so that a reader never
sees a document naming an object that is not there yet:

    artifacts/  ->  cards/ manifests/ signatures/ (and the site's assets/, search/)
    ->  index/models/  ->  index/search.json, index/config.json, the site's pages
    ->  tuf/<N>.*.json  ->  tuf/root.json  ->  tuf/timestamp.json

and objects the staging folder no longer has are deleted last. The prefix belongs to the
registry: anything else under it is deleted too.

What changed is decided against one listing of the prefix (size and ETag of every object:
one request per 1,000 objects) and a record of what this cache uploaded (key -> sha256,
size, ETag; `uploaded.json` beside the staging folder). An object is left alone when the
listing shows the size and ETag recorded when these very bytes (same sha256) were uploaded.
The listing catches an object someone deleted or replaced in the bucket (it is uploaded
again); the record says what an ETag stands for without a HEAD request per object (S3 lists
no user metadata) or an MD5 of every file. Without a record (a new CI runner), a single-part
ETag is compared with the file's MD5. Mirrored artifacts are named by their sha256: one of
the same size in the bucket is not uploaded again (clients check every byte anyway).
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mx import objstore
from mx.errors import BuildError, FetchError
from mx.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    from obstore.store import S3Store

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=60"
NO_CACHE = "no-cache"
ASSETS = "public, max-age=3600"

_ARTIFACT = re.compile(r"^artifacts/sha256/[0-9a-f]{64}$")
_VERSIONED_TUF = re.compile(r"^tuf/\d+\.(root|targets|snapshot)\.json$")
_TYPES = {".json": "application/json", ".html": "text/html; charset=utf-8",
          ".md": "text/markdown; charset=utf-8", ".yaml": "application/yaml",
          ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".xml": "application/xml", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}


def content_type(rel: str) -> str:
    if rel.startswith("artifacts/"):
        return "application/octet-stream"
    suffix = os.path.splitext(rel)[1].lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(rel)[0] or "application/octet-stream"


def cache_control(rel: str) -> str:
    """Content-addressed and versioned files never change; what names them does."""
    if _ARTIFACT.match(rel) or _VERSIONED_TUF.match(rel):
        return IMMUTABLE
    if rel.startswith("tuf/"):
        return NO_CACHE  # root.json and timestamp.json: a stale copy looks like a freeze
    if rel.startswith("assets/"):
        return ASSETS
    return SHORT


def tier(rel: str) -> int:
    """Upload order: an object is uploaded only after every object it names."""
    top = rel.partition("/")[0]
    if top == "artifacts":
        return 0
    if top in ("cards", "manifests", "signatures", "assets", "search"):
        return 1
    if rel.startswith("index/models/"):
        return 2
    if top != "tuf":
        return 3  # the listing, config.json and the site's pages
    if _VERSIONED_TUF.match(rel):
        return 4
    return 6 if rel == "tuf/timestamp.json" else 5


@dataclass(frozen=True)
class Destination:
    url: str  # s3://bucket/prefix/ as given, with a trailing slash
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, url: str) -> Destination:
        bucket, key = objstore.split_url(url)
        prefix = key.strip("/")
        prefix = f"{prefix}/" if prefix else ""
        return cls(f"s3://{bucket}/{prefix}", bucket, prefix)

    def staging(self, cache_dir: Path) -> Path:
        """Kept between builds, one per destination (and endpoint: one bucket name can
        exist on two S3-compatible services)."""
        endpoint = objstore.aws_config().get("endpoint", "")
        key = hashlib.sha256(f"{endpoint}\n{self.url}".encode()).hexdigest()[:16]
        return cache_dir / "publish" / f"s3-{key}"


@dataclass
class PublishResult:
    url: str
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    tuf_synced: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "uploaded": self.uploaded, "deleted": self.deleted,
                "unchanged": self.unchanged, "tuf_synced": self.tuf_synced}


def _files(out: Path) -> dict[str, Path]:
    """What a static host would serve: every file, but no dot-file or dot-folder (temp
    files of a killed build)."""
    found: dict[str, Path] = {}
    for path in out.rglob("*"):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and not any(part.startswith(".") for part in rel.split("/")):
            found[rel] = path
    return found


def _digest(path: Path, algorithm: str = "sha256") -> str:
    # MD5 only to compare with an S3 ETag, never for trust (FIPS builds allow that use).
    h = hashlib.new(algorithm, usedforsecurity=algorithm != "md5")
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Publisher:
    def __init__(self, dest: Destination, state_file: Path, retries: int = 4,
                 workers: int = 8) -> None:
        self.dest = dest
        self.state_file = state_file
        self.workers = workers
        self.store: S3Store = objstore.open_bucket(dest.bucket, retries=retries)

    def _call(self, doing: str, rel: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            if not objstore.is_store_error(exc):
                raise
            raise objstore.fetch_error(f"{self.dest.url}{rel}", exc, doing) from None

    def listing(self) -> dict[str, objstore.Listed]:
        return dict(self._call("listing", "", lambda: objstore.list_objects(
            self.store, self.dest.prefix)))

    def sync_tuf(self, out: Path) -> int:
        """Bring the bucket's tuf/*.json into `out` when its timestamp.json is not the one
        `out` holds: a new cache (a fresh CI runner), another runner's publish, or a
        scheduled `mx index timestamp s3://...`. Versions and the root chain then go on
        from what clients already trust. Returns how many files were fetched."""
        names = sorted(rel for rel in self.listing() if rel.startswith("tuf/")
                       and "/" not in rel[4:] and rel.endswith(".json"))
        if "tuf/timestamp.json" not in names:
            return 0
        local = out / "tuf" / "timestamp.json"
        if local.is_file() and local.read_bytes() == self._get("tuf/timestamp.json"):
            return 0
        for rel in names:
            atomic_write_bytes(out / rel, self._get(rel))
        return len(names)

    def _get(self, rel: str) -> bytes:
        data: bytes = self._call("reading", rel, lambda: objstore.get_bytes(
            self.store, self.dest.prefix + rel))
        return data

    def upload(self, out: Path, rels: list[str]) -> None:
        """Upload these files of `out` (in this order), nothing else."""
        for rel in rels:
            self._put(rel, out / rel)

    def publish(self, out: Path) -> PublishResult:
        result = PublishResult(self.dest.url)
        state = self._load_state()
        remote = self.listing()
        local = _files(out)
        todo: dict[int, list[str]] = {}
        records: dict[str, dict[str, Any]] = {}
        for rel, path in sorted(local.items()):
            stat = path.stat()
            seen = remote.get(rel)
            if _ARTIFACT.match(rel):
                if seen is not None and seen.size == stat.st_size:
                    result.unchanged += 1
                else:
                    todo.setdefault(tier(rel), []).append(rel)
                continue
            old = state.get(rel) or {}
            same_file = old.get("size") == stat.st_size and old.get("mtime_ns") == stat.st_mtime_ns
            sha = old["sha256"] if same_file and "sha256" in old else _digest(path)
            record = {"sha256": sha, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            if seen is not None and seen.size == stat.st_size and seen.etag and (
                    (old.get("sha256") == sha and old.get("etag") == seen.etag)
                    or seen.etag.strip('"') == _digest(path, "md5")):
                records[rel] = {**record, "etag": seen.etag}
                result.unchanged += 1
            else:
                records[rel] = record
                todo.setdefault(tier(rel), []).append(rel)
        try:
            for level in sorted(todo):
                rels = todo[level]
                with ThreadPoolExecutor(max_workers=min(self.workers, len(rels))) as pool:
                    etags = list(pool.map(lambda rel: self._put(rel, local[rel]), rels))
                for rel, etag in zip(rels, etags, strict=True):
                    if rel in records:
                        records[rel]["etag"] = etag
                    result.uploaded.append(rel)
            stale = sorted(set(remote) - set(local))
            if stale:
                self._call("deleting", "", lambda: objstore.delete(
                    self.store, [self.dest.prefix + rel for rel in stale]))
                result.deleted = stale
        finally:
            # What went up is recorded even when a later upload failed: the next build
            # uploads only the rest.
            pending = {rel for rels in todo.values() for rel in rels} - set(result.uploaded)
            self._save_state({rel: rec for rel, rec in records.items() if rel not in pending})
        return result

    def _put(self, rel: str, path: Path) -> str | None:
        etag: str | None = self._call("uploading", rel, lambda: objstore.put_file(
            self.store, self.dest.prefix + rel, path, content_type(rel), cache_control(rel)))
        return etag

    def _load_state(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.state_file.read_bytes())
        except (FileNotFoundError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("url") != self.dest.url:
            return {}
        objects = data.get("objects")
        return objects if isinstance(objects, dict) else {}

    def _save_state(self, objects: dict[str, dict[str, Any]]) -> None:
        atomic_write_bytes(self.state_file, json.dumps(
            {"url": self.dest.url, "objects": objects}, sort_keys=True).encode())


def check_destination(url: str) -> Destination:
    """Parse an `-o s3://...` before anything is built; a bad URL is the user's to fix."""
    try:
        return Destination.parse(url)
    except FetchError as exc:
        raise BuildError(str(exc), hint="use -o s3://BUCKET/PREFIX") from None
