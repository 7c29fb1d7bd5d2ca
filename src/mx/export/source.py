"""The model an export starts from: `ns/name@range` through the verified cache, or a
model directory with an mx.yaml."""

from __future__ import annotations

from pathlib import Path

from mx.client.install import install
from mx.client.project import lock_entry
from mx.errors import ConfigError
from mx.export.base import ModelSource
from mx.infer.model import is_local_spec, local_onnx
from mx.manifest import load_manifest
from mx.names import DEFAULT_VARIANT, MANIFEST_FILE


def open_source(spec: str, registry: str | None = None,
                variant: str | None = None) -> ModelSource:
    if is_local_spec(spec):
        return _local(Path(spec).expanduser(), variant)

    first = install(spec, variant=variant, format="onnx", registry=registry)
    exact = f"{first.name}@{first.version}"

    def fetch(fmt: str, var: str) -> Path:
        return install(exact, variant=var, format=fmt, registry=registry).artifact(fmt)

    return ModelSource(first.name, first.version, first.variant, first.manifest or {},
                       first.artifact("onnx"), fetch, dict(first.files),
                       lock_entry(first, first.version))


def _local(model_dir: Path, variant: str | None) -> ModelSource:

    name, version, onnx = local_onnx(model_dir, variant)
    manifest = load_manifest(model_dir).manifest.model_dump(mode="json", exclude_none=True)

    def fetch(fmt: str, var: str) -> Path:
        for a in manifest["artifacts"]:
            if a["format"] == fmt and a.get("variant", DEFAULT_VARIANT) == var:
                return model_dir / str(a["path"])
        raise ConfigError(f"{model_dir}: no {fmt} artifact of variant {var}")

    chosen = next(a.get("variant", DEFAULT_VARIANT) for a in manifest["artifacts"]
                  if model_dir / a["path"] == onnx)
    files = {str(a["path"]): model_dir / str(a["path"]) for a in manifest["artifacts"]
             if a.get("variant", DEFAULT_VARIANT) == chosen}
    files[MANIFEST_FILE] = model_dir / MANIFEST_FILE
    return ModelSource(name, version, chosen, manifest, onnx, fetch, files)
