"""One loaded model version: an onnxruntime session and the signature it enforces."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mx.errors import ConfigError
from mx.serve.tensors import Tensor


@dataclass
class ServedModel:
    name: str
    version: str
    path: Path
    session: Any  # onnxruntime.InferenceSession
    inputs: list[Tensor]
    outputs: list[Tensor]
    load_seconds: float

    @property
    def batchable(self) -> bool:
        """Requests can be stacked when every input's first axis is symbolic."""
        return all(t.shape and isinstance(t.shape[0], str) for t in self.inputs)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = self.session.run([t.name for t in self.outputs], feeds)
        return {t.name: a for t, a in zip(self.outputs, arrays, strict=True)}

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "versions": [self.version], "platform": "onnxruntime_onnx",
                "inputs": [t.describe() for t in self.inputs],
                "outputs": [t.describe() for t in self.outputs]}


def _tensors(args: Any) -> list[Tensor]:
    out = []
    for a in args:
        # onnxruntime says "tensor(float)"; map through numpy's names
        dtype = _ORT_TYPES.get(a.type, a.type)
        shape = tuple(d if isinstance(d, int) else (d or f"dim{i}") for i, d in
                      enumerate(a.shape))
        out.append(Tensor(a.name, dtype, shape))
    return out


_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
    "tensor(string)": "string",
}


def open_model(name: str, version: str, path: Path, threads: int = 0) -> ServedModel:
    import onnxruntime as ort

    start = time.perf_counter()
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), sess_options=opts,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors carry no type worth keeping
        raise ConfigError(f"{name} {version}: onnxruntime cannot load {path.name}: "
                          f"{str(exc).splitlines()[0]}") from None
    return ServedModel(name, version, path, session, _tensors(session.get_inputs()),
                       _tensors(session.get_outputs()), time.perf_counter() - start)


def resolve_model(spec: str, registry: str | None, variant: str | None,
                  threads: int = 0) -> ServedModel:
    """`ns/name@range` through the cache (installing if needed), or a local model directory."""
    local = Path(spec)
    if (local / "mx.yaml").is_file():
        from mx.manifest import load_manifest

        m = load_manifest(local).manifest
        arts = [a for a in m.artifacts if a.format == "onnx" and
                (variant is None or a.variant == variant)]
        if not arts:
            raise ConfigError(f"{local}: no ONNX artifact" + (f" of variant {variant}"
                                                               if variant else ""))
        return open_model(m.name, str(m.version), local / arts[0].path, threads)
    from mx.client.install import install

    installed = install(spec, variant=variant, format="onnx", registry=registry)
    return open_model(installed.name, installed.version, installed.artifact("onnx"), threads)
