"""The registry's TUF metadata on the client: python-tuf's ngclient over mx's transport.

The client trusts a root, not the host. The first root comes from the user's config
(`root = FILE` or `root_sha256 = HEX` on the registry's entry) or, failing that, is taken
on first use and announced once; from then on ngclient follows root rotations, and refuses
rollback, freeze (expired metadata), mix-and-match and endless data. Every index document
the client reads must match the length and sha256 the signed targets metadata gives it.

`tuf` is imported here only, and only when metadata must be refreshed: an install of
something cached within the index's max-age never loads it.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mx.errors import FetchError, IntegrityError, TrustError
from mx.fsutil import atomic_write_bytes
from mx.http import Transport
from mx.tufimport import import_tuf

if TYPE_CHECKING:
    from tuf.ngclient import Updater

TUF_DIR = "tuf/"
PINNED_RECORD = "pinned.txt"  # sha256 of the pinned root this folder's trust started from
FIRST_USE_RECORD = "first-use.txt"  # sha256 of the root trusted on first use
MAX_TARGETS_BYTES = 64 << 20  # a registry of tens of thousands of files


@dataclass(frozen=True)
class RootPin:
    """How the first root is chosen: a file's bytes, a sha256, or trust on first use."""

    root_file: Path | None = None
    root_sha256: str | None = None
    allow_unsigned_index: bool = False


@dataclass(frozen=True)
class SignedTarget:
    length: int
    sha256: str
    custom: dict[str, Any]

    def check(self, data: bytes, url: str) -> None:
        actual = hashlib.sha256(data).hexdigest()
        if len(data) != self.length or actual != self.sha256:
            raise IntegrityError(
                f"{url}: does not match the registry's signed metadata ({len(data)} bytes, "
                f"sha256 {actual[:16]}...; signed: {self.length} bytes, "
                f"{self.sha256[:16]}...)",
                hint="the host serves a document the registry did not publish "
                     "(tampered, or a mirror caught mid-update: try again later)")


@dataclass
class RegistryMetadata:
    """One registry's verified metadata, refreshed at most once per process."""

    base_url: str
    folder: Path  # $MX_HOME/tuf/<registry-key>
    transport: Transport
    pin: RootPin
    notices: list[str] = field(default_factory=list)
    _updater: Updater | None = None
    _unsigned: bool = False

    @property
    def unsigned(self) -> bool:
        """True when the registry publishes no metadata and the user allowed that."""
        self._ready()
        return self._unsigned

    def target(self, rel: str) -> SignedTarget | None:
        """The signed length, sha256 and custom data of `rel`, or None if not a target."""
        updater = self._ready()
        if updater is None:
            return None
        try:
            info = updater.get_targetinfo(rel)
        except Exception as exc:
            raise _explain(exc, self.base_url) from None
        if info is None:
            raise FetchError(f"{rel}: not in the registry at {self.base_url} (its signed "
                             "metadata lists no such file)", status=404,
                             url=self.base_url + rel,
                             hint="check the name with `mx search`, or the registry URL")
        digest = info.hashes.get("sha256")
        if not isinstance(digest, str):
            raise IntegrityError(f"{rel}: the signed metadata gives no sha256 for it")
        custom = info.custom if isinstance(info.custom, dict) else {}
        return SignedTarget(info.length, digest, custom)

    def _ready(self) -> Updater | None:
        if self._updater is not None or self._unsigned:
            return self._updater
        import_tuf()
        from tuf.ngclient import Updater, UpdaterConfig

        from mx.client.tuffetch import TransportFetcher

        if self.pin_changed():
            self.forget()
        self.folder.mkdir(parents=True, exist_ok=True)
        trusted = self.folder / "root.json"
        bootstrap = None if trusted.exists() else self._first_root()
        if bootstrap is None and not trusted.exists():
            self._unsigned = True
            return None
        config = UpdaterConfig(targets_max_length=MAX_TARGETS_BYTES,
                               app_user_agent="mx")
        try:
            updater = Updater(str(self.folder), self.base_url + TUF_DIR,
                              fetcher=TransportFetcher(self.transport), config=config,
                              bootstrap=bootstrap)
            if bootstrap is not None and self._pin_digest() is not None:
                # What this folder's trust starts from: a later, different pin restarts it.
                atomic_write_bytes(self.folder / PINNED_RECORD,
                                   (hashlib.sha256(bootstrap).hexdigest() + "\n").encode())
            updater.refresh()
        except Exception as exc:
            raise _explain(exc, self.base_url) from None
        self._updater = updater
        return updater

    def _pinned_file(self) -> bytes:
        assert self.pin.root_file is not None
        try:
            return self.pin.root_file.read_bytes()
        except OSError as exc:
            raise TrustError(f"{self.pin.root_file}: the pinned root cannot be read "
                             f"({exc.strerror})") from None

    def _pin_digest(self) -> str | None:
        """The sha256 of the root the user pinned (file or digest), None for first use."""
        if self.pin.root_file is not None:
            return hashlib.sha256(self._pinned_file()).hexdigest()
        return self.pin.root_sha256.lower() if self.pin.root_sha256 else None

    def pin_changed(self) -> bool:
        """True when the user pinned a root that this client's trusted metadata did not
        start from (say, pinned after a first use): that metadata must not outlive the pin."""
        want = self._pin_digest()
        if want is None or not (self.folder / "root.json").exists():
            return False
        for record in (PINNED_RECORD, FIRST_USE_RECORD):
            try:
                if (self.folder / record).read_text().strip() == want:
                    return False
            except (OSError, UnicodeDecodeError):
                pass
        return True

    def forget(self) -> None:
        """Drop the trusted metadata: the next refresh starts again from the pinned root."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _first_root(self) -> bytes | None:
        """The root to start from, or None for an unsigned registry the user allowed."""
        if self.pin.root_file is not None:
            return self._pinned_file()
        url = self.base_url + TUF_DIR + "root.json"
        try:
            data = self.transport.get(url, 512_000).data
        except FetchError as exc:
            if exc.status != 404:
                raise
            if self.pin.root_sha256 is None and self.pin.allow_unsigned_index:
                self.notices.append(f"{self.base_url} publishes no signed metadata; reading "
                                    "its index unverified (allow_unsigned_index)")
                return None
            raise TrustError(
                f"{self.base_url}: the registry publishes no signed metadata "
                f"({TUF_DIR}root.json: HTTP 404); refusing to trust what the host serves",
                hint="if you trust this host, set allow_unsigned_index = true on the "
                     "registry in config.toml, or pass --allow-unsigned-index") from None
        digest = hashlib.sha256(data).hexdigest()
        if self.pin.root_sha256 is not None:
            if digest != self.pin.root_sha256.lower():
                data = self._pinned_version(self.pin.root_sha256.lower(), data)
            return data
        self.notices.append(f"trusting the root of {self.base_url} on first use (sha256 "
                            f"{digest}); pin it with `mx registry add NAME {self.base_url} "
                            f"--root-sha256 {digest}`")
        atomic_write_bytes(self.folder / FIRST_USE_RECORD, (digest + "\n").encode())
        return data

    def _pinned_version(self, want: str, latest: bytes) -> bytes:
        """An older root whose sha256 was pinned: ngclient then walks up from it."""
        import json

        try:
            newest = int(json.loads(latest)["signed"]["version"])
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
            newest = 0  # not a root at all: no version to walk up to
        for version in range(1, min(newest, 256) + 1):
            url = f"{self.base_url}{TUF_DIR}{version}.root.json"
            data = self.transport.get(url, 512_000).data
            if hashlib.sha256(data).hexdigest() == want:
                return data
        raise TrustError(f"{self.base_url}: no root the registry publishes has the pinned "
                         f"sha256 {want}",
                         hint="check root_sha256 for this registry in config.toml")


def _explain(exc: Exception, base_url: str) -> Exception:
    """One line for what went wrong with the metadata, as an MxError."""
    import_tuf()
    from tuf.api import exceptions

    what = f"{base_url}: the registry's signed metadata"
    hint = ("the host may be serving tampered or stale data; if the registry really "
            "changed its keys, remove the folder under $MX_HOME/tuf for it")
    if isinstance(exc, exceptions.ExpiredMetadataError):
        return TrustError(f"{what} has expired ({exc}): refusing stale data",
                          hint="the host may be replaying old metadata (a freeze attack), or "
                               "the publisher has not refreshed its timestamp")
    if isinstance(exc, exceptions.BadVersionNumberError):
        return TrustError(f"{what} is older than what this client already trusts ({exc}): "
                          "refusing a rollback", hint=hint)
    if isinstance(exc, exceptions.UnsignedMetadataError):
        return TrustError(f"{what} is not signed by the registry's keys ({exc})", hint=hint)
    if isinstance(exc, exceptions.LengthOrHashMismatchError):
        return TrustError(f"{what} does not match its signed length or hash ({exc})",
                          hint=hint)
    if isinstance(exc, exceptions.DownloadLengthMismatchError):
        return TrustError(f"{what}: a file is larger than allowed ({exc})", hint=hint)
    if isinstance(exc, exceptions.DownloadHTTPError):
        from mx.objstore import CREDENTIALS_HINT

        denied = exc.status_code in (401, 403)
        return FetchError(f"{what} could not be fetched ({exc})", status=exc.status_code,
                          hint=(CREDENTIALS_HINT if base_url[:3].lower() == "s3:" else
                                "the server wants credentials: set MX_TOKEN or add the host "
                                "to ~/.netrc") if denied else
                          "check the registry URL; a registry that signed its index "
                          "before must keep publishing tuf/")
    if isinstance(exc, exceptions.RepositoryError):
        return TrustError(f"{what} does not verify ({type(exc).__name__}: {exc})", hint=hint)
    if isinstance(exc, exceptions.DownloadError):
        cause = exc.__cause__ or exc
        return FetchError(f"{what} could not be fetched ({cause})")
    if isinstance(exc, (FetchError, TrustError, IntegrityError)):
        return exc
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        # ngclient raises these for metadata that does not parse as TUF at all.
        return TrustError(f"{what} is malformed ({type(exc).__name__}: {exc})", hint=hint)
    return exc
