"""A KServe `InferenceService` for the Triton runtime, with the repository it points at.

Layout: `<out>/inferenceservice.yaml` and `<out>/model-repository/<model-name>/...`;
upload `model-repository` to `--storage-uri`, then `kubectl apply -f` the manifest.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from mx import yamlio
from mx.errors import ConfigError
from mx.export.base import ExportOptions, ModelSource
from mx.export.triton import triton_name, write_repository_entry

REPOSITORY = "model-repository"


def service_name(source: ModelSource, opts: ExportOptions) -> str:
    """A DNS-1123 label (Kubernetes object names): lower-case, digits and '-', <= 63."""
    raw = (opts.model_name or source.name.replace("/", "-")).lower()
    name = re.sub(r"[^a-z0-9-]+", "-", raw).strip("-")[:63].rstrip("-")
    if not name or not name[0].isalpha():
        name = f"m-{name}"[:63]
    return name


def manifest(source: ModelSource, opts: ExportOptions, size: int) -> dict[str, Any]:
    memory = f"{max(1, math.ceil(size * 4 / 2**30))}Gi"  # weights, a copy, and arenas
    resources: dict[str, Any] = {"requests": {"cpu": "1", "memory": memory},
                                 "limits": {"cpu": "1", "memory": memory}}
    if opts.gpu:
        resources["limits"]["nvidia.com/gpu"] = "1"
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": service_name(source, opts),
            "labels": {"app.kubernetes.io/managed-by": "mx"},
            "annotations": {"mx.dev/model": source.name, "mx.dev/version": source.version,
                            "mx.dev/variant": source.variant},
        },
        "spec": {"predictor": {
            "minReplicas": opts.instances,
            "model": {
                "modelFormat": {"name": "triton"},
                "protocolVersion": "v2",
                "runtime": "kserve-tritonserver",
                "storageUri": opts.storage_uri,
                "resources": resources,
            },
        }},
    }


class KServeExporter:
    name = "kserve"

    def destination(self, source: ModelSource, out: Path, opts: ExportOptions) -> Path:
        if not opts.storage_uri:
            raise ConfigError("mx export kserve needs --storage-uri: where you will upload "
                              f"{out / REPOSITORY}",
                              hint="e.g. --storage-uri s3://models/triton or pvc://models/triton")
        return out

    def write(self, source: ModelSource, stage: Path, opts: ExportOptions) -> list[str]:
        name = triton_name(source, opts)
        notes = write_repository_entry(source, stage / REPOSITORY / name, name, opts)
        doc = manifest(source, opts, source.onnx.stat().st_size)
        (stage / "inferenceservice.yaml").write_text(
            f"# written by mx: upload {REPOSITORY}/ to {opts.storage_uri}, then "
            "kubectl apply -f inferenceservice.yaml\n"
            + yamlio.dump_text(doc))
        return [*notes, f"upload {REPOSITORY}/ to {opts.storage_uri}, then "
                        "`kubectl apply -f inferenceservice.yaml`"]
