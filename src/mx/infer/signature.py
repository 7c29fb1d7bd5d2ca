"""A model's signature as onnxruntime reports it, and the checks feeds must pass.

Every check names the input, the field and the value, so the caller knows what to fix.
No I/O here: `mx serve` (400s), `mx run` and `mx.load` share these checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mx.errors import BadInput
from mx.tensorspec import Value

# manifest / ONNX dtype names -> V2 datatypes
DATATYPES: dict[str, str] = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32",
    "uint64": "UINT64", "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64", "string": "BYTES",
}
NUMPY_OF = {v: ("object" if k == "string" else k) for k, v in DATATYPES.items()}


def v2_datatype(spec: Value) -> str:
    """The V2 protocol's name for the value's element type (FP32, BYTES...)."""
    return DATATYPES.get(spec.dtype, spec.dtype.upper())


def v2_shape(spec: Value) -> list[int]:
    """The shape as V2 metadata gives it: -1 for a symbolic or unknown dim."""
    return [d if isinstance(d, int) else -1 for d in spec.shape or ()]


def describe(spec: Value) -> dict[str, Any]:
    return {"name": spec.name, "datatype": v2_datatype(spec), "shape": v2_shape(spec)}


def check_array(spec: Value, arr: np.ndarray) -> None:
    """Raise BadInput unless `arr` has the spec's dtype, rank and fixed dims."""
    if str(arr.dtype) != spec.dtype and not (spec.dtype == "string" and arr.dtype == object):
        raise BadInput(f"input {spec.name!r}: dtype {arr.dtype}, the model takes {spec.dtype}",
                       hint=f"send {v2_datatype(spec)} data")
    if spec.shape is None:
        return  # an unknown rank takes any shape
    if arr.ndim != len(spec.shape):
        raise BadInput(f"input {spec.name!r}: shape {list(arr.shape)} has {arr.ndim} dims, "
                       f"the model takes {len(spec.shape)} ({v2_shape(spec)})")
    for axis, (got, want) in enumerate(zip(arr.shape, spec.shape, strict=True)):
        if isinstance(want, int) and got != want:
            raise BadInput(f"input {spec.name!r}: dim {axis} is {got}, the model takes {want} "
                           f"(shape {v2_shape(spec)})")


def check_feeds(specs: Sequence[Value], feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
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
