"""JSON text of request and answer bodies: strict to read, quick both ways.

Read (`parse_json`): at most MAX_DEPTH levels of nesting, no NaN/Infinity, no number of
over MAX_DIGITS digits (the stdlib's int() is quadratic in digits, and no tensor
datatype holds such a number). The exact path is the stdlib's json with those checks; a
V2 body of 3,072 floats takes it about 2.5 ms, most of the event loop's time a request.
orjson (the `serve` extra) reads the same text in a tenth of that, and gives the same
objects where it reads a body at all, so it goes first when two cheap scans show a body
within its agreement with json:

- no integer of FAST_DIGITS digits or more: orjson turns integers past 64 bits into
  floats, where json gives exact ints (INT64 data must stay out of range, not wrap);
  these bodies, and the ones with a number over MAX_DIGITS, take the exact path. (A
  float's fraction and exponent may run as long as they like: orjson reads floats to
  the same bit as json. Float32 values written at float64's 17 digits, as json.dumps of
  a float32 array's tolist() does, have runs of 19 after "0.00".)
- brackets, even those inside strings, at most MAX_DEPTH deep (else the exact count).
Anything orjson refuses (NaN, a BOM, a lone surrogate escape, malformed text) goes to the
exact path too, which either reads it as json does or says what is wrong with json's
words: the fast path changes what a body costs, never what it means.

Write (`dumps`): orjson when it can (numbers and strings as json writes them, not ASCII-
escaped), json otherwise (an int past 64 bits, a lone surrogate from an `id`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from mx.errors import BadInput

try:
    import orjson
except ImportError:  # an optional speed-up: without it every body takes the exact path
    orjson = None  # type: ignore[assignment]

MAX_DEPTH = 64  # a rank-8 tensor in a V2 request is nested 11 deep
MAX_DIGITS = 309  # past float64's range (1.8e308), so no tensor datatype holds the number
# orjson reads integers of up to 18 digits exactly (19 may pass 2**63); floats of any
# length agree with json's to the bit (checked on 1.5 M random texts)
FAST_DIGITS = 19

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_DIGITS_AS_9 = bytes(0x39 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_NUMBER = b"9" * (MAX_DIGITS + 1)  # searched in digits-as-9 text: 8x faster than \d{310}
# what may come just before a JSON number's integer part; digits after anything else are
# a fraction, an exponent or in a string
_BEFORE_INTEGER = np.zeros(256, bool)
_BEFORE_INTEGER[list(b" \t\n\r[,:-")] = True
# the same rule for small bodies, in bytes (numpy's calls cost more than their work there):
# digits as 9, what comes before an integer as ' ', the rest as '.'
_NUMBERS = bytes(0x39 if 0x30 <= b <= 0x39 else 0x20 if _BEFORE_INTEGER[b] else 0x2E
                 for b in range(256))
_LONG_INTEGER = b" " + b"9" * FAST_DIGITS
SMALL_BODY = 4096  # bytes: below this the bytes scans are quicker than numpy's
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = np.frombuffer(b"[{", np.uint8)


def parse_json(raw: bytes) -> Any:
    """JSON with at most MAX_DEPTH levels, no NaN/Infinity, no number past float64."""
    if orjson is not None and _fast_ok(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the exact path reads it as json does, or says what is wrong
    return parse_exact(raw)


def _fast_ok(raw: bytes) -> bool:
    """Whether orjson reads `raw` as json would (see the module's docstring). Vectorised
    over the bytes: a tenth of orjson's own time on a body of floats (bytes.translate and
    searches in its output took as long as orjson)."""
    if len(raw) < SMALL_BODY:
        if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH \
                and _depth(raw.translate(None, _NOT_BRACKET)) > MAX_DEPTH:
            return False
        numbers = raw.translate(_NUMBERS)
        return not (_LONG_INTEGER in numbers or numbers.startswith(_LONG_INTEGER[1:])
                    or _LONG_NUMBER in numbers)
    a = np.frombuffer(raw, np.uint8)
    # '[' 0x5B and '{' 0x7B are the bytes that OR 0x20 makes 0x7B: at most MAX_DEPTH of
    # them (strings' too) cannot nest deeper; more are counted exactly
    if np.count_nonzero((a | 0x20) == 0x7B) > MAX_DEPTH \
            and _depth(raw.translate(None, _NOT_BRACKET)) > MAX_DEPTH:
        return False
    digit = (a - 0x30) < 10  # uint8: bytes below '0' wrap past 9
    long = _runs(digit, FAST_DIGITS)  # long[i]: digit[i : i + FAST_DIGITS] all digits
    if not long.any():
        return True
    starts = np.flatnonzero(long)  # a few dozen in a body of 17-digit floats
    first = starts[(starts == 0) | ~digit[starts - 1]]  # where each long run begins
    if first[0] == 0 or _BEFORE_INTEGER[a[first - 1]].any():
        return False  # a long integer (or digits in a string, which the exact path reads)
    # a run of over MAX_DIGITS digits: that many consecutive starts
    span = MAX_DIGITS + 1 - FAST_DIGITS + 1
    return starts.size < span or not _runs(long, span).any()


def _runs(mask: np.ndarray, k: int) -> np.ndarray:
    """r[i] = mask[i : i + k].all(), by doubling the run length known to hold."""
    have = 1
    while have < k:
        step = min(have, k - have)
        mask = mask[:-step] & mask[step:]
        have += step
    return mask


def parse_exact(raw: bytes) -> Any:
    """`parse_json` through the stdlib alone (the reference the fast path agrees with)."""
    bare = _STRING.sub(b'""', raw)  # brackets and digits inside strings do not count
    depth = _depth(bare)
    if depth > MAX_DEPTH:
        raise BadInput(f"JSON nested {depth} levels deep; at most {MAX_DEPTH} are accepted")
    if _LONG_NUMBER in bare.translate(_DIGITS_AS_9):
        raise BadInput(f"JSON has a number of over {MAX_DIGITS} digits, beyond every tensor "
                       "datatype")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"malformed JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    raise BadInput(f"JSON has {name}, which is not a JSON number; send finite numbers, or "
                   "NaN as binary tensor data")


def _depth(bare: bytes) -> int:
    brackets = np.frombuffer(bare.translate(None, _NOT_BRACKET), np.uint8)
    if not brackets.size:
        return 0
    steps = np.where(np.isin(brackets, _OPENERS), np.int32(1), np.int32(-1))
    return int(np.cumsum(steps).max())


def dumps(doc: Any) -> bytes:
    """Compact JSON of an answer; finite floats only (the encoders check before)."""
    if orjson is not None:
        try:
            return orjson.dumps(doc)
        except (TypeError, orjson.JSONEncodeError):
            pass  # an int past 64 bits or a lone surrogate: json writes those
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
