"""OLPC canonical JSON, the bytes TUF signs, written by the C JSON encoder.

securesystemslib's encoder is pure Python: for targets metadata naming 20,000 files it
takes most of a second on every rebuild. Canonical JSON is json.dumps with sorted keys and
no spaces, except for strings: canonical JSON escapes only `"` and `\\` and writes every
other character as it is, where json.dumps escapes control characters (`\\n`, `\\u001b`).
So the JSON encoder's output, with those escapes turned back into the characters, is the
canonical form; the tests check it against securesystemslib's on hostile strings.

Canonical JSON has no floats, and the metadata mx writes holds none (lengths and versions
are ints, its custom fields strings). Were one to slip in, json.dumps would write it where
securesystemslib refuses, and clients, which verify with securesystemslib's bytes, would
refuse the signature: a mistake here cannot publish metadata that verifies.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tuf.api.metadata import Signed
from tuf.api.serialization import SerializationError, SignedSerializer

# Every backslash json.dumps writes starts one of these escapes, so a left-to-right scan
# sees each escape whole.
_ESCAPE = re.compile(r'\\(["\\bfnrt]|u[0-9a-f]{4})')
_SHORT = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _unescape(m: re.Match[str]) -> str:
    code = m.group(1)
    if code in ('"', "\\"):
        return m.group(0)  # canonical JSON escapes these two as well
    if code in _SHORT:
        return _SHORT[code]
    return chr(int(code[1:], 16))


def canonical_json(obj: Any) -> bytes:
    """`obj` (dicts with string keys, lists, strings, ints, booleans, None) as canonical
    JSON bytes."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_no_default)
    if "\\" in text:
        text = _ESCAPE.sub(_unescape, text)
    return text.encode("utf-8")


def _no_default(value: Any) -> Any:
    raise TypeError(f"canonical JSON cannot hold {type(value).__name__}")


class FastCanonicalSerializer(SignedSerializer):
    """tuf's CanonicalJSONSerializer, the same bytes, computed faster."""

    def serialize(self, signed_obj: Signed) -> bytes:
        try:
            return canonical_json(signed_obj.to_dict())
        except (TypeError, ValueError) as exc:
            raise SerializationError from exc
