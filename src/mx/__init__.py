"""mx: Git-native exchange for machine-learning models.

The public API is small and imported lazily, so `import mx` stays cheap:

    import mx
    paths = mx.install("acme/sentiment@^1.4")      # verified, cached files
    session = mx.load("acme/sentiment@^1.4")       # onnxruntime, inputs checked
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The one place the version is written: pyproject.toml reads it (statically, so keep it a
# string literal); the CLI, `mx serve`, `mx init` and exports import it.
__version__ = "0.1.0"
__all__ = ["InstalledModel", "Manifest", "MxError", "Session", "install", "load",
           "load_manifest", "validate"]

if TYPE_CHECKING:
    from mx.client.install import InstalledModel, install
    from mx.errors import MxError
    from mx.infer.session import Session, load
    from mx.manifest import Manifest, load_manifest
    from mx.validate import validate_model as validate

_LAZY = {
    "install": ("mx.client.install", "install"),
    "InstalledModel": ("mx.client.install", "InstalledModel"),
    "load": ("mx.infer.session", "load"),
    "Session": ("mx.infer.session", "Session"),
    "Manifest": ("mx.manifest", "Manifest"),
    "load_manifest": ("mx.manifest", "load_manifest"),
    "validate": ("mx.validate", "validate_model"),
    "MxError": ("mx.errors", "MxError"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'mx' has no attribute {name!r}")
