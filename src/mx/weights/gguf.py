"""GGUF headers (llama.cpp's format, versions 2 and 3), walked with bounded reads.

Layout, little-endian: `GGUF`, version u32, tensor count u64, KV count u64; the KV pairs
(key: u64 length + UTF-8, value type u32, value); the tensor infos (name, n_dims u32, dims
u64 each, ggml type u32, offset u64); padding to `general.alignment` (default 32); the
data, each tensor at its offset from the start of the data, aligned, inside the file.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import BinaryIO

from mx.errors import ConfigError
from mx.weights import WeightsInfo

MAX_TENSORS = 1_000_000
MAX_KV = 100_000
MAX_STRING = 16 << 20
MAX_ARRAY = 1 << 26
MAX_DIMS = 4  # GGML_MAX_DIMS
HINT = "the file is truncated or not GGUF; convert it again (llama.cpp's convert_hf_to_gguf)"

# GGUF metadata value types: (name, size in bytes, struct code) for fixed-size ones.
_SCALARS = {0: ("u8", 1, "<B"), 1: ("i8", 1, "<b"), 2: ("u16", 2, "<H"), 3: ("i16", 2, "<h"),
            4: ("u32", 4, "<I"), 5: ("i32", 4, "<i"), 6: ("f32", 4, "<f"), 7: ("bool", 1, "<?"),
            10: ("u64", 8, "<Q"), 11: ("i64", 8, "<q"), 12: ("f64", 8, "<d")}
STRING, ARRAY = 8, 9

# ggml tensor types: id -> (name, elements per block, bytes per block) (ggml.h, ggml.c).
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}


class _Reader:
    """Reads that never go past the end of the file and say where they failed."""

    def __init__(self, f: BinaryIO, path: Path, size: int) -> None:
        self.f, self.path, self.size, self.pos = f, path, size, 0

    def fail(self, msg: str, at: int | None = None) -> ConfigError:
        return ConfigError(f"offset {self.pos if at is None else at}: {msg}", hint=HINT,
                           path=str(self.path))

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.size:
            raise self.fail(f"{what}: {n} bytes run past the end of the file "
                            f"({self.size} bytes)")
        data = self.f.read(n)
        if len(data) != n:
            raise self.fail(f"{what}: the file ended early")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        if self.pos + n > self.size:
            raise self.fail(f"{what}: {n} bytes run past the end of the file "
                            f"({self.size} bytes)")
        self.f.seek(n, 1)
        self.pos += n

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.take(4, what))[0])

    def u64(self, what: str) -> int:
        return int(struct.unpack("<Q", self.take(8, what))[0])

    def string(self, what: str, limit: int = MAX_STRING) -> str:
        at = self.pos
        n = self.u64(f"{what} length")
        if n > limit:
            raise self.fail(f"{what}: length {n} is over the limit of {limit}", at)
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what}: not UTF-8", at + 8 + exc.start) from None


def read(path: Path) -> WeightsInfo:
    """Walk a GGUF file's header: metadata, tensor infos, offsets inside the file."""
    size = path.stat().st_size
    with path.open("rb") as f:
        r = _Reader(f, path, size)
        if r.take(4, "magic") != b"GGUF":
            raise r.fail("not a GGUF file (the magic is not 'GGUF')", 0)
        version = r.u32("version")
        if version not in (2, 3):
            raise r.fail(f"GGUF version {version} (mx reads versions 2 and 3, little-endian)",
                         4)
        n_tensors = r.u64("tensor count")
        if n_tensors > MAX_TENSORS:
            raise r.fail(f"tensor count {n_tensors} is over the limit of {MAX_TENSORS}", 8)
        n_kv = r.u64("metadata count")
        if n_kv > MAX_KV:
            raise r.fail(f"metadata count {n_kv} is over the limit of {MAX_KV}", 16)
        info = WeightsInfo("gguf", metadata={"gguf.version": str(version)})
        alignment = 32
        for i in range(n_kv):
            key = r.string(f"metadata {i} key", 65535)
            at = r.pos
            vtype = r.u32(f"{key}: value type")
            value = _value(r, key, vtype, 0)
            if key == "general.alignment":
                if vtype != 4 or not isinstance(value, int) or value <= 0 or value & (value - 1):
                    raise r.fail(f"general.alignment {value!r} is not a power of two (u32)", at)
                alignment = value
            if isinstance(value, str | int | float) and len(str(value)) <= 256:
                info.metadata[key] = str(value)
        spans = [_tensor_info(r, i, info) for i in range(n_tensors)]
        data_start = -(-r.pos // alignment) * alignment
    _check_offsets(r, spans, data_start, alignment)
    return info


def _value(r: _Reader, key: str, vtype: int, depth: int) -> object:
    """One metadata value; an array's items are skipped (fixed size) or walked (strings)."""
    if vtype in _SCALARS:
        _, n, code = _SCALARS[vtype]
        return struct.unpack(code, r.take(n, key))[0]
    if vtype == STRING:
        return r.string(key)
    if vtype != ARRAY:
        raise r.fail(f"{key}: unknown value type {vtype}", r.pos - 4)
    if depth >= 2:
        raise r.fail(f"{key}: arrays nested deeper than 2", r.pos - 4)
    at = r.pos
    item = r.u32(f"{key}: array item type")
    count = r.u64(f"{key}: array length")
    if count > MAX_ARRAY:
        raise r.fail(f"{key}: array length {count} is over the limit of {MAX_ARRAY}", at + 4)
    if item in _SCALARS:
        r.skip(count * _SCALARS[item][1], f"{key}: array of {count}")
    elif item in (STRING, ARRAY):
        for _ in range(count):
            _value(r, key, item, depth + 1)
    else:
        raise r.fail(f"{key}: unknown array item type {item}", at)
    return None


def _tensor_info(r: _Reader, i: int, info: WeightsInfo) -> tuple[int, int, str, int]:
    """(offset, bytes, name, where in the file) of tensor info `i`."""
    at = r.pos
    name = r.string(f"tensor {i} name", 65535)
    n_dims = r.u32(f"tensor {name!r} n_dims")
    if not 1 <= n_dims <= MAX_DIMS:
        raise r.fail(f"tensor {name!r}: n_dims {n_dims} (1 to {MAX_DIMS})", r.pos - 4)
    dims = [r.u64(f"tensor {name!r} dims") for _ in range(n_dims)]
    gtype = r.u32(f"tensor {name!r} type")
    if gtype not in GGML_TYPES:
        raise r.fail(f"tensor {name!r}: unknown ggml type {gtype}", r.pos - 4)
    offset = r.u64(f"tensor {name!r} offset")
    tname, block, block_bytes = GGML_TYPES[gtype]
    count = math.prod(dims)
    if count > r.size * 8 or dims[0] % block:
        raise r.fail(f"tensor {name!r}: dims {dims} do not fit type {tname} "
                     f"({block} elements a block) in a file of {r.size} bytes", at)
    info.add(name, tname, count)
    return offset, count // block * block_bytes, name, at


def _check_offsets(r: _Reader, spans: list[tuple[int, int, str, int]], data_start: int,
                   alignment: int) -> None:
    data_len = r.size - data_start
    end, last = 0, None
    for offset, nbytes, name, at in sorted(spans):
        if offset % alignment:
            raise r.fail(f"tensor {name!r}: offset {offset} is not a multiple of the "
                         f"alignment {alignment}", at)
        if offset + nbytes > data_len:
            raise r.fail(f"tensor {name!r}: {nbytes} bytes at data offset {offset} run past "
                         f"the end of the file (data section: {max(data_len, 0)} bytes)", at)
        if offset < end:
            raise r.fail(f"tensor {name!r} overlaps tensor {last!r}", at)
        end, last = offset + nbytes, name
