"""Tensors in and out of V2 requests: JSON `data`, or Triton's binary tensor extension.

With the extension, the body is a JSON header of `Inference-Header-Content-Length` bytes
followed by raw tensors, each input saying its `binary_data_size`; outputs come back the
same way when the request asks (`binary_data_output`, or an output's `binary_data`).
Raw tensors are little-endian, row-major; BYTES elements are a 4-byte length and bytes.
The gRPC endpoint (`grpc_service`) uses the same checks and codecs: `check_input`,
`from_values`, `from_bytes`, `select_outputs`, `to_bytes`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mx.errors import BadInput
from mx.infer.model import LoadedModel
from mx.infer.signature import NUMPY_OF, check_feeds, describe, v2_datatype
from mx.tensorspec import Value


@dataclass
class Wanted:
    names: list[str] | None  # None: every output
    binary: set[str]  # outputs to send as raw bytes
    all_binary: bool = False  # every output as raw bytes (`binary_data_output`, no list)


def decode_request(body: Any, specs: Sequence[Value], binary: bytes = b""
                   ) -> tuple[dict[str, np.ndarray], Wanted]:
    """A V2 infer request (JSON header and any binary part) -> (feeds, wanted outputs)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise BadInput("request body: an object with an 'inputs' list is required")
    by_name = {s.name: s for s in specs}
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    for i, item in enumerate(body["inputs"]):
        if not isinstance(item, dict):
            raise BadInput(f"inputs[{i}]: an object with name, shape, datatype, data")
        spec = check_input(by_name, item.get("name"), item.get("datatype"), item.get("shape"))
        name, datatype, shape = spec.name, v2_datatype(spec), list(item["shape"])
        size = (item.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise BadInput(f"input {name!r}: binary_data_size {size!r} runs past the "
                               f"{len(binary)} bytes of binary data")
            arr = from_bytes(name, datatype, shape, binary[offset:offset + size])
            offset += size
        elif "data" in item:
            arr = _from_json(name, datatype, shape, item["data"])
        else:
            raise BadInput(f"input {name!r}: no 'data' and no binary_data_size")
        feeds[name] = arr
    if offset != len(binary):
        raise BadInput(f"binary data: {len(binary) - offset} bytes left after the inputs")
    return _checked(specs, feeds), _wanted(body)


def _checked(specs: Sequence[Value], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """check_feeds' verdict, quicker where the decoding above has already done its part
    (names are the model's, dtypes the datatype's): every input there, ranks and fixed
    dims right. Anything else goes to check_feeds, which says what is wrong."""
    if len(feeds) == len(specs):
        for spec in specs:
            arr = feeds.get(spec.name)
            if arr is None or (spec.shape is not None and (
                    arr.ndim != len(spec.shape)
                    or any(isinstance(want, int) and got != want
                           for got, want in zip(arr.shape, spec.shape, strict=True)))):
                break
        else:
            return feeds
    return check_feeds(specs, feeds)


def check_input(by_name: Mapping[str, Value], name: Any, datatype: Any, shape: Any) -> Value:
    """The spec of the input a request names, once its datatype and shape fit it."""
    if name not in by_name:
        raise BadInput(f"unknown input {name!r}; the model takes "
                       + ", ".join(repr(n) for n in by_name))
    spec = by_name[name]
    if datatype != v2_datatype(spec):
        raise BadInput(f"input {name!r}: datatype {datatype}, the model takes "
                       f"{v2_datatype(spec)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadInput(f"input {name!r}: shape must be a list of non-negative integers")
    return spec


# JSON lists of these become float64 first: numpy turns a list of Python floats into
# float64 twice as fast as into float32, and it converts every element (int, float, str)
# through a double either way, so the values are the same to the bit
_VIA_FLOAT64 = {"FP32": np.float32, "FP16": np.float16}


def from_values(name: str, datatype: str, shape: list[int], data: Any) -> np.ndarray:
    """A flat (or nested) list of values as an array of `datatype` and `shape`."""
    try:
        # overflow to inf, NaN to NaN (either may flag the cast): _from_json reports them
        with np.errstate(over="ignore", invalid="ignore"):
            narrow = _VIA_FLOAT64.get(datatype) if isinstance(data, list) else None
            if narrow is not None:
                arr = np.asarray(data, dtype=np.float64).astype(narrow)
            else:
                arr = np.asarray(data, dtype=NUMPY_OF[datatype])
    except OverflowError:
        raise BadInput(f"input {name!r}: data has a number out of {datatype}'s range") from None
    except (ValueError, TypeError) as exc:
        raise BadInput(f"input {name!r}: data is not {datatype}: {exc}") from None
    if arr.size != math.prod(shape):
        raise BadInput(f"input {name!r}: shape {shape} holds {math.prod(shape)} values, "
                       f"data has {arr.size}")
    return arr.reshape(shape)


def _from_json(name: str, datatype: str, shape: list[int], data: Any) -> np.ndarray:
    arr = from_values(name, datatype, shape, data)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        # JSON has no infinities: these came from nulls or numbers past the datatype's range
        raise BadInput(f"input {name!r}: data has null or a number out of {datatype}'s "
                       "range")
    if arr.dtype.kind == "O" and not all(isinstance(v, str) for v in arr.flat):
        raise BadInput(f"input {name!r}: BYTES data must be strings")
    if datatype == "BOOL" and not all(
            v is True or v is False or (type(v) is int and v in (0, 1))
            for v in np.asarray(data, dtype=object).flat):
        # numpy makes True of any non-zero number and any non-empty string ("false"
        # too), False of null: a wrong value, silently; only true/false (or 0/1) mean one
        raise BadInput(f"input {name!r}: BOOL data must be true or false (or 0 or 1)")
    return arr


def from_bytes(name: str, datatype: str, shape: list[int], raw: bytes) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        items: list[str] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise BadInput(f"input {name!r}: BYTES element {len(items)} has a cut length")
            (n,) = struct.unpack_from("<I", raw, pos)
            if pos + 4 + n > len(raw):
                raise BadInput(f"input {name!r}: BYTES element {len(items)} runs past its data")
            items.append(raw[pos + 4:pos + 4 + n].decode("utf-8", "replace"))
            pos += 4 + n
        if len(items) != count:
            raise BadInput(f"input {name!r}: shape {shape} holds {count} values, "
                           f"binary data has {len(items)}")
        return np.array(items, dtype=object).reshape(shape)
    dtype = np.dtype(NUMPY_OF[datatype]).newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise BadInput(f"input {name!r}: shape {shape} of {datatype} is "
                       f"{count * dtype.itemsize} bytes, binary_data_size says {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="),
                                                  copy=False).reshape(shape)


def _wanted(body: dict[str, Any]) -> Wanted:
    params = body.get("parameters") or {}
    default_binary = bool(isinstance(params, dict) and params.get("binary_data_output"))
    wanted = body.get("outputs")
    if wanted is None:
        return Wanted(None, set(), all_binary=default_binary)
    if not isinstance(wanted, list) or not all(isinstance(o, dict) and "name" in o
                                               for o in wanted):
        raise BadInput("outputs: a list of objects with a name")
    binary = {str(o["name"]) for o in wanted
              if (o.get("parameters") or {}).get("binary_data", default_binary)}
    return Wanted([str(o["name"]) for o in wanted], binary)


def encode_outputs(specs: Sequence[Value], arrays: Mapping[str, np.ndarray],
                   wanted: Wanted) -> tuple[list[dict[str, Any]], list[bytes]]:
    """(JSON output entries, raw bytes of the binary ones in the same order)."""
    out, blobs = [], []
    for spec, arr in select_outputs(specs, arrays, wanted.names):
        entry: dict[str, Any] = {"name": spec.name, "datatype": v2_datatype(spec),
                                 "shape": list(arr.shape)}
        if wanted.all_binary or spec.name in wanted.binary:
            raw = to_bytes(arr)
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise BadInput(f"output {spec.name!r} holds NaN or infinity, which JSON "
                               "cannot carry; ask for it as binary data (binary_data: true)")
            entry["data"] = (arr.astype(str) if arr.dtype == object else arr).ravel().tolist()
        out.append(entry)
    return out, blobs


def select_outputs(specs: Sequence[Value], arrays: Mapping[str, np.ndarray],
                   names: Sequence[str] | None) -> list[tuple[Value, np.ndarray]]:
    """The outputs a request asks for (`names`; None: all), in the model's order."""
    known = {s.name for s in specs}
    for n in names or []:
        if n not in known:
            raise BadInput(f"unknown output {n!r}; the model gives "
                           + ", ".join(repr(s.name) for s in specs))
    return [(s, arrays[s.name]) for s in specs if names is None or s.name in names]


def to_bytes(arr: np.ndarray) -> bytes:
    """An array as raw tensor data (little-endian; BYTES as length-prefixed elements)."""
    if arr.dtype == object:
        parts = []
        for item in arr.ravel():
            data = item if isinstance(item, bytes) else str(item).encode()
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def model_metadata(model: LoadedModel) -> dict[str, Any]:
    return {"name": model.name, "versions": [model.version], "platform": "onnxruntime_onnx",
            "inputs": [describe(t) for t in model.inputs],
            "outputs": [describe(t) for t in model.outputs]}
