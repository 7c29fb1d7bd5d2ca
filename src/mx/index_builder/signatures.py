"""Each release's signature: read from git notes, verified against the namespace's
signers in registry.yaml, and checked file by file against the tagged tree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mx.errors import BuildError, ConfigError, IntegrityError
from mx.index_builder.collect import Release
from mx.index_builder.dvc import DvcObjects
from mx.index_builder.registry import Registry
from mx.sign import notes
from mx.sign.policy import TrustedSigner, signer_from_spec, verify_bundle
from mx.sign.release import bundle_digest
from mx.sign.statement import MAX_BUNDLE_BYTES, compare


@dataclass
class SignatureRecord:
    data: bytes  # the bundle as published
    sha256: str
    signer: dict[str, Any]


class SignatureChecker:
    def __init__(self, registry: Registry, registry_dir: Path, allow_unsigned: bool,
                 trust_config: Path | None) -> None:
        self.registry = registry
        self.registry_dir = registry_dir
        self.allow_unsigned = allow_unsigned or registry.allow_unsigned
        tc = trust_config or (registry_dir / registry.trust_config
                              if registry.trust_config else None)
        self.trust_config = tc
        self._signers: dict[str, list[TrustedSigner]] = {}

    def signers(self, namespace: str) -> list[TrustedSigner]:
        if namespace not in self._signers:
            ns = self.registry.namespaces.get(namespace)
            specs = [s.model_dump(exclude_none=True) for s in ns.signers] if ns else []
            try:
                self._signers[namespace] = [
                    signer_from_spec(spec, self.registry_dir,
                                     f"registry.yaml: namespaces.{namespace}.signers")
                    for spec in specs]
            except ConfigError as exc:
                raise BuildError(str(exc)) from None
        return self._signers[namespace]

    def check(self, release: Release, dvc: DvcObjects) -> SignatureRecord | None:
        where = release.where
        bundle = notes.read_signatures(release.source.repo, release.tag.commit).get(
            release.tag.model_dir)
        if bundle is None:
            if self.allow_unsigned:
                return None
            raise BuildError(f"{where}: the release is not signed (no {notes.NOTES_REF} note "
                             f"for {release.tag.model_dir})",
                             hint=f"sign it: mx sign --tag {release.tag.tag} --key KEY "
                                  f"--push; or build with --allow-unsigned")
        signers = self.signers(release.manifest.namespace)
        if not signers:
            raise BuildError(f"{where}: namespace {release.manifest.namespace} lists no "
                             "signers in registry.yaml",
                             hint="add namespaces.<ns>.signers, or build with --allow-unsigned")
        try:
            verified = verify_bundle(bundle, signers, where, self.trust_config)
            known = {a.path: a.sha256 for a in release.artifacts if a.dvc is not None}
            tree = notes.tree_files(release.source.repo, release.tag.commit,
                                    release.tag.model_dir, lambda path, _p: known.get(path),
                                    dvc.listings(release.source, release.tag))
            # A DVC-tracked file that is no artifact is not read to learn its sha256: no
            # client fetches it, and its pointer (in the signed tree) binds its bytes.
            signed = {p: d for p, d in verified.files.files.items() if not tree.covers(p)}
            compare(signed, tree.files, where, exact=True)
            _binds_artifacts(verified.files.files, release)
        except IntegrityError as exc:
            raise BuildError(str(exc), hint=exc.hint) from None
        data, sha = bundle_digest(bundle)
        if len(data) > MAX_BUNDLE_BYTES:  # the one limit signer, builder and client share
            raise BuildError(f"{where}: the signature bundle is {len(data):,} bytes, over the "
                             f"{MAX_BUNDLE_BYTES:,}-byte limit clients accept",
                             hint="clients would refuse this release; split the model")
        return SignatureRecord(data, sha, verified.signer)


def _binds_artifacts(signed: dict[str, str], release: Release) -> None:
    """Each artifact as published is a file of the signature, with its sha256: what every
    client checks (mx.client.trust). The tree comparison above need not show it: mx.yaml
    may name a file the signature leaves out (.github/), or one the builder found where
    signing did not look."""
    for art in release.artifacts:
        digest = signed.get(art.path)
        if digest is None:
            raise IntegrityError(f"{release.where}: artifact {art.path} is not covered by the "
                                 "signature, so every client would refuse it",
                                 hint="list as artifacts only files the signature covers "
                                      "(not under .git*, .github or .lfsconfig)")
        if digest != art.sha256:
            raise IntegrityError(f"{release.where}: artifact {art.path} has sha256 "
                                 f"{art.sha256} but the signature says {digest}",
                                 hint="the signed file is not the one published")
