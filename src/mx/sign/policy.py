"""Who may sign: EC public keys and Sigstore identities (a trailing `*` matches a prefix).

Key signatures are checked here with `cryptography` (fast to import); keyless ones
with sigstore's public Verifier and a policy built on its public policy API.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mx.errors import ConfigError, IntegrityError
from mx.sign.statement import SignedFiles, envelope, pae, parse_statement


@dataclass(frozen=True)
class TrustedKey:
    public_key_pem: bytes
    label: str  # where the key came from, for messages

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.public_key_pem.strip() + b"\n").hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"public_key": self.public_key_pem.decode(), "key_id": self.key_id}


@dataclass(frozen=True)
class TrustedIdentity:
    issuer: str
    identity: str  # exact, or a prefix followed by `*`

    def matches(self, san: str) -> bool:
        if self.identity.endswith("*"):
            return san.startswith(self.identity[:-1])
        return san == self.identity

    def to_json(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "identity": self.identity}


TrustedSigner = TrustedKey | TrustedIdentity


def signer_from_spec(spec: dict[str, Any], base_dir: Path | None, origin: str) -> TrustedSigner:
    """A signer from registry.yaml / config.toml (`public_key` is a path) or an index
    record (`public_key` is the PEM text)."""
    key = spec.get("public_key")
    if isinstance(key, str):
        if key.lstrip().startswith("-----BEGIN"):
            return TrustedKey(key.encode(), origin)
        path = (base_dir / key) if base_dir is not None else Path(key)
        try:
            return TrustedKey(path.read_bytes(), str(path))
        except OSError:
            raise ConfigError(f"{origin}: public key {path} cannot be read") from None
    issuer, identity = spec.get("issuer"), spec.get("identity")
    if isinstance(issuer, str) and isinstance(identity, str):
        return TrustedIdentity(issuer, identity)
    raise ConfigError(f"{origin}: a signer needs public_key, or issuer and identity")


@dataclass(frozen=True)
class Verified:
    files: SignedFiles
    signer: dict[str, Any]  # what matched, as recorded in the index


def verify_bundle(bundle: dict[str, Any], signers: list[TrustedSigner], origin: str,
                  trust_config: Path | None = None) -> Verified:
    """Check the bundle against any of `signers`; raise IntegrityError naming why not."""
    if not signers:
        raise IntegrityError(f"{origin}: no signers are allowed for this namespace",
                             hint="list signers under namespaces.<ns>.signers in registry.yaml")
    material = bundle.get("verificationMaterial") or {}
    keyless = "certificate" in material or "x509CertificateChain" in material
    errors = []
    for signer in signers:
        try:
            if isinstance(signer, TrustedKey):
                if keyless:
                    raise IntegrityError("signed with a certificate, not a key")
                files = _verify_key(bundle, signer, origin)
                return Verified(files, signer.to_json())
            if not keyless:
                raise IntegrityError("signed with a key, not a Sigstore identity")
            files, san = _verify_keyless(bundle, signer, origin, trust_config)
            return Verified(files, {**signer.to_json(), "certificate_identity": san})
        except IntegrityError as exc:
            errors.append(str(exc))
    listed = "; ".join(_describe(s) for s in signers)
    raise IntegrityError(f"{origin}: signature is not from a signer allowed for this "
                         f"namespace ({errors[-1]})",
                         hint=f"allowed: {listed}")


def _describe(s: TrustedSigner) -> str:
    if isinstance(s, TrustedKey):
        return f"key {s.label} ({s.key_id[:12]})"
    return f"{s.identity} from {s.issuer}"


def _verify_key(bundle: dict[str, Any], signer: TrustedKey, origin: str) -> SignedFiles:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_public_key(signer.public_key_pem)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise IntegrityError(f"{signer.label}: not an EC public key")
    algorithm = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}.get(
        key.curve.key_size)
    if algorithm is None:
        raise IntegrityError(f"{signer.label}: unsupported curve {key.curve.name}")
    env = envelope(bundle, origin)
    message = pae(env.payload_type, env.payload)
    for sig in env.signatures:
        try:
            key.verify(sig, message, ec.ECDSA(algorithm))
        except InvalidSignature:
            continue
        return parse_statement(env.payload_type, env.payload, origin)
    raise IntegrityError(f"key {signer.label} did not make this signature")


def _verify_keyless(bundle: dict[str, Any], signer: TrustedIdentity, origin: str,
                    trust_config: Path | None) -> tuple[SignedFiles, str]:
    import json

    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError
    from sigstore.models import Bundle, ClientTrustConfig
    from sigstore.verify import Verifier, policy

    matched: list[str] = []

    class IdentityPattern:
        """sigstore VerificationPolicy: issuer equal, SAN equal or prefix-matched."""

        def verify(self, cert: Any) -> None:
            from cryptography.x509 import (
                RFC822Name,
                SubjectAlternativeName,
                UniformResourceIdentifier,
            )

            policy.OIDCIssuer(signer.issuer).verify(cert)
            san = cert.extensions.get_extension_for_class(SubjectAlternativeName).value
            names = (san.get_values_for_type(RFC822Name)
                     + san.get_values_for_type(UniformResourceIdentifier))
            for name in names:
                if signer.matches(name):
                    matched.append(name)
                    return
            raise VerificationError(
                f"certificate identity {', '.join(names) or '(none)'} is not "
                f"{signer.identity}")

    try:
        if trust_config is not None:
            tc = ClientTrustConfig.from_json(trust_config.read_text())
        else:
            tc = ClientTrustConfig.production()
        parsed = Bundle.from_json(json.dumps(bundle))
        payload_type, payload = Verifier(trusted_root=tc.trusted_root).verify_dsse(
            parsed, IdentityPattern())
    except (SigstoreError, ValueError) as exc:
        raise IntegrityError(f"{signer.identity} from {signer.issuer}: {exc}") from None
    return parse_statement(payload_type, payload, origin), matched[0]
