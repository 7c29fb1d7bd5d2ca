"""The registry's signing keys: one Ed25519 key per TUF role, as PKCS#8 PEM files in a folder.

`root.pem`, `targets.pem`, `snapshot.pem`, `timestamp.pem` sign their roles. Any other
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
    from securesystemslib.signer import CryptoSigner

ROLES = ("root", "targets", "snapshot", "timestamp")


@dataclass
class KeyRing:
    folder: Path
    _loaded: dict[str, CryptoSigner] = field(default_factory=dict)

    def path(self, role: str) -> Path:
        return self.folder / f"{role}.pem"

    def signer(self, role: str) -> CryptoSigner:
        """The signer of `role` (a ConfigError naming the file when it is missing)."""
        if role not in self._loaded:
            self._loaded[role] = _load(self.path(role))
        return self._loaded[role]

    def extra_signers(self) -> list[CryptoSigner]:
        """Every key in the folder that is not one of the four role files."""
        named = {self.path(r).name for r in ROLES}
        return [_load(p) for p in sorted(self.folder.glob("*.pem")) if p.name not in named]

    def has(self, role: str) -> bool:
        return self.path(role).is_file()


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


def _load(path: Path) -> CryptoSigner:
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
