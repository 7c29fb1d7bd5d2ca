"""A loaded ONNX graph's inputs and outputs against a signature (mx.yaml's `signature:`).

A foundation piece: `mx validate`, `mx check`, `mx convert` and the index builder all
compare a graph with its signature, so the comparison lives below all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mx.onnxinfo import value_type
from mx.tensorspec import TensorSpec, canonical_type


def io_problems(model: Any, inputs: list[TensorSpec] | None,
                outputs: list[TensorSpec] | None) -> list[str]:
    """A loaded graph's inputs (initializers aside) and outputs against the signature."""
    out: list[str] = []
    if inputs is not None:
        initializers = {t.name for t in model.graph.initializer}
        out += compare_io("input", inputs, [v for v in model.graph.input
                                            if v.name not in initializers])
    if outputs is not None:
        out += compare_io("output", outputs, list(model.graph.output))
    return out


def compare_io(kind: str, specs: list[TensorSpec], actual: list[Any]) -> list[str]:
    out: list[str] = []
    by_name = {v.name: v for v in actual}
    wanted = {s.name for s in specs}
    for extra in sorted(set(by_name) - wanted):
        out.append(f"graph {kind} {extra!r} is not in signature.{kind}s")
    for spec in specs:
        vi = by_name.get(spec.name)
        if vi is None:
            have = ", ".join(sorted(by_name)) or "none"
            out.append(f"signature {kind} {spec.name!r} is not a graph {kind} (graph has: {have})")
            continue
        graph = value_type(vi.name, vi.type)
        if canonical_type(graph.type) != canonical_type(spec.type):
            out.append(f"{kind} {spec.name!r} is {graph.type} in the graph but {spec.type} in "
                       "the signature")
            continue
        if graph.dtype != spec.dtype:
            out.append(f"{kind} {spec.name!r} is {graph.dtype} in the graph but {spec.dtype} in "
                       "the signature")
        if graph.shape is None or spec.shape is None:
            continue  # an unknown rank on either side agrees with any shape
        if len(graph.shape) != len(spec.shape):
            out.append(f"{kind} {spec.name!r} has rank {len(graph.shape)} in the graph "
                       f"{_fmt(graph.shape)} but {len(spec.shape)} in the signature {spec.shape}")
            continue
        for axis, (in_graph, in_sig) in enumerate(zip(graph.shape, spec.shape, strict=True)):
            if isinstance(in_sig, int) and isinstance(in_graph, int) and in_sig != in_graph:
                out.append(f"{kind} {spec.name!r} axis {axis} is {in_graph} in the graph but "
                           f"{in_sig} in the signature")
            elif isinstance(in_sig, str) and isinstance(in_graph, int):
                out.append(f"{kind} {spec.name!r} axis {axis} is fixed at {in_graph} in the "
                           f"graph but symbolic ({in_sig!r}) in the signature")
    return out


def _fmt(dims: Sequence[int | str | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
