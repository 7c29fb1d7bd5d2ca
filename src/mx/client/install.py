"""`mx install` as a library call: resolve, fetch, verify, link. Returns local paths."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx.client import profile
from mx.client.cache import Cache, link_file
from mx.client.cache_gc import reclaim
from mx.client.download import Downloader
from mx.client.index import Document, IndexClient, normalise_base, registry_key
from mx.client.metadata import RootPin
from mx.client.resolve import resolve, select_artifacts
from mx.client.spec import Requirement, parse_requirement
from mx.client.trust import TrustPolicy, check_manifest_identity, check_release
from mx.config import Settings, load_settings
from mx.errors import ConfigError, OfflineError
from mx.http import Transport
from mx.locking import Lock, acquire
from mx.names import MANIFEST_FILE
from mx.progress import NoProgress, Progress


@dataclass
class InstalledModel:
    name: str
    version: str
    variant: str
    registry: str
    path: Path  # the variant folder in the cache
    files: dict[str, Path]  # artifact path -> local file
    artifacts: list[dict[str, Any]]  # index records of what was installed
    manifest: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    downloaded: bool = False
    signed: bool = False

    def artifact(self, fmt: str = "onnx") -> Path:
        """The local file of the first artifact in format `fmt`."""
        for art in self.artifacts:
            if art.get("format") == fmt and art["path"] in self.files:
                return self.files[art["path"]]
        raise ConfigError(f"{self.name} {self.version} ({self.variant}) has no {fmt} artifact",
                          hint="install another --variant or --format")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "variant": self.variant,
                "registry": self.registry, "path": str(self.path),
                "files": {k: str(v) for k, v in sorted(self.files.items())},
                "downloaded": self.downloaded, "signed": self.signed,
                "warnings": self.warnings}


class SerialIndex:
    """The registry's index client, used by one process at a time per registry.

    python-tuf rewrites the trusted metadata folder on every refresh (it removes
    `root.json`, then links it again), which fails when two processes do it at once; a
    per-registry lock (`locks/registry-<key>.lock`) keeps them apart. It is held only for
    index reads, while the process holds no other lock but the shared cache lock."""

    def __init__(self, client: IndexClient, lock_path: Path) -> None:
        self.client, self.lock_path = client, lock_path

    @property
    def notices(self) -> list[str]:
        return self.client.notices

    def model_document(self, name: str) -> Document:
        with self._lock():
            return self.client.model_document(name)

    def model(self, name: str) -> dict[str, Any]:
        with self._lock():
            return self.client.model(name)

    def search_listing(self) -> list[dict[str, Any]]:
        with self._lock():
            return self.client.search_listing()

    def _lock(self) -> Lock:
        lock = acquire(self.lock_path)
        assert lock is not None  # no timeout: another process's refresh takes seconds
        return lock


@dataclass
class ClientSession:
    """What one run of the client shares: settings, one connection pool, the cache."""

    settings: Settings
    progress: Progress = field(default_factory=NoProgress)
    refresh: bool = False  # revalidate index documents even when freshly cached
    allow_unsigned: bool = False
    # The one way bytes come in (index documents, metadata, artifacts, LFS). Handed in by
    # an embedding application or a test; by default mx's HTTP transport for the settings.
    fetcher: Transport | None = None

    def __post_init__(self) -> None:
        self.cache = Cache(self.settings.home)
        self.trust = TrustPolicy.from_config(self.settings.trust, self.allow_unsigned)
        self.trust.require_signatures |= self.settings.require_signatures
        self.transport: Transport = self.fetcher or Transport(
            self.settings.limits, self.settings.token, self.settings.registry)
        self._index: SerialIndex | None = None
        self._cache_lock: Lock | None = None

    def hold_cache(self) -> None:
        """Hold the cache lock (shared) until `close`: `mx cache clean` waits for us."""
        if self._cache_lock is None:
            self._cache_lock = self.cache.shared()

    @property
    def registry(self) -> str:
        if not self.settings.registry:
            raise ConfigError("no registry is configured",
                              hint="pass --registry URL, set MX_REGISTRY, or set "
                                   "default_registry in ~/.config/mx/config.toml")
        return normalise_base(self.settings.registry)

    def index(self) -> SerialIndex:
        """The registry's index client: one per session, so metadata is refreshed once."""
        if self._index is None:
            self.hold_cache()  # index documents and TUF metadata live in the cache too
            s = self.settings
            client = IndexClient(self.registry, s.home, self.transport, s.offline,
                                 self.refresh,
                                 RootPin(s.root_file, s.root_sha256, s.allow_unsigned_index))
            lock = self.cache.locks / f"registry-{registry_key(self.registry)}.lock"
            self._index = SerialIndex(client, lock)
        return self._index

    def take_notices(self) -> list[str]:
        """What the index client has to announce (trust on first use, an unsigned index)."""
        if self._index is None:
            return []
        notices = list(self._index.notices)
        self._index.notices.clear()
        return notices

    def close(self) -> None:
        self.transport.close()
        if self._cache_lock is not None:
            self._cache_lock.release()
            self._cache_lock = None


def install_requirement(session: ClientSession, req: Requirement, variant: str | None = None,
                        fmt: str | None = None, to: Path | None = None) -> InstalledModel:
    document = session.index().model_document(req.name)
    res = resolve(document.data, req)
    namespace_signers = document.signers()
    variant, arts = select_artifacts(res, variant, fmt)
    arts = arts + card_entry(res.record) + manifest_entry(res.record)
    made, warnings = _input_profile(session, req.name, res.version, variant, res.record, arts)
    signed: dict[str, str] | None = None

    def before_fetch() -> None:
        nonlocal signed
        bundle = signature_entry(res.record)
        bundle_file = (fetch_blob(session, bundle, f"{req.name}@{res.version}")
                       if bundle else None)
        # `arts` only: the input profile is the index record's, not a file the release
        # signed byte for byte (the signed index vouches for it).
        signed, more = check_release(req.name, res.version, res.record, arts,
                                     session.trust, bundle_file, namespace_signers)
        warnings.extend(more)

    def before_link(blobs: dict[str, Path]) -> None:
        if signed is not None and MANIFEST_FILE in blobs:
            check_manifest_identity(blobs[MANIFEST_FILE], req.name, res.version)

    installed = materialize(session, session.registry, req.name, res.version, variant, arts,
                            res.record.get("manifest"), to, before_fetch, before_link,
                            {"signature": res.record.get("signature")}, made)
    installed.warnings = (session.take_notices() + res.warnings + warnings
                          + installed.warnings)
    installed.signed = signed is not None
    return installed


def _input_profile(session: ClientSession, name: str, version: str, variant: str,
                   record: dict[str, Any], arts: list[dict[str, Any]]
                   ) -> tuple[dict[str, bytes], list[str]]:
    """The input profile file to install with the release ({} if none), and warnings."""
    files, warnings = profile.profile_file(record, [a["path"] for a in arts])
    if not files:
        return files, warnings
    variant_dir = session.cache.variant_dir(registry_key(session.registry), name, version,
                                            variant)
    if session.cache.installed_files(variant_dir, arts + profile.entries(files)):
        return files, warnings  # these very bytes passed `check` when they were written
    kept, refused = profile.check(files, f"{name} {version}")
    return kept, warnings + refused


def signature_entry(record: dict[str, Any]) -> dict[str, Any] | None:
    sig = record.get("signature")
    if not isinstance(sig, dict) or not {"url", "sha256", "size"} <= sig.keys():
        return None
    return {"path": "signature.sigstore.json", "sha256": sig["sha256"], "size": sig["size"],
            "urls": [sig["url"]]}


def fetch_blob(session: ClientSession, entry: dict[str, Any], label: str) -> Path:
    """One verified file into the blob store (cached; offline if already there)."""
    if session.cache.has_blob(entry["sha256"], entry["size"]):
        return session.cache.blob(entry["sha256"])
    if session.settings.offline:
        raise OfflineError(f"{label}: {entry['path']} not in the cache",
                           hint="run once online, or unset MX_OFFLINE / --offline")
    session.hold_cache()
    return Downloader(session.cache, session.transport, session.registry,
                      session.progress).fetch_one(entry, label)


def card_entry(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The model card, installed beside the artifacts like one of them (verified too)."""
    card = record.get("card")
    if not isinstance(card, dict) or not {"url", "sha256", "size"} <= card.keys():
        return []
    path = (record.get("manifest") or {}).get("card") or "README.md"
    return [{"path": path, "format": "card", "variant": None, "sha256": card["sha256"],
             "size": card["size"], "urls": [card["url"]]}]


def manifest_entry(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The release's mx.yaml as published, installed beside the artifacts (verified)."""
    mf = record.get("manifest_file")
    if not isinstance(mf, dict) or not {"url", "sha256", "size"} <= mf.keys():
        return []
    return [{"path": MANIFEST_FILE, "format": "manifest", "variant": None,
             "sha256": mf["sha256"], "size": mf["size"], "urls": [mf["url"]]}]


def materialize(session: ClientSession, registry: str, name: str, version: str, variant: str,
                arts: list[dict[str, Any]], manifest: dict[str, Any] | None,
                to: Path | None,
                before_fetch: Callable[[], None] | None = None,
                before_link: Callable[[dict[str, Path]], None] | None = None,
                extra_record: dict[str, Any] | None = None,
                made: dict[str, bytes] | None = None) -> InstalledModel:
    """Make the artifacts present and linked in the cache (and in `to`), with the files
    `made` from the index record rather than fetched (path -> bytes: the input profile)."""
    cache = session.cache
    key = registry_key(registry)
    variant_dir = cache.variant_dir(key, name, version, variant)
    made = made or {}
    wanted = arts + profile.entries(made)
    downloaded = False
    if not cache.installed_files(variant_dir, wanted):
        if session.settings.offline:
            missing = [a["path"] for a in arts if not cache.has_blob(a["sha256"], a["size"])]
            if missing:
                raise OfflineError(f"{name} {version}: {', '.join(missing)} not in the cache",
                                   hint="run once online, or unset MX_OFFLINE / --offline")
        session.hold_cache()
        # One writer per variant folder; the blob locks keep prune off what we are about
        # to link until the record names it (the lock protocol in mx.client.cache).
        with cache.variant_lock(variant_dir):
            if not cache.installed_files(variant_dir, wanted):  # or another process did
                reclaim(cache, held=variant_dir)  # what killed processes left
                signature = (extra_record or {}).get("signature") or {}
                pins = {a["sha256"] for a in wanted} | (
                    {signature["sha256"]} if isinstance(signature.get("sha256"), str) else set())
                with cache.pinned(pins):
                    for data in made.values():
                        cache.store_blob(data)
                    _fetch_and_link(session, registry, name, version, variant, arts, manifest,
                                    variant_dir, before_fetch, before_link, extra_record,
                                    wanted)
                downloaded = True
    files = {a["path"]: variant_dir / a["path"] for a in wanted}
    if to is not None:
        files = export_to(files, to)
    return InstalledModel(name, version, variant, registry, variant_dir, files, arts, manifest,
                          downloaded=downloaded)


def _fetch_and_link(session: ClientSession, registry: str, name: str, version: str, variant: str,
                    arts: list[dict[str, Any]], manifest: dict[str, Any] | None,
                    variant_dir: Path, before_fetch: Callable[[], None] | None,
                    before_link: Callable[[dict[str, Path]], None] | None,
                    extra_record: dict[str, Any] | None, linked: list[dict[str, Any]]) -> None:
    """Fetch `arts` and link `linked` (`arts` and the made files, already stored)."""
    cache = session.cache
    if before_fetch is not None:
        before_fetch()  # e.g. the signature: checked once, before anything is fetched
    downloader = Downloader(cache, session.transport, registry, session.progress)
    downloader.fetch_all(arts, f"{name}@{version}")
    if before_link is not None:
        before_link({a["path"]: cache.blob(a["sha256"]) for a in arts})
    record: dict[str, Any] = {"registry": registry, "name": name, "version": version,
                              "variant": variant, "artifacts": linked}
    if manifest is not None:
        record["manifest"] = manifest
    record.update(extra_record or {})
    cache.link_snapshot(variant_dir, {a["path"]: a["sha256"] for a in linked}, record)


def export_to(files: dict[str, Path], to: Path) -> dict[str, Path]:
    """Place the files under `to` (hard links to the read-only blobs where possible)."""
    out = {}
    for rel, src in sorted(files.items()):
        dest = to / rel
        link_file(Path(os.path.realpath(src)), dest)
        out[rel] = dest
    return out


def install(spec: str, *, variant: str | None = None, format: str | None = None,
            to: str | os.PathLike[str] | None = None, registry: str | None = None,
            offline: bool | None = None, home: str | os.PathLike[str] | None = None,
            progress: Progress | None = None, allow_unsigned: bool = False) -> InstalledModel:
    """Install `ns/name@range` into the cache and return where its files are.

    Raises (all `mx.MxError`): ConfigError for a malformed spec or config; ResolveError when
    no version matches; FetchError when the registry or an artifact cannot be fetched
    (`.status`, `.url`); TrustError when the registry's signed metadata does not verify or
    is missing; IndexFormatError for a malformed index document; IntegrityError for bytes
    or signatures that do not match; OfflineError when offline and not cached."""
    settings = load_settings(registry, offline, Path(home) if home else None)
    session = ClientSession(settings, progress or NoProgress(), allow_unsigned=allow_unsigned)
    try:
        return install_requirement(session, parse_requirement(spec), variant, format,
                                   Path(to) if to else None)
    finally:
        session.close()
