"""Sign a release (a tag) and verify signed model directories."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mx import gitrepo
from mx.errors import GitError, MxError
from mx.fsutil import sha256_file
from mx.sign import notes
from mx.sign.policy import TrustedSigner, Verified, verify_bundle
from mx.sign.signers import BundleSigner
from mx.sign.statement import IGNORED, MAX_BUNDLE_BYTES, compare, load_bundle


@dataclass(frozen=True)
class Located:
    repo: Any
    model_dir: str  # "." for the repository root
    tag: gitrepo.ReleaseTag


def locate_release(path: Path, tag: str | None) -> Located:
    """The release of the model at `path`: `tag`, or the one release tag at HEAD."""
    import pygit2

    found = pygit2.discover_repository(str(path))
    if not found:
        raise GitError(f"{path}: not inside a git repository")
    repo = pygit2.Repository(found)
    if repo.workdir is None:
        raise GitError(f"{path}: a bare repository has no model directory to sign")
    rel = path.resolve().relative_to(Path(repo.workdir).resolve()).as_posix()
    model_dir = "." if rel in ("", ".") else rel
    releases = [t for t in gitrepo.release_tags(repo) if t.model_dir == model_dir]
    if tag is not None:
        chosen = [t for t in releases if t.tag == tag]
        if not chosen:
            names = ", ".join(t.tag for t in releases) or "none"
            raise GitError(f"{path}: {tag} is not a release tag of this model "
                           f"(its release tags: {names})")
    else:
        head = None if repo.head_is_unborn else str(repo.head.peel(pygit2.Commit).id)
        chosen = [t for t in releases if t.commit == head]
        if len(chosen) != 1:
            raise GitError(f"{path}: {'no' if not chosen else 'more than one'} release tag "
                           "points at HEAD", hint="tag the release first, or pass --tag")
    return Located(repo, model_dir, chosen[0])


def sign_release(path: Path, tag: str | None, signer: BundleSigner) -> Located:
    """Sign exactly the tree of the release tag and store the bundle as a git note."""
    where = locate_release(path, tag)
    with tempfile.TemporaryDirectory(prefix="mx-sign-") as tmp:
        short = Path(where.model_dir).name if where.model_dir != "." else "model"
        staged = Path(tmp) / short
        notes.materialize(where.repo, where.tag.commit, where.model_dir, staged)
        bundle = signer.sign(staged)
    data, _ = bundle_digest(bundle)
    if len(data) > MAX_BUNDLE_BYTES:
        # Clients refuse bundles over this size: a signature no one can verify is not made.
        raise MxError(f"{where.tag.tag}: the signature bundle would be {len(data):,} bytes, "
                      f"over the {MAX_BUNDLE_BYTES:,}-byte limit clients accept",
                      hint="a release of this many files is too large to sign as one "
                           "model; split it, or pack small files into an archive")
    notes.write_signature(where.repo, where.tag.commit, where.model_dir, bundle)
    return where


def verify_release(path: Path, tag: str | None, signers: list[TrustedSigner],
                   trust_config: Path | None = None) -> tuple[Located, Verified]:
    """Check the release's note against `signers` and the files of its tag (from git)."""
    where = locate_release(path, tag)
    what = f"{where.tag.tag}"
    bundle = notes.read_signatures(where.repo, where.tag.commit).get(where.model_dir)
    if bundle is None:
        raise MxError(f"{what}: no signature in {notes.NOTES_REF} for {where.model_dir}",
                      hint="sign with `mx sign`, or `git fetch origin "
                           f"{notes.NOTES_REF}:{notes.NOTES_REF}`")
    verified = verify_bundle(bundle, signers, what, trust_config)
    compare(verified.files.files, notes.tree_digests(where.repo, where.tag.commit,
                                                     where.model_dir), what, exact=True)
    return where, verified


def verify_directory(model_dir: Path, signature: Path, signers: list[TrustedSigner],
                     ignore: list[str], trust_config: Path | None = None) -> Verified:
    """Check a standalone bundle against the files of a directory on disk."""

    bundle = load_bundle(signature.read_bytes(), str(signature))
    verified = verify_bundle(bundle, signers, str(signature), trust_config)
    skip = set(ignore) | IGNORED
    actual: dict[str, str] = {}
    for p in sorted(model_dir.rglob("*")):
        rel = p.relative_to(model_dir).as_posix()
        if p.is_file() and rel.split("/")[0] not in skip and p.resolve() != signature.resolve():
            actual[rel] = sha256_file(p)[0]
    compare(verified.files.files, actual, str(model_dir), exact=True)
    return verified


def bundle_digest(bundle: dict[str, Any]) -> tuple[bytes, str]:
    """The bytes a registry publishes for a bundle, and their sha256."""
    import json

    data = (json.dumps(bundle, sort_keys=True, separators=(",", ":")) + "\n").encode()
    return data, hashlib.sha256(data).hexdigest()
