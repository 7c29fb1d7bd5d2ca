"""TUF metadata over the built index: root, targets, snapshot and timestamp under `<out>/tuf/`.

Targets name every file a client reads from the host (everything under index/, cards/,
manifests/ and signatures/) with its length and sha256. A model document's target also
carries, in `custom.mx.signers`, the release signers of its namespace: the client learns
whom to trust for a release from signed metadata, never from a document the host could edit.

Metadata is rewritten only when what it says changes (or it nears expiry), so a rebuild
of an unchanged registry leaves every file as it was; `refresh_timestamp` re-signs the
timestamp alone, for a scheduled job that holds only the timestamp key.

Consistent snapshots: snapshot and targets are written as `<version>.<role>.json` and
older versions are kept a while, so a client that read the previous timestamp still finds
the files it names while a host or CDN updates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mx.errors import BuildError, FetchError
from mx.fsutil import walk_files, write_if_changed
from mx.index_builder.keys import ROLES, KeyRing

if TYPE_CHECKING:
    from tuf.api.metadata import Metadata, Root

TUF_DIR = "tuf"
SIGNED_DIRS = ("index", "cards", "manifests", "signatures")
LIFETIME = {"root": timedelta(days=365), "targets": timedelta(days=365),
            "snapshot": timedelta(days=365), "timestamp": timedelta(days=7)}
# Re-sign a role this long before it would expire, on any build or timestamp refresh.
RENEW = {"root": timedelta(days=60), "targets": timedelta(days=30),
         "snapshot": timedelta(days=30), "timestamp": timedelta(days=1)}
KEEP_VERSIONS = 5  # of snapshot and targets, for clients mid-update


@dataclass
class MetadataResult:
    written: list[str] = field(default_factory=list)  # roles re-signed by this run
    versions: dict[str, int] = field(default_factory=dict)


def model_doc_path(name: str) -> str:
    ns, short = name.split("/")
    return f"index/models/{ns}/{short}.json"


def _day(now: datetime) -> datetime:
    """Expiry is counted from the start of the UTC day, so two builds of the same state on
    one day write the same bytes (Ed25519 signatures are deterministic too)."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def write_metadata(out: Path, keys: KeyRing, signers: dict[str, list[dict[str, Any]]],
                   now: datetime | None = None,
                   files: dict[str, tuple[int, str]] | None = None) -> MetadataResult:
    """Sign what `out` holds now. `signers` maps a namespace to its release signers;
    `files` (path under `out` -> size, sha256), when the caller knows every file of the
    signed folders, saves reading them all again."""
    from tuf.api.metadata import Metadata, MetaFile, Snapshot, Targets, Timestamp

    now = now or datetime.now(UTC)
    day = _day(now)
    tuf = out / TUF_DIR
    current = load_current(tuf, with_targets=False)
    result = MetadataResult()
    # Everything is signed before anything is written: a signer that fails (a missing key,
    # no OIDC token for a keyless role) leaves the published metadata as it was.
    writes: list[tuple[str, bytes]] = []

    root, root_changed = _root(current.get("root"), keys, now)
    if root_changed:
        data = root.to_bytes()
        writes += [(f"{root.signed.version}.root.json", data), ("root.json", data)]
        result.written.append("root")

    from mx.index_builder.canonical import FastCanonicalSerializer, canonical_json

    def next_role(role: str, old: Metadata[Any] | None, same: bool,
                  make: Callable[[int, datetime], Any], file: str) -> Metadata[Any]:
        """`old` while it still says the same and is not near expiry; else the next
        version, signed, queued for writing."""
        if old is not None and same and not root_changed and not _renew(old, now):
            return old
        version = old.signed.version + 1 if old is not None else 1
        md = Metadata(make(version, day + LIFETIME[role]))
        md.sign(keys.signer(role), signed_serializer=FastCanonicalSerializer())
        writes.append((file.format(version=version), md.to_bytes()))
        result.written.append(role)
        return md

    # Targets names every published file (20,000 at 5,000 models): it is built, compared
    # and signed as plain dicts, with no python-tuf object per file.
    wanted = _targets(out, signers, files)
    old_targets = _read_targets(tuf, current.get("snapshot"))
    targets_version = old_targets["version"] if old_targets is not None else 0
    if (old_targets is None or old_targets["targets"] != wanted or root_changed
            or datetime.fromisoformat(old_targets["expires"].replace("Z", "+00:00")) - now
            < RENEW["targets"]):
        targets_version += 1
        signed = Targets(version=targets_version, expires=day + LIFETIME["targets"]).to_dict()
        signed["targets"] = wanted
        payload = canonical_json(signed)
        signature = keys.signer("targets").sign(payload)
        # the file is plain JSON (canonical JSON writes control characters raw)
        writes.append((f"{targets_version}.targets.json", json.dumps(
            {"signatures": [signature.to_dict()], "signed": signed}, sort_keys=True,
            separators=(",", ":"), ensure_ascii=False).encode()))
        result.written.append("targets")
    meta = {"targets.json": MetaFile(version=targets_version)}
    old_snapshot = current.get("snapshot")
    snapshot = next_role(
        "snapshot", old_snapshot, old_snapshot is not None and old_snapshot.signed.meta == meta,
        lambda v, exp: Snapshot(version=v, expires=exp, meta=meta), "{version}.snapshot.json")
    ts_meta = MetaFile(version=snapshot.signed.version)
    old_ts = current.get("timestamp")
    ts = next_role(  # last in `writes`: the timestamp is what publishes the rest
        "timestamp", old_ts, old_ts is not None and old_ts.signed.snapshot_meta == ts_meta,
        lambda v, exp: Timestamp(version=v, expires=exp, snapshot_meta=ts_meta),
        "timestamp.json")
    for name, data in writes:
        write_if_changed(tuf / name, data)
    _prune(tuf, "targets", targets_version)
    _prune(tuf, "snapshot", snapshot.signed.version)
    result.versions = {"root": root.signed.version, "targets": targets_version,
                       "snapshot": snapshot.signed.version, "timestamp": ts.signed.version}
    return result


def refresh_timestamp(out: Path, keys: KeyRing, now: datetime | None = None) -> int:
    """A new timestamp (next version, fresh expiry) over the current snapshot."""
    from tuf.api.metadata import Metadata, Timestamp

    now = (now or datetime.now(UTC)).replace(microsecond=0)  # a refresh is always new
    current = load_current(out / TUF_DIR)
    old = current.get("timestamp")
    if old is None:
        raise BuildError(f"{out / TUF_DIR}: no timestamp.json to refresh",
                         hint="build the index with `mx index build` first")
    ts = Metadata(Timestamp(version=old.signed.version + 1,
                            expires=now + LIFETIME["timestamp"],
                            snapshot_meta=old.signed.snapshot_meta))
    ts.sign(keys.signer("timestamp"))
    write_if_changed(out / TUF_DIR / "timestamp.json", ts.to_bytes())
    return int(ts.signed.version)


def load_current(tuf: Path, with_targets: bool = True) -> dict[str, Metadata[Any]]:
    """The metadata the output serves now, followed from timestamp.json (what a client sees)."""
    from tuf.api.metadata import Metadata

    found: dict[str, Metadata[Any]] = {}

    def read(name: str) -> Metadata[Any] | None:
        path = tuf / name
        if not path.is_file():
            return None  # a first build, or a partial one: what is missing is written anew
        try:
            return Metadata.from_bytes(path.read_bytes())
        except Exception as exc:  # tuf raises its own family for unreadable metadata
            raise BuildError(f"{path}: existing metadata is unreadable ({exc})",
                             hint="restore it from the published copy") from None

    for role, name in (("root", "root.json"), ("timestamp", "timestamp.json")):
        md = read(name)
        if md is None:
            return found
        found[role] = md
    snap = read(f"{found['timestamp'].signed.snapshot_meta.version}.snapshot.json")
    if snap is None:
        return found
    found["snapshot"] = snap
    meta = snap.signed.meta.get("targets.json")
    targets = (read(f"{meta.version}.targets.json") if meta is not None and with_targets
               else None)
    if targets is not None:
        found["targets"] = targets
    return found


def _renew(md: Metadata[Any], now: datetime) -> bool:
    return bool(md.signed.expires - now < RENEW[md.signed.type])


def _root(old: Metadata[Root] | None, keys: KeyRing, now: datetime
          ) -> tuple[Metadata[Root], bool]:
    """The root to publish, and whether it is new (first build, a key rotated, expiry)."""
    from tuf.api.metadata import Metadata, Root

    # The root key is read only when root.pem is present (it may be kept offline).
    roles = [r for r in ROLES if r != "root" or keys.has("root") or old is None]
    wanted = {role: keys.public_key(role) for role in roles}
    if old is not None:
        same = all(old.signed.roles[r].keyids == [wanted[r].keyid] for r in roles)
        if same and not _renew(old, now):
            return old, False
    trusted_before = set(old.signed.roles["root"].keyids) if old is not None else set()
    signed = Root(expires=_day(now) + LIFETIME["root"], consistent_snapshot=True) \
        if old is None else old.signed
    if old is not None:
        signed.version += 1
        signed.expires = _day(now) + LIFETIME["root"]
    for role, key in wanted.items():
        for keyid in list(signed.roles[role].keyids):
            signed.revoke_key(keyid, role)
        signed.add_key(key, role)
    new = Metadata(signed)
    # Signed by the new root key, and by the keys the previous root trusted, so a client
    # holding the previous root can follow the rotation.
    new.sign(keys.signer("root"))
    for extra in keys.extra_signers():
        if extra.public_key.keyid in trusted_before:
            new.sign(extra, append=True)
    if old is not None and not trusted_before & set(new.signatures):
        raise BuildError(
            f"{keys.path('root')}: the root key changed, and no key the published root "
            "trusts is in the key folder to countersign the new root",
            hint=f"put the previous root key in {keys.folder}/root.old.pem")
    return new, True


def _targets(out: Path, signers: dict[str, list[dict[str, Any]]],
             files: dict[str, tuple[int, str]] | None = None) -> dict[str, Any]:
    """The `targets` of targets metadata, as TargetFile.to_dict would write each."""
    if files is None:
        files = {}
        for top in SIGNED_DIRS:
            for rel, path in walk_files(out / top, top):
                if not path.name.startswith("."):
                    data = path.read_bytes()
                    files[rel] = (len(data), hashlib.sha256(data).hexdigest())
    found: dict[str, Any] = {}
    for rel in sorted(files):
        size, sha = files[rel]
        entry: dict[str, Any] = {"length": size, "hashes": {"sha256": sha}}
        parts = rel.split("/")
        if len(parts) == 4 and parts[:2] == ["index", "models"] and signers.get(parts[2]):
            entry["custom"] = {"mx": {"signers": signers[parts[2]]}}
        found[rel] = entry
    return found


def _read_targets(tuf: Path, snapshot: Metadata[Any] | None) -> dict[str, Any] | None:
    """The `signed` part of the targets metadata the snapshot names, read as plain JSON
    (the build signed it; a client verifies it), or None."""
    meta = snapshot.signed.meta.get("targets.json") if snapshot is not None else None
    if meta is None:
        return None
    path = tuf / f"{meta.version}.targets.json"
    try:
        signed = json.loads(path.read_bytes())["signed"]
        if not isinstance(signed.get("targets"), dict) or not isinstance(
                signed.get("version"), int) or not isinstance(signed.get("expires"), str):
            raise ValueError("not targets metadata")
        return dict(signed)
    except FileNotFoundError:
        return None  # a partial output: written anew
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BuildError(f"{path}: existing metadata is unreadable ({exc})",
                         hint="restore it from the published copy") from None


def _prune(tuf: Path, role: str, current: int) -> None:
    for path in tuf.glob(f"*.{role}.json"):
        version = path.name.split(".", 1)[0]
        if version.isdigit() and int(version) <= current - KEEP_VERSIONS:
            path.unlink()


def seed_from_published(base_url: str, out: Path, transport: Any) -> int:
    """Copy the metadata a live registry serves into `out/tuf/` (when `out` has none), so a
    build in a fresh checkout (a CI job) continues its versions and its root chain instead
    of starting a new one. Returns the number of files fetched."""
    tuf = out / TUF_DIR
    if (tuf / "root.json").exists():
        return 0
    base = base_url.rstrip("/") + f"/{TUF_DIR}/"
    try:
        root = transport.get(base + "root.json", 512_000).data
    except FetchError as exc:
        if exc.status == 404:
            return 0  # nothing published yet: this build starts the chain
        raise
    files = {"root.json": root}
    try:
        newest = int(json.loads(root)["signed"]["version"])
        for version in range(1, newest + 1):
            files[f"{version}.root.json"] = transport.get(
                f"{base}{version}.root.json", 512_000).data
        ts = transport.get(base + "timestamp.json", 65_536).data
        files["timestamp.json"] = ts
        snap_v = int(json.loads(ts)["signed"]["meta"]["snapshot.json"]["version"])
        snap = transport.get(f"{base}{snap_v}.snapshot.json", 2 << 20).data
        files[f"{snap_v}.snapshot.json"] = snap
        targets_v = int(json.loads(snap)["signed"]["meta"]["targets.json"]["version"])
        files[f"{targets_v}.targets.json"] = transport.get(
            f"{base}{targets_v}.targets.json", 64 << 20).data
    except (ValueError, KeyError, TypeError) as exc:
        raise BuildError(f"{base}: the published metadata is malformed ({exc})") from None
    for name, data in files.items():
        write_if_changed(tuf / name, data)
    return len(files)
