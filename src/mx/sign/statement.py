"""What a model-signing bundle claims: the DSSE envelope and its in-toto statement."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mx.errors import IntegrityError

IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"
PREDICATE_V1 = "https://model_signing/signature/v1.0"
MAX_BUNDLE_BYTES = 8 << 20

# Never part of a signed model directory (model-signing's own defaults, plus .lfsconfig
# which says where LFS objects live, not what they are).
IGNORED = frozenset({".git", ".gitattributes", ".gitignore", ".github", ".lfsconfig"})


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]


@dataclass(frozen=True)
class SignedFiles:
    """The files a statement vouches for: relative path -> sha256 (hex)."""

    subject: str
    files: dict[str, str]


def load_bundle(data: bytes, origin: str) -> dict[str, Any]:
    if len(data) > MAX_BUNDLE_BYTES:
        raise IntegrityError(f"{origin}: signature bundle is over {MAX_BUNDLE_BYTES} bytes")
    try:
        bundle = json.loads(data)
    except (ValueError, RecursionError):
        raise IntegrityError(f"{origin}: signature bundle is not JSON") from None
    if not isinstance(bundle, dict) or "dsseEnvelope" not in bundle:
        raise IntegrityError(f"{origin}: not a Sigstore bundle with a DSSE envelope")
    return bundle


def envelope(bundle: dict[str, Any], origin: str) -> Envelope:
    try:
        env = bundle["dsseEnvelope"]
        return Envelope(env["payloadType"], base64.b64decode(env["payload"], validate=True),
                        tuple(base64.b64decode(s["sig"]) for s in env["signatures"]))
    except (KeyError, TypeError, binascii.Error):
        raise IntegrityError(f"{origin}: malformed DSSE envelope in the signature bundle"
                             ) from None


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what the signature is over."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def parse_statement(payload_type: str, payload: bytes, origin: str) -> SignedFiles:
    """The file digests of a verified payload, after checking the statement is consistent."""
    if payload_type != IN_TOTO_PAYLOAD:
        raise IntegrityError(f"{origin}: payload type {payload_type!r} is not in-toto")
    try:
        st = json.loads(payload)
        if st.get("predicateType") != PREDICATE_V1:
            raise IntegrityError(f"{origin}: predicate {st.get('predicateType')!r} is not "
                                 f"{PREDICATE_V1}")
        [subject] = st["subject"]
        resources = st["predicate"]["resources"]
        files: dict[str, str] = {}
        root = hashlib.sha256()
        for r in resources:
            if r["algorithm"] != "sha256":
                raise IntegrityError(f"{origin}: {r['name']} is signed with {r['algorithm']}, "
                                     "not sha256")
            files[r["name"]] = r["digest"]
            root.update(bytes.fromhex(r["digest"]))
    except IntegrityError:
        raise
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{origin}: malformed in-toto statement in the signature") from None
    if root.hexdigest() != subject["digest"]["sha256"]:
        raise IntegrityError(f"{origin}: the statement's subject digest does not match its "
                             "resources")
    return SignedFiles(str(subject.get("name", "")), files)


def compare(signed: dict[str, str], actual: dict[str, str], what: str,
            exact: bool) -> None:
    """Every file in `actual` must be signed with the same digest; with `exact`, the
    signature may name no file that `actual` lacks (and vice versa)."""
    for path, digest in sorted(actual.items()):
        if path not in signed:
            raise IntegrityError(f"{what}: {path} is not covered by the signature "
                                 "(added after signing?)",
                                 hint="sign the release again, or remove the file")
        if signed[path] != digest:
            raise IntegrityError(f"{what}: {path} has sha256 {digest} but the signature says "
                                 f"{signed[path]}",
                                 hint="the file differs from what was signed: tampered, or "
                                      "a signature of another model or version")
    if exact:
        missing = sorted(set(signed) - set(actual))
        if missing:
            raise IntegrityError(f"{what}: the signature names {missing[0]}, which the release "
                                 "does not have",
                                 hint="a signature of another model or version?")
