"""safetensors headers: length, JSON, dtypes, offsets, contiguity (the format's spec).

A file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON (`{name: {dtype,
shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, padded with spaces), then
the data: each tensor's bytes at `8 + N + begin`, the tensors laid end to end from 0 with no
gap or overlap, the last ending at the end of the file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mx.errors import ConfigError
from mx.weights import WeightsInfo

MAX_HEADER = 100_000_000  # the reference implementation's limit
MAX_TENSORS = 1_000_000
MAX_RANK = 64
HINT = "the file is truncated or not written by a safetensors writer; export it again"

# Bits per element, from the safetensors spec (Dtype in safetensors/src/tensor.rs).
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8, "F8_E8M0": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}


def _fail(path: Path, offset: int, msg: str) -> ConfigError:
    return ConfigError(f"offset {offset}: {msg}", hint=HINT, path=str(path))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def read_header(path: Path) -> tuple[dict[str, Any], int, int]:
    """(JSON header, header length N, file size), with the length bounded."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _fail(path, 0, f"the file is {size} bytes, shorter than the 8-byte header "
                                 "length")
        n = int.from_bytes(head, "little")
        if n > MAX_HEADER:
            raise _fail(path, 0, f"header length {n} is over the limit of {MAX_HEADER} bytes")
        if 8 + n > size:
            raise _fail(path, 0, f"header length {n} runs past the end of the file "
                                 f"({size} bytes)")
        raw = f.read(n)
    if len(raw) < n:
        raise _fail(path, 8 + len(raw), "the file ended inside the header")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(path, 8 + exc.start, "the header is not UTF-8") from None
    if not text.startswith("{"):
        raise _fail(path, 8, "the header is not a JSON object")
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        where = len(text[:exc.pos].encode("utf-8"))
        raise _fail(path, 8 + where, f"the header is not valid JSON ({exc.msg})") from None
    except ValueError as exc:
        raise _fail(path, 8, f"the header is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _fail(path, 8, "the header is not a JSON object")
    return doc, n, size


def read(path: Path) -> WeightsInfo:
    """Check a .safetensors file's header against the spec and its size."""
    doc, n, size = read_header(path)
    info = WeightsInfo("safetensors")
    meta = doc.pop("__metadata__", None)
    if meta is not None:
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise _fail(path, 8, "__metadata__ must map strings to strings")
        info.metadata = dict(meta)
    if len(doc) > MAX_TENSORS:
        raise _fail(path, 8, f"{len(doc)} tensors, over the limit of {MAX_TENSORS}")
    data_start = 8 + n
    spans: list[tuple[int, int, str]] = []
    for name, entry in doc.items():
        dtype, count, begin, end = _tensor(path, name, entry, data_start)
        info.add(name, dtype, count)
        info.names[name] = dtype
        spans.append((begin, end, name))
    _contiguous(path, spans, data_start, size - data_start)
    return info


def _tensor(path: Path, name: str, entry: Any, data_start: int) -> tuple[str, int, int, int]:
    """(dtype, element count, begin, end) of one header entry, checked."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise _fail(path, 8, f"tensor {name!r}: an entry has exactly dtype, shape and "
                             "data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise _fail(path, 8, f"tensor {name!r}: unknown dtype {dtype!r} (the spec has "
                             f"{', '.join(DTYPE_BITS)})")
    if (not isinstance(shape, list) or len(shape) > MAX_RANK
            or not all(type(d) is int and d >= 0 for d in shape)):
        raise _fail(path, 8, f"tensor {name!r}: shape must be a list of at most {MAX_RANK} "
                             "sizes >= 0")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(type(o) is int and o >= 0 for o in offsets) or offsets[0] > offsets[1]):
        raise _fail(path, 8, f"tensor {name!r}: data_offsets must be [begin, end] with "
                             "0 <= begin <= end")
    begin, end = offsets
    count = math.prod(shape)
    bits = count * DTYPE_BITS[dtype]
    if bits % 8:
        raise _fail(path, data_start + begin, f"tensor {name!r}: {count} elements of {dtype} "
                                              "are not a whole number of bytes")
    if end - begin != bits // 8:
        raise _fail(path, data_start + begin,
                    f"tensor {name!r}: data_offsets [{begin}, {end}] hold {end - begin} bytes "
                    f"but shape {shape} of {dtype} needs {bits // 8}")
    return dtype, count, begin, end


def _contiguous(path: Path, spans: list[tuple[int, int, str]], data_start: int,
                data_len: int) -> None:
    """Tensors laid end to end from 0, no gap or overlap, ending at the end of the file."""
    at, last = 0, None
    for begin, end, name in sorted(spans):
        if begin < at:
            raise _fail(path, data_start + begin, f"tensor {name!r} overlaps tensor {last!r} "
                                                  f"(begins at {begin}, before {at})")
        if begin > at:
            after = f"after tensor {last!r}" if last else "at the start of the data"
            raise _fail(path, data_start + at, f"{begin - at} bytes {after} belong to no "
                                               "tensor")
        at, last = end, name
    if at != data_len:
        raise _fail(path, data_start + min(at, data_len),
                    f"the tensors end at data offset {at} but the data section is "
                    f"{data_len} bytes (file size - 8 - header length)")
