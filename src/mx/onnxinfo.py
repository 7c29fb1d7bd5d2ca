"""What an ONNX graph says about itself: signature, opsets, operators, parameters.

Pure reads of an `onnx.ModelProto` (no onnxruntime), shared by `mx convert` (which writes
the signature into mx.yaml), `mx check` and `mx bench`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mx.tensorspec import Value

# onnx TensorProto element types -> manifest dtype names (and back): numpy's names where
# numpy has the type, else ONNX's own in lower case (float8e4m3fn, int4, float4e2m1...).
ONNX_DTYPES: dict[int, str] = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
    14: "complex64", 15: "complex128", 16: "bfloat16", 17: "float8e4m3fn",
    18: "float8e4m3fnuz", 19: "float8e5m2", 20: "float8e5m2fnuz", 21: "uint4", 22: "int4",
    23: "float4e2m1", 24: "float8e8m0", 25: "uint2", 26: "int2", 27: "float6e2m3",
    28: "float6e3m2",
}
DEFAULT_DOMAIN = ("", "ai.onnx")
# dim_param values exporters write for "unknown", not a name two axes could share
UNNAMED = ("", "?", "-1", "None", "unk")


@dataclass(frozen=True)
class GraphInfo:
    inputs: list[Value]
    outputs: list[Value]
    ir_version: int
    opsets: dict[str, int]  # domain ("ai.onnx" for the default) -> version
    op_counts: dict[tuple[str, str], int]  # (domain, op_type) -> nodes, subgraphs included
    parameters: int  # elements in float/int initializers
    external_data: bool

    @property
    def opset(self) -> int | None:
        return self.opsets.get("ai.onnx")

    def signature(self) -> dict[str, Any]:
        """The manifest `signature` block (symbolic dims kept as names)."""
        return {"inputs": [t.manifest_entry() for t in self.inputs],
                "outputs": [t.manifest_entry() for t in self.outputs]}


def load(path: Path, with_data: bool = False) -> Any:
    import onnx

    return onnx.load(str(path), load_external_data=with_data)


def describe(model: Any) -> GraphInfo:
    import onnx

    initializers = {t.name for t in model.graph.initializer}
    inputs = [_tensor(v) for v in model.graph.input if v.name not in initializers]
    outputs = [_tensor(v) for v in model.graph.output]
    opsets = {("ai.onnx" if o.domain in DEFAULT_DOMAIN else o.domain): int(o.version)
              for o in model.opset_import}
    counts: Counter[tuple[str, str]] = Counter()
    params = 0
    for node in _nodes(model.graph):
        counts[("ai.onnx" if node.domain in DEFAULT_DOMAIN else node.domain, node.op_type)] += 1
        # Weights can live in attributes: Constant tensors, ai.onnx.ml coefficient lists.
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                n = 1
                for d in attr.t.dims:
                    n *= int(d)
                params += n
            elif attr.type == onnx.AttributeProto.FLOATS:
                params += len(attr.floats)
    external = False
    for t in model.graph.initializer:
        n = 1
        for d in t.dims:
            n *= int(d)
        params += n
        external = external or t.data_location == onnx.TensorProto.EXTERNAL
    return GraphInfo(inputs, outputs, int(model.ir_version), opsets, dict(counts), params,
                     external)


def _nodes(graph: Any) -> list[Any]:
    """Every node, including those inside If/Loop/Scan bodies."""
    import onnx

    out = []
    for node in graph.node:
        out.append(node)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                out.extend(_nodes(attr.g))
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    out.extend(_nodes(g))
    return out


def _tensor(value_info: Any) -> Value:
    """A value's type with every dynamic axis named: unnamed ones, `-1` and `?` get
    `<value>_<axis>`, a stable name the signature can say."""
    return value_type(value_info.name, value_info.type, name_unknown=True)


def value_type(name: str, tp: Any, name_unknown: bool = False) -> Value:
    """Read an onnx TypeProto: tensors, sparse tensors, sequences, optionals and maps of
    them. Unknown axes are None unless `name_unknown`."""
    which = tp.WhichOneof("value")
    if which == "sequence_type":
        inner = value_type(name, tp.sequence_type.elem_type, name_unknown)
        return Value(name, inner.dtype, inner.shape, f"sequence({inner.type})")
    if which == "optional_type":
        inner = value_type(name, tp.optional_type.elem_type, name_unknown)
        return Value(name, inner.dtype, inner.shape, f"optional({inner.type})")
    if which == "map_type":
        inner = value_type(name, tp.map_type.value_type, name_unknown)
        key = ONNX_DTYPES.get(int(tp.map_type.key_type), f"onnx-type-{tp.map_type.key_type}")
        return Value(name, inner.dtype, inner.shape, f"map({key}, {inner.type})")
    t = tp.sparse_tensor_type if which == "sparse_tensor_type" else tp.tensor_type
    dtype = ONNX_DTYPES.get(int(t.elem_type), f"onnx-type-{t.elem_type}")
    kind = "sparse_tensor" if which == "sparse_tensor_type" else "tensor"
    if not t.HasField("shape"):
        return Value(name, dtype, None, kind)
    shape: list[int | str | None] = []
    for axis, d in enumerate(t.shape.dim):
        if d.HasField("dim_value") and d.dim_value >= 0:
            shape.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param.strip() not in UNNAMED:
            shape.append(d.dim_param)
        elif name_unknown:
            shape.append(f"{name}_{axis}")
        else:
            shape.append(None)
    return Value(name, dtype, tuple(shape), kind)


def rename_values(model: Any, mapping: dict[str, str]) -> None:
    """Rename graph values (inputs, outputs, node edges) in place: exporters pick names like
    `Identity:0` or `in_0`; the manifest's signature wants the model's own."""
    mapping = {k: v for k, v in mapping.items() if k != v}
    if not mapping:
        return
    graph = model.graph
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        vi.name = mapping.get(vi.name, vi.name)
    for node in _nodes(graph):
        for i, name in enumerate(node.input):
            node.input[i] = mapping.get(name, name)
        for i, name in enumerate(node.output):
            node.output[i] = mapping.get(name, name)


def toposort(graph: Any) -> None:
    """Reorder a graph's nodes so each comes after the nodes that produce its inputs
    (onnxruntime's fp16 converter appends Cast nodes at the end; the checker refuses)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle or an outer-scope name: keep what is left
            ordered.extend(rest)
            break
        pending = rest
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered, strict=True):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def save_ort_format(src: Path, dst: Path) -> None:
    """Write `src` in onnxruntime's ORT format to `dst`, as `convert_onnx_models_to_ort`
    does for a fixed-optimization model (basic graph optimizations). onnxruntime's own
    exception escapes for the caller to word."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(dst)
    opts.add_session_config_entry("session.save_model_format", "ORT")
    opts.log_severity_level = 4
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
