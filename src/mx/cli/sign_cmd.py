"""`mx sign [DIR] --key KEY.pem | --sigstore [--tag TAG] [--push REMOTE]`"""

from __future__ import annotations

import subprocess
from pathlib import Path

import click

from mx.errors import GitError


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path),
                default=".")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path),
              help="EC private key (PEM) for air-gapped signing.")
@click.option("--password", envvar="MX_KEY_PASSWORD", help="The key's password, if any.")
@click.option("--sigstore", is_flag=True, help="Keyless Sigstore with CI (OIDC) credentials.")
@click.option("--identity-token", envvar="SIGSTORE_ID_TOKEN",
              help="An OIDC identity token for --sigstore (else ambient credentials).")
@click.option("--trust-config", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Sigstore ClientTrustConfig JSON (default: the production instance).")
@click.option("--tag", help="Release tag to sign [default: the release tag at HEAD].")
@click.option("--push", "remote", help="Push the tag and the signature notes to REMOTE.")
def sign(directory: Path, key: Path | None, password: str | None, sigstore: bool,
         identity_token: str | None, trust_config: Path | None, tag: str | None,
         remote: str | None) -> None:
    """Sign a release: exactly the tree of its tag, stored as a git note."""
    from mx.sign.notes import NOTES_REF
    from mx.sign.release import sign_release
    from mx.sign.signers import KeySigner, SigstoreSigner

    if bool(key) == sigstore:
        raise click.UsageError("pass exactly one of --key KEY.pem and --sigstore")
    signer = (KeySigner(key, password) if key is not None
              else SigstoreSigner(identity_token, trust_config))
    where = sign_release(directory, tag, signer)
    click.echo(f"signed {where.tag.tag} ({where.model_dir}) at {where.tag.commit[:12]}; "
               f"bundle in {NOTES_REF}")
    if remote:
        # `--`: a remote spelled like an option (--receive-pack=...) is not read as one
        proc = subprocess.run(["git", "push", "--", remote, f"refs/tags/{where.tag.tag}",
                               f"{NOTES_REF}:{NOTES_REF}"], cwd=directory,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["git push failed"])[-1]
            raise GitError(f"push to {remote}: {last}",
                           hint=f"push by hand: git push {remote} {where.tag.tag} {NOTES_REF}")
        click.echo(f"pushed {where.tag.tag} and {NOTES_REF} to {remote}")
    else:
        click.echo(f"publish it with: git push origin {where.tag.tag} {NOTES_REF}", err=True)
