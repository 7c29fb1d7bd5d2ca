"""mx's canonical JSON against securesystemslib's: the bytes TUF clients verify."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, TargetFile, Targets
from tuf.api.serialization import SerializationError

from mx.index_builder.canonical import FastCanonicalSerializer, canonical_json

HOSTILE = [
    "plain", "", 'quote " inside', "back\\slash", "\\n literally", "\\\\u0001 literally",
    "new\nline", "tab\tcr\rbs\bff\f", "\x00\x01\x1f\x7f", "é ü 日本 \u2028 \U0001f600",
    "-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----\n", '\\"', '"\\',
]


@pytest.mark.parametrize("text", HOSTILE)
def test_strings_match_securesystemslib(text: str) -> None:
    obj: Any = {text: [text, {text: text}], "n": [0, -1, 2**40, True, False, None]}
    assert canonical_json(obj) == encode_canonical(obj).encode("utf-8")


def test_key_order_and_nesting_match() -> None:
    obj = {"b": {"z": 1, "a": [{"y": "\n", "x": []}, {}]}, "a": "", "B": None, "é": 1, "e": 2}
    assert canonical_json(obj) == encode_canonical(obj).encode("utf-8")


def test_targets_signed_fast_verify_with_the_default_serializer() -> None:
    signer = CryptoSigner.generate_ed25519()
    custom = {"mx": {"signers": [{"public_key": HOSTILE[10], "key_id": "k\t1"}]}}
    targets = {f"index/models/ns{i}/m.json": TargetFile(
        i, {"sha256": hashlib.sha256(bytes([i % 256])).hexdigest()},
        f"index/models/ns{i}/m.json", {"custom": custom} if i % 2 else None)
        for i in range(300)}
    md = Metadata(Targets(version=3, expires=datetime.now(UTC).replace(microsecond=0)
                          + timedelta(days=1), targets=targets))
    md.sign(signer, signed_serializer=FastCanonicalSerializer())
    # what a client does: the default (securesystemslib) canonical bytes
    signer.public_key.verify_signature(md.signatures[signer.public_key.keyid],
                                       md.signed_bytes)


def test_what_canonical_json_cannot_hold_is_refused() -> None:
    class Odd:
        pass

    with pytest.raises(TypeError):
        canonical_json({"x": Odd()})
    md = Metadata(Targets(version=1, expires=datetime.now(UTC).replace(microsecond=0)))
    md.signed.unrecognized_fields["bad"] = {"x": Odd()}
    with pytest.raises(SerializationError):
        FastCanonicalSerializer().serialize(md.signed)
