"""int8 quantization settings against fp32 on this CPU: which keep quality where.

x86 CPUs without VNNI (AVX2 only) multiply u8 activations by s8 weights with VPMADDUBSW,
which adds two products into a saturating int16: 255 * 127 * 2 overflows it, so s8
weights with the full 8-bit range lose accuracy there and nowhere else. This script
measures, on the models the tests use and on real models shipped in tests/fixtures, every
setting that avoids or shrinks that: per-channel or per-tensor scales, reduce_range
(7-bit weights), U8U8 (unsigned weights, widened without saturation) and static QDQ.

    .venv/bin/python bench/int8_variants.py [--models mlp,linear,cnn,ppocr,minilm]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from mx.cpufeatures import cpu_features  # noqa: E402

Feeds = dict[str, np.ndarray]
FIXTURES = ROOT / "tests" / "fixtures" / "models"

# name -> (method, keyword arguments of quantize_dynamic / quantize_static)
SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "dyn s8 per-channel": ("dynamic", {"per_channel": True, "reduce_range": False}),
    "dyn s8 per-channel reduce_range": ("dynamic", {"per_channel": True, "reduce_range": True}),
    "dyn s8 per-tensor": ("dynamic", {"per_channel": False, "reduce_range": False}),
    "dyn s8 per-tensor reduce_range": ("dynamic", {"per_channel": False, "reduce_range": True}),
    "dyn u8u8 per-channel": ("dynamic", {"per_channel": True, "weight_type": "u8"}),
    "dyn u8u8 per-tensor": ("dynamic", {"per_channel": False, "weight_type": "u8"}),
    "qdq s8s8 per-channel": ("static", {"per_channel": True}),
    "qdq u8s8 per-channel reduce_range": ("static", {"per_channel": True, "reduce_range": True,
                                                     "activation_type": "u8"}),
    "qdq u8u8 per-channel": ("static", {"per_channel": True, "activation_type": "u8",
                                        "weight_type": "u8"}),
}


def _torch_model(name: str, out: Path) -> tuple[Path, list[Feeds], str]:
    import torch
    from tests.models import torch_models

    model, example = getattr(torch_models, name)()[:2]
    names = list(example) if isinstance(example, dict) else ["input"]
    args = tuple(example.values()) if isinstance(example, dict) else example
    torch.onnx.export(model, args, str(out), input_names=names, dynamo=False,
                      dynamic_axes={n: {0: "batch"} for n in names})
    # mx optimize measures on 4 seeded batches of 8 N(0, 1) inputs when given no data
    shape = list(args[0].shape)
    rng = [np.random.default_rng(1000 + i) for i in range(4)]
    batches = [{names[0]: r.standard_normal([8, *shape[1:]]).astype(np.float32)} for r in rng]
    return out, batches, "agreement_top1"


def _linear(out: Path) -> tuple[Path, list[Feeds], str]:
    from tests.support.examples import linear_classifier

    linear_classifier(out)
    # the edge bundle test's inputs: uniform [0, 1)
    batches = [{"input": np.random.default_rng(i).random((8, 4), dtype=np.float32)}
               for i in range(4)]
    return out, batches, "max_abs_error"


def _ppocr(out: Path) -> tuple[Path, list[Feeds], str]:
    # PaddleOCR's text-direction classifier (real weights); images are normalised to [-1, 1]
    rng = np.random.default_rng(0)
    batches = [{"x": rng.uniform(-1, 1, (8, 3, 48, 192)).astype(np.float32)} for _ in range(4)]
    return FIXTURES / "ppocr_mobile_v2_cls.onnx", batches, "agreement_top1"


def _minilm(out: Path) -> tuple[Path, list[Feeds], str]:
    import torch
    from tests.models import minilm

    model, example, extra = minilm.build()
    torch.onnx.export(model, tuple(example.values()), str(out), input_names=list(example),
                      output_names=extra["output_names"], dynamic_axes=extra["dynamic_axes"],
                      dynamo=False, opset_version=17)
    feeds = minilm.tokenize(minilm.SENTENCES, 64)
    return out, [feeds], "cosine_similarity"


MODELS: dict[str, Callable[[Path], tuple[Path, list[Feeds], str]]] = {
    "mlp": lambda out: _torch_model("mlp", out),
    "cnn": lambda out: _torch_model("cnn", out),
    "linear": _linear,
    "ppocr": _ppocr,
    "minilm": _minilm,
}


def _quantize(src: Path, dst: Path, method: str, kw: dict[str, Any],
              batches: list[Feeds]) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    types = {"s8": QuantType.QInt8, "u8": QuantType.QUInt8}
    kw = dict(kw)
    weight = types[kw.pop("weight_type", "s8")]
    if method == "dynamic":
        quantize_dynamic(str(src), str(dst), weight_type=weight, **kw)
        return
    act = types[kw.pop("activation_type", "s8")]

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self) -> Feeds | None:
            return next(self.it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=act, weight_type=weight, **kw)


def _score(metric: str, a: np.ndarray, b: np.ndarray) -> float:
    if metric == "agreement_top1":
        return float(np.mean(np.argmax(a, -1) == np.argmax(b, -1)))
    if metric == "cosine_similarity":
        x, y = a.reshape(len(a), -1), b.reshape(len(b), -1)
        return float(np.mean(np.sum(x * y, 1) / (np.linalg.norm(x, axis=1) *
                                                np.linalg.norm(y, axis=1))))
    return float(np.max(np.abs(a - b)))


def _p50_ms(run: Callable[[Feeds], Any], feeds: Feeds, n: int = 20) -> float:
    import time

    run(feeds)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        run(feeds)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def main() -> None:
    import onnxruntime as ort

    from mx.optimize.transforms import _preprocessed
    from mx.runtimes import onnx_runner

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mlp,linear,cnn,ppocr")
    args = ap.parse_args()
    feats = cpu_features()
    print(f"onnxruntime {ort.__version__}; CPU features: {', '.join(feats) or 'none known'}")
    print(f"{'model':<8} {'setting':<36} {'metric':<18} {'value':>8} {'max abs err':>12} "
          f"{'p50 ms':>8}")
    with tempfile.TemporaryDirectory(prefix="mx-int8-") as tmp:
        t = Path(tmp)
        for name in args.models.split(","):
            src, batches, metric = MODELS[name](t / f"{name}.onnx")
            pre = _preprocessed(src, t)
            parent = onnx_runner(src)
            expected = [parent(b)[0] for b in batches]
            print(f"{name:<8} {'fp32':<36} {'':<18} {'':>8} {'':>12} "
                  f"{_p50_ms(parent, batches[0]):>8.2f}")
            for label, (method, kw) in SETTINGS.items():
                dst = t / f"{name}.q.onnx"
                try:
                    _quantize(pre, dst, method, kw, batches)
                    run = onnx_runner(dst)
                    got = [run(b)[0] for b in batches]
                except Exception as exc:
                    print(f"{name:<8} {label:<36} failed: {str(exc).splitlines()[0][:60]}")
                    continue
                a, b = np.concatenate(expected), np.concatenate(got)
                print(f"{name:<8} {label:<36} {metric:<18} {_score(metric, a, b):>8.4f} "
                      f"{_score('max_abs_error', a, b):>12.4f} "
                      f"{_p50_ms(run, batches[0]):>8.2f}")


if __name__ == "__main__":
    main()
