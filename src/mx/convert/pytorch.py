"""PyTorch -> ONNX (dynamo exporter, legacy as fallback) and -> TorchScript.

Sources: an entry point returning `(model, example_inputs)` or
`(model, example_inputs, options)`, where example_inputs is a tuple of tensors or a dict
from input name to tensor and options may hold `input_names`, `output_names` and
`dynamic_axes` ({input or output name: {axis: dim name}}); or a TorchScript file.
By default axis 0 of every input and output is the symbolic dim `batch`.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from mx.convert.base import (
    Converted,
    ConvertJob,
    call_entry_point,
    first_line,
    quiet,
    refuse_pickle,
)
from mx.errors import ConfigError, ConversionFailed
from mx.frameworks import require, version_of
from mx.sampling import Feeds, generate

LARGE_MODEL_BYTES = 1_800_000_000  # protobuf's 2 GiB limit, with room for the graph


class TorchConverter:
    framework = "pytorch"
    targets: tuple[str, ...] = ("onnx", "torchscript")

    def convert(self, job: ConvertJob) -> Converted:
        torch = require("torch")
        model, example, options = _load_source(job)
        model.eval()
        input_names = list(example)
        args = tuple(torch.from_numpy(a) for a in example.values())
        with torch.no_grad(), quiet():
            sample_out = _flatten(model(*args))
        output_names = list(options.get("output_names") or job.output_names or
                            (["output"] if len(sample_out) == 1 else
                             [f"output_{i}" for i in range(len(sample_out))]))
        if len(output_names) != len(sample_out):
            raise ConfigError(f"{len(output_names)} output names given but the model returns "
                              f"{len(sample_out)} tensors")
        axes = options.get("dynamic_axes") or {n: {0: "batch"}
                                               for n in input_names + output_names}
        version = version_of("torch")
        notes: list[str] = []
        if job.target == "torchscript":
            with torch.no_grad(), quiet():
                try:
                    traced = torch.jit.trace(model, args)
                except Exception as exc:
                    raise ConversionFailed(f"torch.jit.trace failed: {first_line(exc)}") \
                        from None
            traced.save(str(job.out_path))
            tool = f"torch.jit.trace {version}"
        else:
            tool = _export_onnx(torch, model, args, job, input_names, output_names, axes, notes)
            tool = f"{tool} {version}"

        def reference(feeds: Feeds) -> list[Any]:
            with torch.no_grad():
                out = model(*(torch.from_numpy(feeds[n]) for n in input_names))
            return [t.detach().cpu().numpy() for t in _flatten(out)]

        return Converted(reference, example, tool, version, notes)


def _load_source(job: ConvertJob) -> tuple[Any, Feeds, dict[str, Any]]:
    torch = require("torch")
    path = job.model_dir / job.source
    if ":" not in job.source or path.suffix in {".pt", ".pth", ".ts", ".torchscript"}:

        if not path.is_file():
            raise ConfigError(f"{path}: no such TorchScript file",
                              hint="give a TorchScript file or an entry point module:function")
        refuse_pickle(path)
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ConfigError(f"{path}: not a TorchScript archive ({first_line(exc)})") \
                from None
        if job.data is not None:
            return model, dict(job.data), {}
        if not job.signature:
            raise ConfigError(f"{path}: a TorchScript file carries no example inputs",
                              hint="add `signature` to mx.yaml or pass --data inputs.npz")
        return model, generate(job.signature, batch=2), {}
    result = call_entry_point(job.source, job.model_dir)
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise ConfigError(f"entry point {job.source!r} must return (model, example_inputs) "
                          f"or (model, example_inputs, options), not {type(result).__name__}")
    model, example_in = result[0], result[1]
    options: dict[str, Any] = dict(result[2]) if len(result) == 3 else {}
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"entry point {job.source!r} returned {type(model).__name__}, "
                          "not a torch.nn.Module")
    if isinstance(example_in, dict):
        example = {str(k): _to_numpy(v) for k, v in example_in.items()}
    else:
        seq = example_in if isinstance(example_in, list | tuple) else (example_in,)
        names = options.get("input_names") or job.input_names or (
            ["input"] if len(seq) == 1 else [f"input_{i}" for i in range(len(seq))])
        if len(names) != len(seq):
            raise ConfigError(f"{len(names)} input names for {len(seq)} example inputs")
        example = {n: _to_numpy(v) for n, v in zip(names, seq, strict=True)}
    if job.data is not None:
        example = dict(job.data)
    return model, example, options


def _export_onnx(torch: Any, model: Any, args: tuple[Any, ...], job: ConvertJob,
                 input_names: list[str], output_names: list[str],
                 axes: dict[str, dict[int, str]], notes: list[str]) -> str:
    big = sum(p.numel() * p.element_size() for p in model.parameters()) > LARGE_MODEL_BYTES
    scripted = isinstance(model, torch.jit.ScriptModule)
    dynamo_error = None
    if not scripted:
        dims: dict[str, Any] = {}
        shapes = tuple({int(ax): dims.setdefault(name, torch.export.Dim(name))
                        for ax, name in axes.get(n, {}).items()} or None
                       for n in input_names)
        try:
            with quiet():
                program = torch.onnx.export(
                    model, args, dynamo=True, input_names=input_names,
                    output_names=output_names, dynamic_shapes=shapes,
                    opset_version=max(job.opset, 18))
                program.save(str(job.out_path), external_data=big)
            return "torch.onnx (dynamo)"
        except Exception as exc:
            dynamo_error = exc
            notes.append(f"the dynamo exporter failed ({first_line(exc)}); "
                         "used the legacy TorchScript-based exporter")
    try:
        with quiet():
            torch.onnx.export(model, args, str(job.out_path), dynamo=False,
                              input_names=input_names, output_names=output_names,
                              dynamic_axes={n: {int(k): v for k, v in a.items()}
                                            for n, a in axes.items()},
                              opset_version=job.opset)
    except Exception as exc:
        op = _operator(exc) or (_operator(dynamo_error) if dynamo_error else None)
        what = f"operator {op} is not supported by the ONNX exporters" if op else \
            first_line(exc)
        raise ConversionFailed(f"PyTorch -> ONNX export failed: {what}",
                               hint="replace the operator, or register a custom ONNX "
                                    "translation for it") from None
    return "torch.onnx (legacy)"


def _operator(exc: BaseException) -> str | None:
    text = str(exc)
    for pattern in (r"operator '([\w:.]+)'", r"\b(aten::\w+)", r"\b([a-z_]\w*::\w+)",
                    r"\b(aten\.\w+)", r"\b([a-z_]\w*\.\w+\.default)"):
        m = re.search(pattern, text)
        if m:
            return m.group(1)
    return None


def _flatten(out: Any) -> list[Any]:
    torch = require("torch")
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _flatten(v)]
    if isinstance(out, list | tuple):
        return [t for v in out for t in _flatten(v)]
    raise ConfigError(f"the model returned {type(out).__name__}; mx exports tensor outputs")


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)


