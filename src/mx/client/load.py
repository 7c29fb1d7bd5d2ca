"""`mx.load`: install if needed, then open the ONNX artifact in onnxruntime."""

from __future__ import annotations

from typing import Any

from mx.client.install import install


def load(spec: str, *, variant: str | None = None, registry: str | None = None,
         offline: bool | None = None, providers: list[str] | None = None,
         **session_options: Any) -> Any:
    """An `onnxruntime.InferenceSession` for `ns/name@range` (CPU unless `providers` says)."""
    installed = install(spec, variant=variant, format="onnx", registry=registry,
                        offline=offline)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    for key, value in session_options.items():
        setattr(opts, key, value)
    return ort.InferenceSession(str(installed.artifact("onnx")), sess_options=opts,
                                providers=providers or ["CPUExecutionProvider"])
