"""The registry's signing keys: one key per TUF role, in a folder.

`root.pem`, `targets.pem`, `snapshot.pem`, `timestamp.pem` (Ed25519, PKCS#8 PEM) sign their
roles. An online role may instead be keyless: `<role>.sigstore.json` holding
`{"identity", "issuer"}` makes it a Sigstore identity (a CI workflow's), signed with the
job's ambient OIDC token through securesystemslib's SigstoreSigner. Any other
`*.pem` in the folder (say `root.old.pem`) is used only to countersign a new root with a
key the previous root trusted, which is how a root key is rotated. Only the keys a step
needs are read: a build that changes no root never opens `root.pem`, so the root key can
stay offline, and `mx index timestamp` reads `timestamp.pem` alone.

Ed25519 signatures are deterministic, so the same metadata signed twice is the same bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mx.errors import ConfigError
from mx.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    from securesystemslib.signer import Key, Signer

ROLES = ("root", "targets", "snapshot", "timestamp")


KEYLESS_ISSUER = "https://token.actions.githubusercontent.com"


@dataclass
class KeyRing:
    folder: Path
    _loaded: dict[str, Signer] = field(default_factory=dict)

    def path(self, role: str) -> Path:
        return self.folder / f"{role}.pem"

    def keyless_path(self, role: str) -> Path:
        return self.folder / f"{role}.sigstore.json"

    def public_key(self, role: str) -> Key:
        """The key the root names for `role`: needs no secret (and no OIDC token)."""
        if self.keyless_path(role).is_file() and not self.path(role).is_file():
            return _keyless_key(self.keyless_path(role))
        return self.signer(role).public_key

    def signer(self, role: str) -> Signer:
        """The signer of `role` (a ConfigError naming the file when it is missing)."""
        if role not in self._loaded:
            if self.keyless_path(role).is_file() and not self.path(role).is_file():
                self._loaded[role] = _keyless_signer(self.keyless_path(role), role)
            else:
                self._loaded[role] = _load(self.path(role))
        return self._loaded[role]

    def extra_signers(self) -> list[Signer]:
        """Every key in the folder that is not one of the four role files."""
        named = {self.path(r).name for r in ROLES}
        return [_load(p) for p in sorted(self.folder.glob("*.pem")) if p.name not in named]

    def has(self, role: str) -> bool:
        return self.path(role).is_file() or self.keyless_path(role).is_file()


def make_keyless(folder: Path, identity: str, issuer: str = KEYLESS_ISSUER,
                 roles: tuple[str, ...] = ("targets", "snapshot", "timestamp")) -> None:
    """Make `roles` keyless Sigstore identities; their PEM keys, if any, are removed (the
    next build with root.pem present writes a root naming the identity instead)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    for role in roles:
        if role == "root":
            raise ConfigError("the root stays a key kept offline; only targets, snapshot "
                              "and timestamp can be keyless")
        atomic_write_bytes(folder / f"{role}.sigstore.json",
                           json.dumps({"identity": identity, "issuer": issuer}).encode())
        (folder / f"{role}.pem").unlink(missing_ok=True)


def _keyless_key(path: Path) -> Key:
    import json

    from securesystemslib.signer import SigstoreSigner

    try:
        spec = json.loads(path.read_text())
        _, key = SigstoreSigner.import_(spec["identity"], spec["issuer"], ambient=True)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ConfigError(f"{path}: not a keyless identity {{identity, issuer}} ({exc})",
                          ) from None
    return key


def _keyless_signer(path: Path, role: str) -> Signer:
    from securesystemslib.signer import SigstoreSigner

    key = _keyless_key(path)
    try:
        return SigstoreSigner.from_priv_key_uri("sigstore:?ambient=true", key)
    except Exception as exc:  # sigstore's own errors, a missing token, a wrong issuer
        raise ConfigError(
            f"{path}: the {role} role is keyless, and signing it needs an ambient OIDC "
            f"identity of {key.keyval['identity']} ({exc})",
            hint="run the build in the CI job named there, with `permissions: id-token: "
                 "write` (GitHub Actions), or give the role a key (<role>.pem)") from None


def generate(folder: Path) -> list[str]:
    """Create the role keys that are missing in `folder` (mode 0600); returns their roles."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    made = []
    for role in ROLES:
        path = folder / f"{role}.pem"
        if path.exists():
            continue
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        atomic_write_bytes(path, pem, mode=0o600)
        made.append(role)
    return made


def from_environment(folder: Path) -> list[str]:
    """Write each role key given as PEM in MX_INDEX_<ROLE>_KEY (a CI secret) to `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    written = []
    for role in ROLES:
        pem = os.environ.get(f"MX_INDEX_{role.upper()}_KEY", "").strip()
        if pem:
            atomic_write_bytes(folder / f"{role}.pem", pem.encode() + b"\n", mode=0o600)
            _load(folder / f"{role}.pem")  # refuse a malformed secret now, naming it
            written.append(role)
    return written


def _load(path: Path) -> Signer:
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import CryptoSigner

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such key file",
                          hint="create the registry's keys with `mx index keys DIR`, or "
                               "pass --keys with the folder that holds them") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
        return CryptoSigner(key)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an unencrypted PKCS#8 private key ({exc})") from None
