"""One loaded model version: an onnxruntime session and the signature it enforces."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mx.client.install import install
from mx.errors import ConfigError
from mx.manifest import load_manifest
from mx.names import NAME_RE
from mx.tensorspec import Value


@dataclass
class LoadedModel:
    name: str
    version: str
    path: Path
    session: Any  # onnxruntime.InferenceSession
    inputs: list[Value]
    outputs: list[Value]
    load_seconds: float
    # The model's folder, where its mx.yaml lies: the local directory, or the installed
    # variant folder (the artifact may be in a subfolder of either).
    root: Path | None = None

    @property
    def batchable(self) -> bool:
        """Requests can be stacked when every input's first axis is symbolic."""
        return all(t.shape and isinstance(t.shape[0], str) for t in self.inputs)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output by name; `feeds` must already have passed `check_feeds`."""
        arrays = self.session.run([t.name for t in self.outputs], dict(feeds))
        return {t.name: a for t, a in zip(self.outputs, arrays, strict=True)}


_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
    "tensor(string)": "string",
}


def _tensors(args: Any) -> list[Value]:
    out = []
    for a in args:
        # onnxruntime says "tensor(float)"; map through numpy's names
        dtype = _ORT_TYPES.get(a.type, a.type)
        shape = tuple(d if isinstance(d, int) else (d or f"dim{i}") for i, d in
                      enumerate(a.shape))
        out.append(Value(a.name, dtype, shape))
    return out


def open_model(name: str, version: str, path: Path, threads: int = 0,
               providers: list[str] | None = None,
               session_options: Mapping[str, Any] | None = None,
               spin: bool = True, root: Path | None = None) -> LoadedModel:
    import onnxruntime as ort

    start = time.perf_counter()
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    if not spin:
        # A server between requests: spinning threads would burn the cores the event
        # loop needs (measured: 4.6 -> 2.9 ms of server CPU per small-CNN request).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    for key, value in (session_options or {}).items():
        setattr(opts, key, value)
    try:
        session = ort.InferenceSession(str(path), sess_options=opts,
                                       providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors carry no type worth keeping
        raise ConfigError(f"{name} {version}: onnxruntime cannot load {path.name}: "
                          f"{str(exc).splitlines()[0]}") from None
    return LoadedModel(name, version, path, session, _tensors(session.get_inputs()),
                       _tensors(session.get_outputs()), time.perf_counter() - start, root)


def local_onnx(model_dir: Path, variant: str | None) -> tuple[str, str, Path]:
    """(name, version, ONNX file) of a model directory's manifest."""

    m = load_manifest(model_dir).manifest
    arts = [a for a in m.artifacts if a.format == "onnx" and
            (variant is None or a.variant == variant)]
    if not arts:
        raise ConfigError(f"{model_dir}: no ONNX artifact" +
                          (f" of variant {variant}" if variant else ""),
                          hint="run `mx convert` first, or pick another --variant")
    return m.name, str(m.version), model_dir / arts[0].path


def is_local_spec(spec: str) -> bool:
    """A model folder, not `ns/name@range`: anything that is not a model name, or that is
    written as a path (`./acme/iris`, `/srv/m`, `~/m`). A folder that merely happens to be
    called like a model (`acme/iris` in the working directory) never shadows the registry."""
    if spec.startswith(("/", ".", "~")):
        return True
    return not NAME_RE.match(spec.partition("@")[0])


def resolve_model(spec: str, registry: str | None = None, variant: str | None = None,
                  threads: int = 0, providers: list[str] | None = None,
                  session_options: Mapping[str, Any] | None = None,
                  offline: bool | None = None, spin: bool = True) -> LoadedModel:
    """`ns/name@range` through the cache (installing if needed), or a local model directory."""
    if is_local_spec(spec):
        root = Path(spec).expanduser()
        name, version, path = local_onnx(root, variant)
    else:

        installed = install(spec, variant=variant, format="onnx", registry=registry,
                            offline=offline)
        name, version, path = installed.name, installed.version, installed.artifact("onnx")
        root = installed.path
    return open_model(name, version, path, threads, providers, session_options, spin, root)
