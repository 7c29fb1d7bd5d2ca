"""The variants `mx optimize` can make, each a plugin behind the `Transform` protocol.

Every transform reads the parent ONNX file and writes one new file; what it did goes into
the artifact's `transform` entry in mx.yaml, so a variant says how it was made.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mx.convert.base import first_line
from mx.errors import ConfigError, MxError
from mx.sampling import Feeds


class TransformFailed(MxError):
    """onnxruntime's quantizer, converter or optimizer refused the model."""


@dataclass
class TransformContext:
    arg: str | None = None  # NAME:ARG on the command line, e.g. prune:0.7
    calibration: list[Feeds] = field(default_factory=list)
    calibration_source: str = ""
    warnings: list[str] = field(default_factory=list)


class Transform(Protocol):
    name: str
    fmt: str  # format of the file it writes

    def variant(self, ctx: TransformContext) -> str: ...

    def apply(self, src: Path, dst: Path, ctx: TransformContext) -> dict[str, Any]: ...


def _preprocessed(src: Path, tmp: Path) -> Path:
    """Shape inference + cleanup before quantizing (dynamo exports need it: ENVIRONMENT.md)."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # The dynamo exporter records value_info for initializers with shapes the quantizer's
    # shape inference then contradicts; dropping them lets it infer afresh.
    model = onnx.load(str(src))
    inits = {t.name for t in model.graph.initializer}
    keep = [vi for vi in model.graph.value_info if vi.name not in inits]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)
    cleaned = tmp / "clean.onnx"
    onnx.save(model, str(cleaned))
    out = tmp / "pre.onnx"
    try:
        quant_pre_process(str(cleaned), str(out), skip_symbolic_shape=True)
    except Exception:
        return cleaned  # the quantizer's own error will be clearer than the pre-processor's
    return out


def _quantize(what: str, src: Path, dst: Path, quantize: Any) -> None:
    """Pre-process into a temp dir beside `dst`, then `quantize(preprocessed_path)`."""
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".mx-q-") as tmp:
        try:
            quantize(str(_preprocessed(src, Path(tmp))))
        except Exception as exc:
            raise TransformFailed(f"{what} failed: {first_line(exc)}") from None


class DynamicInt8:
    name = "int8-dynamic"
    fmt = "onnx"

    def variant(self, ctx: TransformContext) -> str:
        return "int8"

    def apply(self, src: Path, dst: Path, ctx: TransformContext) -> dict[str, Any]:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Per-channel scales: per-tensor ones cost MiniLM's embeddings 0.96 cosine
        # similarity against 0.99 (measured on real sentences), for the same size.
        _quantize("int8 dynamic quantization", src, dst,
                  lambda pre: quantize_dynamic(pre, str(dst), weight_type=QuantType.QInt8,
                                               per_channel=True))
        return {"kind": "quantize", "method": "dynamic", "weight_type": "int8",
                "per_channel": True}


class StaticInt8:
    name = "int8-static"
    fmt = "onnx"

    def variant(self, ctx: TransformContext) -> str:
        return "int8-static"

    def apply(self, src: Path, dst: Path, ctx: TransformContext) -> dict[str, Any]:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        batches = list(ctx.calibration)

        class Reader(CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self.it = iter(batches)

            def get_next(self) -> Feeds | None:
                return next(self.it, None)

        _quantize("int8 static quantization", src, dst,
                  lambda pre: quantize_static(pre, str(dst), Reader(),
                                              quant_format=QuantFormat.QDQ,
                                              activation_type=QuantType.QInt8,
                                              weight_type=QuantType.QInt8, per_channel=True))
        return {"kind": "quantize", "method": "static", "weight_type": "int8",
                "activation_type": "int8", "format": "qdq",
                "calibration": ctx.calibration_source,
                "calibration_batches": len(batches)}


class Float16:
    name = "fp16"
    fmt = "onnx"

    def variant(self, ctx: TransformContext) -> str:
        return "fp16"

    def apply(self, src: Path, dst: Path, ctx: TransformContext) -> dict[str, Any]:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        try:
            from mx.onnxinfo import toposort

            model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
            toposort(model.graph)
            onnx.save(model, str(dst))
        except Exception as exc:
            raise TransformFailed(f"fp16 conversion failed: {first_line(exc)}") from None
        return {"kind": "cast", "dtype": "float16", "keep_io_types": True}


class GraphOptimize:
    """onnxruntime's offline graph optimization (fusions); the result targets CPU."""

    name = "graph"
    fmt = "onnx"

    def variant(self, ctx: TransformContext) -> str:
        return "opt"

    def apply(self, src: Path, dst: Path, ctx: TransformContext) -> dict[str, Any]:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(dst)
        opts.log_severity_level = 3
        try:
            ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise TransformFailed(f"graph optimization failed: {first_line(exc)}") from None
        return {"kind": "graph-optimize", "level": "extended",
                "provider": "CPUExecutionProvider", "onnxruntime": ort.__version__}


class MagnitudePrune:
    name = "prune"
    fmt = "onnx"

    def sparsity(self, ctx: TransformContext) -> float:
        try:
            value = float(ctx.arg) if ctx.arg else 0.5
        except ValueError:
            raise ConfigError(f"prune:{ctx.arg}: the sparsity is a number in (0, 1), "
                              "e.g. prune:0.5") from None
        if not 0 < value < 1:
            raise ConfigError(f"prune:{ctx.arg}: the sparsity must be in (0, 1)")
        return value

    def variant(self, ctx: TransformContext) -> str:
        return f"pruned{round(self.sparsity(ctx) * 100)}"

    def apply(self, src: Path, dst: Path, ctx: TransformContext) -> dict[str, Any]:
        import onnx
        from onnx import numpy_helper

        target = self.sparsity(ctx)
        model = onnx.load(str(src))
        zeros = total = 0
        for i, t in enumerate(model.graph.initializer):
            w = numpy_helper.to_array(t)
            # Weights only: matrices and kernels; biases and norms stay dense.
            if w.ndim < 2 or w.dtype.kind != "f" or w.size < 16:
                continue
            k = int(w.size * target)
            cut = np.partition(np.abs(w).reshape(-1), k)[k] if k else 0.0
            pruned = np.where(np.abs(w) < cut, 0, w).astype(w.dtype)
            zeros += int(np.count_nonzero(pruned == 0))
            total += w.size
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(pruned, t.name))
        if total == 0:
            raise TransformFailed("pruning found no weight matrices to prune")
        onnx.save(model, str(dst))
        return {"kind": "prune", "method": "magnitude", "scope": "per-tensor",
                "sparsity": target, "achieved_sparsity": round(zeros / total, 4)}


class OrtFormat:
    """The ORT format for ORT Mobile: basic (portable) optimizations, saved as .ort."""

    name = "ort"
    fmt = "ort"

    def variant(self, ctx: TransformContext) -> str:
        return ""  # the parent's variant: an .ort of model.int8.onnx is (ort, int8)

    def apply(self, src: Path, dst: Path, ctx: TransformContext) -> dict[str, Any]:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(dst)
        opts.add_session_config_entry("session.save_model_format", "ORT")
        opts.log_severity_level = 3
        try:
            ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise TransformFailed(f"ORT format conversion failed: {first_line(exc)}") from None
        return {"kind": "ort-format", "optimization": "basic", "onnxruntime": ort.__version__}


TRANSFORMS: dict[str, Transform] = {
    t.name: t for t in (DynamicInt8(), StaticInt8(), Float16(), GraphOptimize(),
                        MagnitudePrune(), OrtFormat())
}

