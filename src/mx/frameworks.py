"""Heavy frameworks are optional extras: import them here, with an error that names the extra.

`mx` itself needs only numpy, onnx and onnxruntime. Converters and the PyTorch bench
backend import torch, tensorflow, jax or scikit-learn through `require`, so a missing
framework is one clear line (`pip install 'mx[torch]'`), never a bare ImportError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mx.errors import MissingFramework

# import name -> (what it is, the extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("PyTorch", "torch"),
    "onnxscript": ("onnxscript (PyTorch's dynamo ONNX exporter)", "torch"),
    "tensorflow": ("TensorFlow", "tensorflow"),
    "tf2onnx": ("tf2onnx", "tensorflow"),
    "jax": ("JAX", "jax"),
    "jax2onnx": ("jax2onnx", "jax"),
    "sklearn": ("scikit-learn", "sklearn"),
    "skl2onnx": ("skl2onnx", "sklearn"),
}



def require(module: str) -> ModuleType:
    """Import `module`, or raise MissingFramework naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".", 1)[0]
        what, extra = EXTRAS.get(top, (top, "all"))
        if exc.name is not None and exc.name.split(".", 1)[0] != top:
            # The framework is there but one of its own dependencies is not.
            raise MissingFramework(
                f"{what} is installed but cannot be imported: {exc}",
                hint=f"reinstall it with: pip install 'mx[{extra}]'",
            ) from None
        raise MissingFramework(
            f"{what} is not installed; this step needs it",
            hint=f"install the extra: pip install 'mx[{extra}]'",
        ) from None


def version_of(module: str) -> str:
    """The installed version of a framework, or "" when it is absent."""
    from importlib import metadata

    dist = {"torch": "torch", "tensorflow": "tensorflow-cpu", "jax": "jax",
            "sklearn": "scikit-learn"}.get(module, module)
    for name in (dist, module, "tensorflow"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return ""
