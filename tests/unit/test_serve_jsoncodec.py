"""mx serve's JSON codec: the fast path (orjson) reads every body as the exact path (the
stdlib with mx's limits) does, down to the arrays and the error messages."""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import numpy as np
import pytest

from mx.errors import BadInput
from mx.serve import jsoncodec
from mx.serve.intake import decode_body, encode_body
from mx.serve.jsoncodec import MAX_DEPTH, dumps, parse_exact, parse_json
from mx.serve.tensors import Wanted, decode_request, from_values
from mx.tensorspec import Value

# orjson is a test dependency (the serve extra): the fast path must be the one under test.
assert jsoncodec.orjson is not None, "orjson missing: install mx[test]"


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except BadInput as exc:
        return "bad", exc.message


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types, all the way down (1 is not 1.0, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return math.copysign(1, a) == math.copysign(1, b) and (a == b or (a != a and b != b))
    return bool(a == b)


def _v2(data: Any, shape: list[int], datatype: str = "FP32", **extra: Any) -> bytes:
    doc = {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}],
           **extra}
    return json.dumps(doc).encode()


def _typical() -> list[bytes]:
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 8, 8), dtype=np.float32)
    return [
        _v2(x.ravel().tolist(), [2, 3, 8, 8]),  # float32 at float64's 17 digits
        _v2(x.tolist(), [2, 3, 8, 8]),  # nested as the shape
        _v2((x * 1e-3).ravel().tolist(), [384]),  # fractions with runs of 19+ digits
        _v2((rng.standard_normal(64) * 1e30).tolist(), [64], "FP64"),  # exponents
        _v2([-0.0, 0.0, -0, 5e-324, 1.7976931348623157e308], [5], "FP64"),
        _v2([*range(-5, 5), 10**17, -(10**17) + 1], [12], "INT64"),  # 18 digits
        _v2([True, False, 1, 0], [4], "BOOL"),
        _v2(["h\u00e9", "\\\"[{", "9" * 40, "\ud83d\ude00", ""], [5], "BYTES",
            id="r-1", parameters={"binary_data_output": False, "timeout": 5_000}),
        json.dumps({"id": "é" * 3, "inputs": []}, ensure_ascii=False).encode(),
        b' {"inputs" : [ ] , "outputs": [{"name": "y"}]}\n',
    ]


@pytest.mark.parametrize("raw", _typical())
def test_fast_path_reads_typical_bodies_as_json_does(raw: bytes, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    exact = parse_exact(raw)
    monkeypatch.setattr(jsoncodec, "parse_exact", _no_fallback)
    assert _same(parse_json(raw), exact)  # ... without the exact path's help


def _no_fallback(raw: bytes) -> Any:
    raise AssertionError("took the exact path")


@pytest.mark.parametrize(("raw", "fast"), [
    (b"123456789012345678", True), (b"1234567890123456789", False),
    (b"[1234567890123456789]", False), (b"[-1234567890123456789]", False),
    (b'{"a": 1234567890123456789}', False), (b"[ 1234567890123456789.5]", False),
    (b"[0.1234567890123456789012]", True), (b"[1e" + b"0" * 30 + b"5]", True),
    (b"[0." + b"1" * 309 + b"]", True), (b"[0." + b"1" * 310 + b"]", False),
    (b'["x' + b"1" * 30 + b'"]', True), (b'["' + b"1" * 30 + b'"]', True),
    (b'["x ' + b"1" * 30 + b'"]', False),  # looks like an integer: the exact path reads it
    (b"[" * 64 + b"]" * 64, True), (b"[" * 65 + b"]" * 65, False),
    (b'["' + b"[" * 100 + b'"]', False), (b"", True), (b"[]", True),
])
@pytest.mark.parametrize("pad", [0, jsoncodec.SMALL_BODY])  # scanned in bytes, in numpy
def test_which_bodies_take_the_fast_path(raw: bytes, fast: bool, pad: int) -> None:
    raw += b" " * pad
    assert jsoncodec._fast_ok(raw) is fast
    assert _outcome(parse_json, raw) == _outcome(parse_exact, raw)


HOSTILE = [
    b'{"a": [1, NaN]}', b"[-Infinity]", b"[Infinity]", b"[1e400]", b"[-1e400]",
    b"[18446744073709551616]", b"[-9223372036854775809]", b"[9223372036854775808]",
    b"[" + b"1" * 19 + b"]", b"1" * 25, b"[1.5e" + b"1" * 30 + b"]",
    b"[0." + b"0" * 400 + b"1]", b"[" + b"1" * 5000 + b"]", b'["' + b"1" * 400 + b'"]',
    b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
    json.dumps({"id": "[" * 500 + "NaN", "inputs": []}).encode(),
    b"\xef\xbb\xbf[1]", '["x"]'.encode("utf-16"), b'["\\ud800"]', b'["\xed\xa0\x80"]',
    b'["\xff"]', b'{"a": "x', b"[1,]", b"[01]", b"[1.]", b"[.5]", b"[+1]", b"[0x10]",
    b"[1]x", b"", b"   ", b'{"a":1,"a":2}', b"[nan]", b"[true, null, false]",
    b'["tab\there"]', b"[1e-400, -0, -0.0, 1E5]",
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_bodies_mean_and_fail_as_before(raw: bytes) -> None:
    fast, exact = _outcome(parse_json, raw), _outcome(parse_exact, raw)
    assert fast[0] == exact[0] and _same(fast[1], exact[1]), (fast, exact)


DATATYPES = {"FP32": "float32", "FP64": "float64", "FP16": "float16", "INT8": "int8",
             "INT16": "int16", "INT32": "int32", "INT64": "int64", "UINT8": "uint8",
             "UINT64": "uint64", "BOOL": "bool", "BYTES": "string"}
DATA = [
    "[1, 2, 3, 4]", "[[1, 2], [3, 4]]", "[[1, 2, 3, 4]]", "[1, 2, 3]", "[1, 2, 3, 4, 5]",
    "[1.5, -2.25, 0.1, 3e2]", "[true, false, true, 1]", '["1.5", "2", "3", "4"]',
    '["a", "b", "c", "d"]', "[null, 1, 2, 3]", "[1e39, 1, 2, 3]", "[1e400, 1, 2, 3]",
    "[300, -129, 1, 2]", "[65536, 1, 2, 3]", "[-1, 1, 2, 3]",
    "[18446744073709551616, 1, 2, 3]", "[18446744073709551615, 1, 2, 3]",
    "[-9223372036854775809, 1, 2, 3]", "[9223372036854775807, 1, 2, 3]",
    "[1" + "0" * 300 + ", 1, 2, 3]", "[NaN, 1, 2, 3]", "[[1, 2], [3]]", "[[[1, 2, 3, 4]]]",
    "[1, [2], 3, 4]", '[{"a": 1}, 2, 3, 4]', "[]", "5",
]


@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_decoded_tensors_are_the_old_decoders(datatype: str) -> None:
    """parse_json + decode_request against parse_exact + decode_request (the decoder as it
    was): the same arrays, bit for bit, or the same message."""
    specs = [Value("x", DATATYPES[datatype], ("batch", 4))]
    for data in DATA:
        raw = (f'{{"inputs": [{{"name": "x", "shape": [1, 4], "datatype": "{datatype}", '
               f'"data": {data}}}]}}').encode()

        def decode(parse: Any, raw: bytes = raw) -> dict[str, np.ndarray]:
            return decode_request(parse(raw), specs)[0]

        with np.errstate(invalid="ignore"):  # float -> int casts of the old decoder
            fast, exact = _outcome(decode, parse_json), _outcome(decode, parse_exact)
        assert fast[0] == exact[0], (datatype, data, fast, exact)
        if fast[0] == "bad":
            assert fast[1] == exact[1], (datatype, data)
        else:
            a, b = fast[1]["x"], exact[1]["x"]
            assert a.dtype == b.dtype and a.shape == b.shape, (datatype, data)
            assert a.tobytes() == b.tobytes() if a.dtype != object else a.tolist() == b.tolist()


def test_integers_past_64_bits_stay_out_of_range() -> None:
    specs = [Value("x", "int64", ("batch",))]
    for big in ("18446744073709551616", "-9223372036854775809", "9" * 30):
        raw = _v2([], [1]).replace(b"[]", f"[{big}]".encode()).replace(b"FP32", b"INT64")
        with pytest.raises(BadInput, match="data has a number out of INT64's range"):
            decode_body(raw, None, specs)


def test_random_float_texts_read_to_the_same_bit() -> None:
    rng = random.Random(1)
    values = [rng.uniform(-1, 1) * 10.0 ** rng.randint(-320, 308) for _ in range(3000)]
    texts = ([repr(v) for v in values] + [f"{v:.20e}" for v in values]
             + [f"{rng.getrandbits(50)}e{rng.randint(-340, 300)}" for _ in range(3000)]
             + [f"1.5e+{'0' * 30}{rng.randint(0, 300)}" for _ in range(100)]  # long exponents
             + [f"-2E{'0' * 40}{rng.randint(0, 300)}" for _ in range(100)]
             + [f"0.{'0' * rng.randint(0, 280)}{rng.getrandbits(60)}" for _ in range(300)])
    raw = ("[" + ",".join(texts) + "]").encode()
    assert jsoncodec._fast_ok(raw)  # fractions and exponents of any length stay fast
    assert _same(parse_json(raw), parse_exact(raw))
    negative = raw.replace(b"e+", b"e-")  # e-0000...: '-' may also start an integer
    assert not jsoncodec._fast_ok(negative) and _same(parse_json(negative),
                                                      parse_exact(negative))


def test_json_lists_become_the_arrays_numpy_made() -> None:
    """FP32 and FP16 lists go through float64 (twice as fast): the arrays are those
    np.asarray(data, dtype) made, bit for bit (NaN payloads too), or fail alike."""
    rng = random.Random(3)
    values: list[Any] = [True, False, None, 1e39, -1e39, 65504.0, 65520.0, 65519.99,
                         3.4028235e38, 3.4028236e38, 2**60 + 2**36 + 1, 10**400,
                         "1.00000005960464477539062500000001", "0.1", "x", [1.0]]
    for _ in range(3000):
        values.append(rng.choice([
            struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0],  # NaNs, denormals
            rng.getrandbits(rng.randint(1, 80)) * rng.choice([1, -1]),
            repr(rng.uniform(-70000, 70000)), f"{rng.uniform(0, 2):.30f}",
            float(np.float32(rng.uniform(-1, 1))) + rng.choice([2**-30, -(2**-30)])]))
    for datatype, dtype in (("FP32", np.float32), ("FP16", np.float16)):
        for v in values:
            try:
                with np.errstate(over="ignore"):
                    old: Any = np.asarray([v], dtype=dtype)
            except (OverflowError, ValueError, TypeError) as exc:
                old = type(exc).__name__
            try:
                new: Any = from_values("x", datatype, [1], [v])
            except BadInput as exc:
                new = "OverflowError" if "range" in exc.message else exc.message
            if isinstance(old, str):
                assert isinstance(new, str) and (old == "OverflowError") == (
                    new == "OverflowError"), (datatype, v, old, new)
            else:
                assert old.tobytes() == new.tobytes(), (datatype, v)


def test_answers_read_back_as_written() -> None:
    specs = [Value("y", "float32", ("batch", 3)), Value("s", "string", ("batch",))]
    arrays = {"y": np.array([[0.1, -2.5, 3e-8]], np.float32),
              "s": np.array(["h\u00e9", "x"], object)}
    for head in ({"model_name": "acme/iris", "model_version": "1.0.0", "id": "r\u00e9"},
                 {"model_name": "m", "model_version": "1", "id": 10**30},  # json writes it
                 {"model_name": "m", "model_version": "1", "id": "\ud800"}):
        text, blobs = encode_body(head, specs, arrays, Wanted(None, set()))
        doc = json.loads(text)
        assert not blobs and {k: doc[k] for k in head} == head
        assert doc["outputs"][0]["data"] == arrays["y"].ravel().tolist()
        assert doc["outputs"][1]["data"] == ["h\u00e9", "x"]
    assert dumps({"a": [1.5, -0.0, 10**25]}) == b'{"a":[1.5,-0.0,10000000000000000000000000]}'


def test_an_id_the_answer_cannot_repeat_is_bad_input() -> None:
    specs = [Value("x", "float32", ("batch",))]
    raw = b'{"id": [1e400], "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", ' \
          b'"data": [1]}]}'
    with pytest.raises(BadInput, match="id: has a number out of float64's range"):
        decode_body(raw, None, specs)


def test_without_orjson_every_body_takes_the_exact_path(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(jsoncodec, "orjson", None)
    for raw in [*_typical(), *HOSTILE[:8]]:
        assert _outcome(parse_json, raw) == _outcome(parse_exact, raw)
    assert json.loads(dumps({"id": "r\u00e9", "a": [1.5, 10**25]})) == {"id": "r\u00e9",
                                                                       "a": [1.5, 10**25]}


@pytest.mark.parametrize(("data", "ok"), [
    ("[true, false, true, false]", True), ("[1, 0, 1, 0]", True), ("[[true, 0, 1, false]]", True),
    ('[true, "false", true, true]', False),  # numpy read "false" (any string) as True
    ("[true, 2, true, true]", False), ("[true, 1.5, true, true]", False),
    ("[true, null, true, true]", False),  # numpy read null as False
    ("[true, 1e400, true, true]", False), ('[true, "", true, true]', False),
])
def test_bool_data_is_true_or_false(data: str, ok: bool) -> None:
    specs = [Value("x", "bool", ("batch", 4))]
    raw = f'{{"inputs": [{{"name": "x", "shape": [1, 4], "datatype": "BOOL", "data": {data}}}]}}'
    if ok:
        assert decode_request(parse_json(raw.encode()), specs)[0]["x"].dtype == np.bool_
    else:
        with pytest.raises(BadInput, match="BOOL data must be true or false"):
            decode_request(parse_json(raw.encode()), specs)
