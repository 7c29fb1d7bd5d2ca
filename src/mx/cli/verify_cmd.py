"""`mx verify DIR|ns/name@RANGE [--key PUB.pem | --identity I --issuer U]`"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mx.cli.options import registry_option


@click.command()
@click.argument("target")
@click.option("--key", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="EC public key (PEM) the release must be signed with.")
@click.option("--identity", help="Sigstore certificate identity (a trailing * matches a prefix).")
@click.option("--issuer", help="OIDC issuer of that identity.")
@click.option("--trust-config", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Sigstore ClientTrustConfig JSON, for offline keyless verification.")
@click.option("--tag", help="Release tag [default: the release tag at HEAD].")
@click.option("--signature", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A standalone bundle to check DIR's files against (no git).")
@click.option("--ignore", multiple=True, help="Path in DIR the signature left out.")
@registry_option
@click.option("--json", "as_json", is_flag=True)
def verify(target: str, key: Path | None, identity: str | None, issuer: str | None,
           trust_config: Path | None, tag: str | None, signature: Path | None,
           ignore: tuple[str, ...], registry: str | None, as_json: bool) -> None:
    """Check a release's signature against a signer and its files."""
    from mx.cli.output import emit_json
    from mx.sign.policy import TrustedIdentity, TrustedKey, TrustedSigner

    if (identity is None) != (issuer is None):
        raise click.UsageError("--identity and --issuer go together")
    signers: list[TrustedSigner] = []
    if key is not None:
        signers.append(TrustedKey(key.read_bytes(), str(key)))
    if identity and issuer:
        signers.append(TrustedIdentity(issuer, identity))
    path = Path(target)
    if path.is_dir():
        from mx.sign.release import verify_directory, verify_release

        if not signers:
            raise click.UsageError("name the signer: --key PUB.pem, or --identity and --issuer")
        if signature is not None:
            verified = verify_directory(path, signature, signers, list(ignore), trust_config)
            what = str(path)
        else:
            where, verified = verify_release(path, tag, signers, trust_config)
            what = where.tag.tag
    else:
        what, verified_files, signer = _verify_published(target, signers, trust_config,
                                                         registry)
        report: dict[str, Any] = {"release": what, "files": verified_files, "signer": signer}
        if as_json:
            emit_json(report)
        else:
            click.echo(f"{what}: signature ok ({_who(signer)}), {len(verified_files)} files")
        return
    if as_json:
        emit_json({"release": what, "files": verified.files.files, "signer": verified.signer})
    else:
        click.echo(f"{what}: signature ok ({_who(verified.signer)}), "
                   f"{len(verified.files.files)} files")


def _who(signer: dict[str, Any]) -> str:
    if "key_id" in signer:
        return f"key {signer['key_id'][:12]}"
    return f"{signer.get('certificate_identity', signer.get('identity'))} via {signer['issuer']}"


def _verify_published(spec: str, signers: list[Any], trust_config: Path | None,
                      registry: str | None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Verify a release as the registry publishes it, and its files in the cache if there."""
    from mx.client.install import (
        ClientSession,
        card_entry,
        fetch_blob,
        manifest_entry,
        signature_entry,
    )
    from mx.client.profile import profile_file
    from mx.client.resolve import resolve
    from mx.client.spec import parse_requirement
    from mx.client.trust import check_release
    from mx.config import load_settings
    from mx.errors import IntegrityError
    from mx.fsutil import sha256_file

    req = parse_requirement(spec)
    session = ClientSession(load_settings(registry), refresh=True)
    try:
        document = session.index().model_document(req.name)
        res = resolve(document.data, req)
        files = res.record["artifacts"] + card_entry(res.record) + manifest_entry(res.record)
        policy = session.trust
        if signers:
            policy.pinned[req.name.split("/")[0]] = [s.to_json() for s in signers]
        if trust_config is not None:
            policy.trust_config = trust_config
        policy.require_signatures = True
        entry = signature_entry(res.record)
        bundle = fetch_blob(session, entry, spec) if entry else None
        signed, _ = check_release(req.name, res.version, res.record, files, policy, bundle,
                                  document.signers())
        assert signed is not None
        made, _ = profile_file(res.record, [f["path"] for f in files])  # no artifact path
        for rec in session.cache.installed():
            if rec["name"] == req.name and rec["version"] == res.version:
                for rel in rec["files"]:
                    local = Path(rec["path"]) / rel
                    # The input profile is written from the index record, which the signed
                    # index vouches for: not the release's file byte for byte.
                    if rel in made:
                        continue
                    if rel in signed and sha256_file(local)[0] != signed[rel]:
                        raise IntegrityError(f"{local}: differs from the signed file",
                                             hint="mx cache verify --repair, then install again")
        signer = (res.record.get("signature") or {}).get("signer") or {}
        return f"{req.name} {res.version}", signed, signer
    finally:
        session.close()
