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
from mx.cpufeatures import int8_kind
from mx.errors import ConfigError, TransformFailed
from mx.onnxinfo import save_ort_format, toposort
from mx.sampling import Feeds


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


# Integer formats of (activations, weights) and whether weights keep 7 bits. x86 CPUs
# without VNNI multiply u8 by s8 into a saturating int16 (VPMADDUBSW): full-range s8
# weights lose accuracy there and nowhere else (an MLP's top-1 agreement 0.84 on AVX2
# against 1.0 with u8 weights; bench/int8_variants.py). u8 weights are widened without
# saturation and 7-bit s8 weights cannot overflow, so both give the same numbers on every
# CPU and a quality figure measured on one holds on the others; u8u8 kept quality best
# across the measured models (MiniLM, PaddleOCR's classifier, the test MLP and CNN).
INT8_SCHEMES: dict[str, tuple[str, str, bool]] = {
    "u8u8": ("uint8", "uint8", False),
    "u8s8-reduced": ("uint8", "int8", True),
    "u8s8": ("uint8", "int8", False),
    "s8s8": ("int8", "int8", False),
}
DEFAULT_INT8 = "u8u8"
SATURATING = ("u8s8", "s8s8")  # may saturate in int16 on AVX2-only CPUs


def int8_scheme(name: str, ctx: TransformContext, allowed: tuple[str, ...]) -> str:
    scheme = ctx.arg or DEFAULT_INT8
    if scheme not in allowed:
        raise ConfigError(f"{name}:{ctx.arg}: not an int8 scheme for {name}",
                          hint=f"schemes: {', '.join(allowed)} (default {DEFAULT_INT8})")
    return scheme


def _warn_saturation(name: str, scheme: str, ctx: TransformContext) -> None:
    if scheme in SATURATING:

        here = ("this CPU is one of them: the quality measured here is what they get"
                if int8_kind() == "avx2" else
                "the quality measured here does not hold there")
        ctx.warnings.append(f"{name}:{scheme} multiplies u8 by full-range s8, which saturates "
                            f"on x86 CPUs without VNNI (AVX2 only); {here}. The default "
                            f"({DEFAULT_INT8}) gives the same numbers on every CPU")


def _qtype(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    return QuantType.QUInt8 if name == "uint8" else QuantType.QInt8


class DynamicInt8:
    name = "int8-dynamic"
    fmt = "onnx"
    schemes = ("u8u8", "u8s8-reduced", "u8s8")  # dynamic activations are always u8

    def variant(self, ctx: TransformContext) -> str:
        scheme = int8_scheme(self.name, ctx, self.schemes)
        return "int8" if scheme == DEFAULT_INT8 else f"int8-{scheme}"

    def apply(self, src: Path, dst: Path, ctx: TransformContext) -> dict[str, Any]:
        from onnxruntime.quantization import quantize_dynamic

        scheme = int8_scheme(self.name, ctx, self.schemes)
        activation, weight, reduce = INT8_SCHEMES[scheme]
        _warn_saturation(self.name, scheme, ctx)
        # Per-channel scales: per-tensor ones cost MiniLM's embeddings 0.97-0.98 cosine
        # similarity against 0.99 (measured on real sentences), for the same size.
        _quantize("int8 dynamic quantization", src, dst,
                  lambda pre: quantize_dynamic(pre, str(dst), weight_type=_qtype(weight),
                                               per_channel=True, reduce_range=reduce))
        return {"kind": "quantize", "method": "dynamic", "scheme": scheme,
                "weight_type": weight, "activation_type": activation, "per_channel": True,
                "reduce_range": reduce}


class StaticInt8:
    name = "int8-static"
    fmt = "onnx"
    schemes = tuple(INT8_SCHEMES)

    def variant(self, ctx: TransformContext) -> str:
        scheme = int8_scheme(self.name, ctx, self.schemes)
        return "int8-static" if scheme == DEFAULT_INT8 else f"int8-static-{scheme}"

    def apply(self, src: Path, dst: Path, ctx: TransformContext) -> dict[str, Any]:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

        scheme = int8_scheme(self.name, ctx, self.schemes)
        activation, weight, reduce = INT8_SCHEMES[scheme]
        _warn_saturation(self.name, scheme, ctx)
        batches = list(ctx.calibration)

        class Reader(CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self.it = iter(batches)

            def get_next(self) -> Feeds | None:
                return next(self.it, None)

        _quantize("int8 static quantization", src, dst,
                  lambda pre: quantize_static(pre, str(dst), Reader(),
                                              quant_format=QuantFormat.QDQ,
                                              activation_type=_qtype(activation),
                                              weight_type=_qtype(weight), per_channel=True,
                                              reduce_range=reduce))
        return {"kind": "quantize", "method": "static", "scheme": scheme,
                "weight_type": weight, "activation_type": activation, "format": "qdq",
                "per_channel": True, "reduce_range": reduce,
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

        try:
            save_ort_format(src, dst)
        except Exception as exc:
            raise TransformFailed(f"ORT format conversion failed: {first_line(exc)}") from None
        return {"kind": "ort-format", "optimization": "basic", "onnxruntime": ort.__version__}


TRANSFORMS: dict[str, Transform] = {
    t.name: t for t in (DynamicInt8(), StaticInt8(), Float16(), GraphOptimize(),
                        MagnitudePrune(), OrtFormat())
}

