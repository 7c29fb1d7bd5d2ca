"""A Triton Inference Server model repository entry: config.pbtxt from the signature.

Layout: `<repository>/<model-name>/config.pbtxt` and `<model-name>/<n>/model.onnx`.
When every input and output has a symbolic first axis, that axis becomes Triton's batch
dimension (max_batch_size > 0, dims without it) and dynamic batching is on; otherwise
the model takes whole tensors (max_batch_size 0, full dims).
"""

from __future__ import annotations

import re
from pathlib import Path

from mx import __version__
from mx.errors import ConfigError
from mx.export.base import ExportOptions, ModelSource, copy_model
from mx.infer.model import LoadedModel, open_model
from mx.tensorspec import Value

TRITON_TYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32", "uint64": "TYPE_UINT64", "int8": "TYPE_INT8",
    "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
    "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16", "string": "TYPE_STRING",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MODEL_VERSION = "1"  # Triton versions are integers; the mx version is in the parameters


def triton_name(source: ModelSource, opts: ExportOptions) -> str:
    name = opts.model_name or source.name.split("/")[-1]
    if not _NAME.match(name):
        raise ConfigError(f"--model-name {name!r}: use letters, digits, '.', '_' or '-'")
    return name


def batch_axis(model: LoadedModel) -> bool:
    """Triton's batch dimension must lead every output as well as every input."""
    return model.batchable and all(t.shape and isinstance(t.shape[0], str)
                                   for t in model.outputs)


def _tensor(t: Value, batched: bool) -> str:
    if t.dtype not in TRITON_TYPES:
        raise ConfigError(f"{t.name}: Triton has no type for {t.dtype}")
    shape = t.shape or ()  # onnxruntime always gives a rank here
    dims = [d if isinstance(d, int) else -1 for d in (shape[1:] if batched else shape)]
    return ("  {\n"
            f'    name: "{t.name}"\n'
            f"    data_type: {TRITON_TYPES[t.dtype]}\n"
            f"    dims: [ {', '.join(map(str, dims or [1]))} ]\n"
            + ("    reshape: { shape: [ ] }\n" if not dims else "")
            + "  }")


def model_config(model: LoadedModel, source: ModelSource, name: str,
                 opts: ExportOptions) -> str:
    batched = batch_axis(model)
    lines = [f"# written by mx {__version__} from {source.name} {source.version} "
             f"({source.variant})",
             f'name: "{name}"',
             'platform: "onnxruntime_onnx"',
             f"max_batch_size: {opts.max_batch_size if batched else 0}",
             "input [", ",\n".join(_tensor(t, batched) for t in model.inputs), "]",
             "output [", ",\n".join(_tensor(t, batched) for t in model.outputs), "]"]
    if batched:
        lines += ["dynamic_batching {",
                  f"  max_queue_delay_microseconds: {opts.max_queue_delay_us}", "}"]
    kind = "KIND_GPU" if opts.gpu else "KIND_CPU"
    lines += ["instance_group [", f"  {{ count: {opts.instances}, kind: {kind} }}", "]",
              "version_policy: { latest: { num_versions: 1 } }"]
    for key, value in (("mx_model", source.name), ("mx_version", source.version),
                       ("mx_variant", source.variant)):
        lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
    return "\n".join(lines) + "\n"


def write_repository_entry(source: ModelSource, entry: Path, name: str,
                           opts: ExportOptions) -> list[str]:
    """`entry` becomes the directory of model `name` inside a repository."""
    model = open_model(source.name, source.version, source.onnx)
    entry.mkdir(parents=True, exist_ok=True)
    copy_model(source.onnx, entry / MODEL_VERSION / "model.onnx")
    (entry / "config.pbtxt").write_text(model_config(model, source, name, opts))
    notes = []
    if not batch_axis(model):
        notes.append(f"{source.name}: no symbolic first axis on every input and output, so "
                     "Triton gets max_batch_size 0 and no dynamic batching")
    return notes


class TritonExporter:
    name = "triton"

    def destination(self, source: ModelSource, out: Path, opts: ExportOptions) -> Path:
        return out / triton_name(source, opts)  # out is the repository; others may share it

    def write(self, source: ModelSource, stage: Path, opts: ExportOptions) -> list[str]:
        return write_repository_entry(source, stage, triton_name(source, opts), opts)
