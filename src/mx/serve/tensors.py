"""Tensors in and out of the V2 protocol, checked against a model's signature.

Every check names the input, the field and the value, so a 400 tells the caller what to
fix. No I/O here: the app and `mx.load` share these checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mx.errors import MxError

# manifest / ONNX dtype names -> V2 datatypes
DATATYPES: dict[str, str] = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32",
    "uint64": "UINT64", "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64", "string": "BYTES",
}
NUMPY_OF = {v: ("object" if k == "string" else k) for k, v in DATATYPES.items()}


class BadInput(MxError):
    """A request that does not fit the model's signature (HTTP 400)."""


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # numpy / manifest name
    shape: tuple[int | str, ...]  # str: a symbolic dim

    @property
    def datatype(self) -> str:
        return DATATYPES.get(self.dtype, self.dtype.upper())

    @property
    def v2_shape(self) -> list[int]:
        return [d if isinstance(d, int) else -1 for d in self.shape]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.v2_shape}


def check_array(spec: Tensor, arr: np.ndarray) -> None:
    """Raise BadInput unless `arr` has the spec's dtype, rank and fixed dims."""
    if str(arr.dtype) != spec.dtype and not (spec.dtype == "string" and arr.dtype == object):
        raise BadInput(f"input {spec.name!r}: dtype {arr.dtype}, the model takes {spec.dtype}",
                       hint=f"send {spec.datatype} data")
    if arr.ndim != len(spec.shape):
        raise BadInput(f"input {spec.name!r}: shape {list(arr.shape)} has {arr.ndim} dims, "
                       f"the model takes {len(spec.shape)} ({spec.v2_shape})")
    for axis, (got, want) in enumerate(zip(arr.shape, spec.shape, strict=True)):
        if isinstance(want, int) and got != want:
            raise BadInput(f"input {spec.name!r}: dim {axis} is {got}, the model takes {want} "
                           f"(shape {spec.v2_shape})")


def check_feeds(specs: Sequence[Tensor], feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Names, dtypes and shapes of a whole request, as arrays."""
    by_name = {s.name: s for s in specs}
    unknown = [n for n in feeds if n not in by_name]
    if unknown:
        raise BadInput(f"unknown input {unknown[0]!r}; the model takes "
                       + ", ".join(repr(s.name) for s in specs))
    missing = [s.name for s in specs if s.name not in feeds]
    if missing:
        raise BadInput(f"missing input {missing[0]!r}")
    out = {}
    for name, value in feeds.items():
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
        check_array(by_name[name], arr)
        out[name] = arr
    return out


def decode_request(body: Any, specs: Sequence[Tensor]) -> tuple[dict[str, np.ndarray],
                                                                 list[str] | None]:
    """A V2 JSON infer request -> (feeds, requested output names or None for all)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise BadInput("request body: an object with an 'inputs' list is required")
    by_name = {s.name: s for s in specs}
    feeds: dict[str, np.ndarray] = {}
    for i, item in enumerate(body["inputs"]):
        if not isinstance(item, dict):
            raise BadInput(f"inputs[{i}]: an object with name, shape, datatype, data")
        name, shape, datatype = item.get("name"), item.get("shape"), item.get("datatype")
        if name not in by_name:
            raise BadInput(f"unknown input {name!r}; the model takes "
                           + ", ".join(repr(s.name) for s in specs))
        spec = by_name[name]
        if datatype != spec.datatype:
            raise BadInput(f"input {name!r}: datatype {datatype}, the model takes "
                           f"{spec.datatype}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise BadInput(f"input {name!r}: shape must be a list of non-negative integers")
        if "data" not in item:
            raise BadInput(f"input {name!r}: no 'data' (binary tensors are not supported)")
        try:
            arr = np.asarray(item["data"], dtype=NUMPY_OF[datatype])
        except (ValueError, TypeError) as exc:
            raise BadInput(f"input {name!r}: data is not {datatype}: {exc}") from None
        if arr.size != math.prod(shape):
            raise BadInput(f"input {name!r}: shape {shape} holds {math.prod(shape)} values, "
                           f"data has {arr.size}")
        feeds[name] = arr.reshape(shape)
    feeds = check_feeds(specs, feeds)
    wanted = body.get("outputs")
    names = None
    if wanted is not None:
        if not isinstance(wanted, list) or not all(isinstance(o, dict) and "name" in o
                                                   for o in wanted):
            raise BadInput("outputs: a list of objects with a name")
        names = [str(o["name"]) for o in wanted]
    return feeds, names


def encode_outputs(specs: Sequence[Tensor], arrays: Mapping[str, np.ndarray],
                   names: list[str] | None) -> list[dict[str, Any]]:
    known = {s.name: s for s in specs}
    for n in names or []:
        if n not in known:
            raise BadInput(f"unknown output {n!r}; the model gives "
                           + ", ".join(repr(s.name) for s in specs))
    out = []
    for spec in specs:
        if names is not None and spec.name not in names:
            continue
        arr = arrays[spec.name]
        data = arr.astype(str).ravel().tolist() if arr.dtype == object else arr.ravel().tolist()
        out.append({"name": spec.name, "datatype": spec.datatype, "shape": list(arr.shape),
                    "data": data})
    return out
