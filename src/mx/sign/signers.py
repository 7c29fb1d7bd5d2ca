"""Signing plugins: each turns a model directory into a model-signing bundle.

A plugin is a small class behind the `BundleSigner` protocol, listed in SIGNERS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from mx.errors import ConfigError, MxError
from mx.sign.statement import IGNORED


class BundleSigner(Protocol):
    def sign(self, model_dir: Path) -> dict[str, Any]: ...


def _sign_with(config: Any, model_dir: Path) -> dict[str, Any]:
    """Run model-signing's public API over `model_dir`; return the bundle as JSON."""
    from model_signing import hashing

    out = model_dir.parent / f".{model_dir.name}.sigstore.json"
    hashing_config = hashing.Config().set_ignored_paths(
        paths=[model_dir / name for name in sorted(IGNORED)], ignore_git_paths=True)
    config.set_hashing_config(hashing_config).sign(model_dir, out)
    try:
        bundle: dict[str, Any] = json.loads(out.read_text())
        return bundle
    finally:
        out.unlink(missing_ok=True)


class KeySigner:
    """An EC private key in PEM (P-256, P-384 or P-521): air-gapped publishers, tests."""

    def __init__(self, key: Path, password: str | None = None) -> None:
        if not key.is_file():
            raise ConfigError(f"--key {key}: no such file")
        self.key, self.password = key, password

    def sign(self, model_dir: Path) -> dict[str, Any]:
        from model_signing import signing

        try:
            config = signing.Config().use_elliptic_key_signer(private_key=self.key,
                                                              password=self.password)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"--key {self.key}: not a usable EC private key ({exc})",
                              hint="make one with: openssl ecparam -name prime256v1 -genkey "
                                   "-noout -out key.pem") from None
        return _sign_with(config, model_dir)


class SigstoreSigner:
    """Keyless Sigstore with an OIDC identity token: ambient CI credentials (GitHub
    Actions with `id-token: write`) or one passed in. Never starts a browser flow."""

    def __init__(self, identity_token: str | None = None,
                 trust_config: Path | None = None) -> None:
        self.identity_token = identity_token or os.environ.get("SIGSTORE_ID_TOKEN")
        self.trust_config = trust_config

    def token(self) -> str:
        if self.identity_token:
            return self.identity_token
        from sigstore.oidc import IdentityError, detect_credential

        try:
            found = detect_credential()
        except IdentityError as exc:
            raise MxError(f"--sigstore: ambient credentials failed: {exc}") from None
        if not found:
            raise MxError("--sigstore: no OIDC identity token (no ambient CI credentials, "
                          "no --identity-token, no SIGSTORE_ID_TOKEN)",
                          hint="run in GitHub Actions with `permissions: id-token: write`, "
                               "or sign with --key")
        return str(found)

    def sign(self, model_dir: Path) -> dict[str, Any]:
        from model_signing import signing

        token = self.token()
        try:
            config = signing.Config().use_sigstore_signer(identity_token=token,
                                                          trust_config=self.trust_config)
            return _sign_with(config, model_dir)
        except MxError:
            raise
        except Exception as exc:  # network and service errors from sigstore
            detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
            raise MxError(f"--sigstore: signing failed: {detail}",
                          hint="check network access to the OIDC issuer, Fulcio and Rekor "
                               "named by the trust config") from None


SIGNERS: dict[str, type[KeySigner] | type[SigstoreSigner]] = {
    "key": KeySigner,
    "sigstore": SigstoreSigner,
}
