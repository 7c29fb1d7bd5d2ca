"""Tensors in and out of the V2 protocol's JSON, checked against a model's signature."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mx.infer.model import LoadedModel
from mx.infer.signature import NUMPY_OF, BadInput, Tensor, check_feeds


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


def model_metadata(model: LoadedModel) -> dict[str, Any]:
    return {"name": model.name, "versions": [model.version], "platform": "onnxruntime_onnx",
            "inputs": [t.describe() for t in model.inputs],
            "outputs": [t.describe() for t in model.outputs]}
