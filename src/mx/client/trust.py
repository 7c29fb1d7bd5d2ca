"""Before any file is linked: the release's signature, checked against the signer the
index records and the client's own pinned policy, and the signed digests compared with
the sha256 every download is verified against (so nothing is hashed twice)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx.errors import ConfigError, IntegrityError
from mx.sign.policy import TrustedSigner, signer_from_spec, verify_bundle
from mx.sign.statement import compare, load_bundle


@dataclass
class TrustPolicy:
    """`[trust]` in config.toml: pinned signers per namespace, and whether unsigned
    releases are acceptable at all."""

    require_signatures: bool = False
    pinned: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    trust_config: Path | None = None
    allow_unsigned: bool = False  # --allow-unsigned for this run

    @classmethod
    def from_config(cls, table: dict[str, Any], allow_unsigned: bool = False) -> TrustPolicy:
        namespaces = table.get("namespaces", {})
        if not isinstance(namespaces, dict):
            raise ConfigError("config.toml: [trust.namespaces] must be a table")
        pinned = {ns: list(v.get("signers", [])) for ns, v in namespaces.items()
                  if isinstance(v, dict)}
        tc = table.get("trust_config")
        return cls(bool(table.get("require_signatures", False)), pinned,
                   Path(tc).expanduser() if isinstance(tc, str) else None, allow_unsigned)

    def signers_for(self, namespace: str, signed: list[dict[str, Any]] | None,
                    recorded: dict[str, Any] | None) -> list[TrustedSigner]:
        """Who may sign releases of `namespace`: the user's pin, else the signers the
        registry's signed metadata names (`signed`), else, only for an unsigned index the
        user chose to read, the signer the document records."""
        specs = self.pinned.get(namespace)
        if specs:
            return [signer_from_spec(s, None, f"config.toml: trust.namespaces.{namespace}")
                    for s in specs]
        if signed is not None:
            return [signer_from_spec(_spec(s), None, "the registry's signed metadata")
                    for s in signed]
        if recorded is None:
            return []
        return [signer_from_spec(_spec(recorded), None, "the index's signer record")]


def _spec(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k in ("public_key", "issuer", "identity")}


def check_release(name: str, version: str, record: dict[str, Any],
                  files: list[dict[str, Any]], policy: TrustPolicy,
                  bundle_file: Path | None, signed_signers: list[dict[str, Any]] | None = None
                  ) -> tuple[dict[str, str] | None, list[str]]:
    """Verify the release's signature (`bundle_file`, already fetched and checked against
    the index's sha256) and that it covers `files` as the index lists them.

    `signed_signers` are the namespace's signers from the registry's signed metadata
    (None when the index is unsigned); a pinned policy wins over them.

    Returns the signed digests (None when unsigned and allowed) and warnings.
    """
    what = f"{name} {version}"
    ns = name.split("/", 1)[0]
    sig = record.get("signature")
    if not sig or bundle_file is None:
        if (policy.require_signatures or policy.pinned.get(ns)) and not policy.allow_unsigned:
            raise IntegrityError(f"{what} is not signed, and signatures are required for "
                                 f"namespace {ns}",
                                 hint="pass --allow-unsigned to install it anyway")
        return None, [f"{what} is not signed"] if policy.require_signatures else []
    bundle = load_bundle(bundle_file.read_bytes(), f"{what} signature")
    signers = policy.signers_for(ns, signed_signers, sig.get("signer"))
    verified = verify_bundle(bundle, signers, what, policy.trust_config)
    compare(verified.files.files, {f["path"]: f["sha256"] for f in files}, what, exact=False)
    return verified.files.files, []


_FIELD = re.compile(r"^(name|version):\s*['\"]?([^'\"#\s]+)", re.M)


def check_manifest_identity(manifest_file: Path, name: str, version: str) -> None:
    """The signed mx.yaml must be this model's and this version's: a bundle replayed from
    another model or version whose artifacts happen to be identical is caught here."""
    found = dict(_FIELD.findall(manifest_file.read_text(encoding="utf-8", errors="replace")))
    if found.get("name") != name or found.get("version") != version:
        raise IntegrityError(f"{name} {version}: the signed mx.yaml is for "
                             f"{found.get('name')} {found.get('version')}",
                             hint="the signature belongs to another model or version")
