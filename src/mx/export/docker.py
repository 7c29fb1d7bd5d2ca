"""A Docker build context that runs `mx serve` on one verified model, and a KServe
`ServingRuntime` so KServe can run mx-described models with `mx serve`.

Layout of `<out>/`:

- `Dockerfile`: a slim Python base pinned by tag, `mx[serve]` from `requirements.txt`
  (pinned to this mx's version), a non-root user (uid 10001), `EXPOSE 8080`, and a
  `HEALTHCHECK` on `/v2/health/ready`.
- baked (the default): `model/`, the installed model folder (artifacts, `mx.yaml`, card),
  with `mx.lock` recording where each file came from and its sha256; the build checks
  every file against `SHA256SUMS` (the same digests) and fails on any difference.
- `--fetch-at-start`: `project/mx.toml` and `project/mx.lock`; `start.sh` installs exactly
  what the lock names from the registry (sha256-verified) when the container starts.
- `.dockerignore` (only the files above are sent to the builder), `servingruntime.yaml`,
  and `inferenceservice.yaml` when `--storage-uri` says where `model/` will be uploaded.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from mx import __version__, yamlio
from mx.client.project import render_lock
from mx.errors import ConfigError
from mx.export.base import ExportOptions, ModelSource
from mx.export.kserve import service_name
from mx.fsutil import sha256_file
from mx.names import MANIFEST_FILE

BASE_IMAGE = "python:3.12-slim-bookworm"
PORT = 8080
UID = 10001
SERVED = "/srv/model"  # where the baked model lives in the image
KSERVE_MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts a model
RUNTIME_NAME = "mx-serve"
_IMAGE_RE = re.compile(r"[a-z0-9][a-z0-9._/-]{0,200}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?")
_HEALTH = ("import sys, urllib.request; sys.exit(urllib.request.urlopen("
           f"'http://127.0.0.1:{PORT}/v2/health/ready', timeout=3).status != 200)")


def image_name(source: ModelSource, opts: ExportOptions) -> str:
    """The tag to build the image as: `--image`, or `mx-<name>:<version>`."""
    if opts.image is not None:
        if not _IMAGE_RE.fullmatch(opts.image):
            raise ConfigError(f"--image {opts.image[:80]!r} is not an image reference",
                              hint="e.g. registry.example.com/team/iris-serve:1.1.0")
        return opts.image
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", source.version)[:128]
    return f"mx-{service_name(source, opts)}:{tag}"


def serve_args(model_dir: str, source: ModelSource, opts: ExportOptions) -> list[str]:
    """`mx serve`'s arguments in the container (after `mx serve`)."""
    return [model_dir, "--variant", source.variant, "--host", "0.0.0.0", "--port", str(PORT),
            "--max-batch-size", str(opts.max_batch_size),
            "--max-queue-delay-ms", f"{opts.max_queue_delay_us / 1000:g}"]


def dockerfile(source: ModelSource, opts: ExportOptions) -> str:
    q = _json_list
    head = [
        f"# written by mx {__version__}: `mx serve` on {source.name} {source.version} "
        f"({source.variant})",
        f"# build: docker build -t {image_name(source, opts)} .",
        f"FROM {BASE_IMAGE}",
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \\",
        "    PIP_DISABLE_PIP_VERSION_CHECK=1",
        f"RUN useradd --create-home --uid {UID} --user-group mx",
        "WORKDIR /srv",
        "COPY requirements.txt /srv/requirements.txt",
        "RUN pip install --no-cache-dir -r /srv/requirements.txt",
    ]
    if opts.fetch_at_start:
        body = [
            f"COPY --chown={UID}:{UID} project/ /srv/project/",
            "COPY start.sh /srv/start.sh",
            f"USER {UID}:{UID}",
            f"EXPOSE {PORT}",
        ]
        cmd = ["sh", "/srv/start.sh"]
    else:
        body = [
            f"COPY model/ {SERVED}/",
            "COPY mx.lock SHA256SUMS /srv/",
            "# every baked file must match its sha256 in mx.lock (SHA256SUMS lists the same)",
            "RUN sha256sum --check --strict SHA256SUMS",
            f"USER {UID}:{UID}",
            f"EXPOSE {PORT}",
        ]
        cmd = ["mx", "serve", *serve_args(SERVED, source, opts)]
    tail = [
        "HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \\",
        f"    CMD {q(['python', '-c', _HEALTH])}",
        f"CMD {q(cmd)}",
    ]
    return "\n".join(head + body + tail) + "\n"


def _json_list(items: list[str]) -> str:
    return json.dumps(items)


def start_script(source: ModelSource, opts: ExportOptions, registry: str) -> str:
    args = " ".join(_sh(a) for a in serve_args(f"{source.name}@{source.version}", source, opts))
    return ("#!/bin/sh\n"
            "# written by mx: install exactly what mx.lock names (each file checked against "
            "its sha256),\n# then serve it\n"
            "set -eu\n"
            "mx install --locked --project /srv/project\n"
            f"exec mx serve {args} --registry {_sh(registry)}\n")


def _sh(word: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:@=+^-]+", word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def serving_runtime(source: ModelSource, opts: ExportOptions) -> dict[str, Any]:
    """A KServe ServingRuntime running `mx serve` on the model KServe mounts."""
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": RUNTIME_NAME,
                     "labels": {"app.kubernetes.io/managed-by": "mx"},
                     "annotations": {"mx.dev/version": __version__}},
        "spec": {
            "supportedModelFormats": [{"name": "mx", "version": "1", "autoSelect": True}],
            "protocolVersions": ["v2"],
            "containers": [{
                "name": "kserve-container",
                "image": image_name(source, opts),
                "command": ["mx"],
                "args": ["serve", *serve_args(KSERVE_MODEL_DIR, source, opts)],
                "ports": [{"containerPort": PORT, "protocol": "TCP"}],
                "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": PORT},
                                   "periodSeconds": 10},
                "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": PORT},
                                  "periodSeconds": 15},
                "securityContext": {"runAsNonRoot": True, "runAsUser": UID,
                                    "allowPrivilegeEscalation": False},
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                              "limits": {"cpu": "1", "memory": "2Gi"}},
            }],
        },
    }


def inference_service(source: ModelSource, opts: ExportOptions) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": service_name(source, opts),
                     "labels": {"app.kubernetes.io/managed-by": "mx"},
                     "annotations": {"mx.dev/model": source.name,
                                     "mx.dev/version": source.version,
                                     "mx.dev/variant": source.variant}},
        "spec": {"predictor": {"minReplicas": opts.instances, "model": {
            "modelFormat": {"name": "mx"}, "protocolVersion": "v2",
            "runtime": RUNTIME_NAME, "storageUri": opts.storage_uri}}},
    }


class DockerExporter:
    name = "docker"

    def destination(self, source: ModelSource, out: Path, opts: ExportOptions) -> Path:
        if opts.fetch_at_start and source.lock is None:
            raise ConfigError(f"--fetch-at-start: {source.name} {source.version} is a local "
                              "model directory, with no registry to fetch it from",
                              hint="export ns/name@RANGE from a registry, or bake it in "
                                   "(leave out --fetch-at-start)")
        image_name(source, opts)  # a bad --image fails before anything is written
        return out

    def write(self, source: ModelSource, stage: Path, opts: ExportOptions) -> list[str]:
        notes: list[str] = []
        image = image_name(source, opts)
        sent = ["Dockerfile", "requirements.txt"]
        if opts.fetch_at_start:
            assert source.lock is not None  # destination() refused otherwise
            project = stage / "project"
            project.mkdir()
            (project / "mx.toml").write_text(_project_toml(source))
            (project / "mx.lock").write_text(render_lock([source.lock]))
            (stage / "start.sh").write_text(start_script(source, opts, source.lock["registry"]))
            sent += ["project", "start.sh"]
            notes.append(f"the container installs {source.name} {source.version} from "
                         f"{source.lock['registry']} when it starts: it must reach it")
        else:
            sums = _bake(source, stage / "model")
            (stage / "SHA256SUMS").write_text(
                "".join(f"{sha}  model/{path}\n" for path, sha in sorted(sums.items())))
            if source.lock is not None:
                (stage / "mx.lock").write_text(render_lock([source.lock]))
            else:
                (stage / "mx.lock").write_text(
                    "# Written by mx export docker: a local model directory has no registry "
                    "record.\n# SHA256SUMS lists the digests of the files baked in.\n")
                notes.append("a local model directory: SHA256SUMS holds the digests of its "
                             "files as exported, with no registry record to compare them to")
            sent += ["model", "mx.lock", "SHA256SUMS"]
        (stage / "requirements.txt").write_text(
            f"# written by mx: the mx that wrote this export\nmx[serve]=={__version__}\n")
        (stage / "Dockerfile").write_text(dockerfile(source, opts))
        (stage / ".dockerignore").write_text(
            "# written by mx: send the builder only what the Dockerfile copies\n*\n"
            + "".join(f"!{name}\n" + (f"!{name}/**\n" if (stage / name).is_dir() else "")
                      for name in sent))
        (stage / "servingruntime.yaml").write_text(
            f"# written by mx: push {image}, then kubectl apply -f servingruntime.yaml\n"
            + yamlio.dump_text(serving_runtime(source, opts)))
        if opts.storage_uri:
            (stage / "inferenceservice.yaml").write_text(
                f"# written by mx: upload model/ to {opts.storage_uri}, then "
                "kubectl apply -f inferenceservice.yaml\n"
                + yamlio.dump_text(inference_service(source, opts)))
        if opts.gpu:
            notes.append("mx serve runs onnxruntime on the CPU: --gpu is ignored")
        return [*notes, f"build it in the export folder: `docker build -t {image} .` "
                        f"(requirements.txt installs mx[serve]=={__version__} from your "
                        "package index)"]


def _bake(source: ModelSource, dest: Path) -> dict[str, str]:
    """Copy the installed folder into `dest`; {path: sha256} of what was copied, checked
    against the lock's record when there is one."""
    recorded = {f["path"]: f["sha256"] for f in (source.lock or {}).get("file", [])}
    sums: dict[str, str] = {}
    for rel, src in sorted(source.files.items()):
        parts = PurePosixPath(rel).parts
        if PurePosixPath(rel).is_absolute() or ".." in parts or not parts:
            raise ConfigError(f"{source.name} {source.version}: file path {rel!r} leaves the "
                              "model folder")
        target = dest.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        sha, _ = sha256_file(target)
        if rel in recorded and recorded[rel] != sha:
            raise ConfigError(f"{src}: sha256 {sha} is not {recorded[rel]}, as mx.lock records",
                              hint="the cache was changed: `mx cache verify`, then export again")
        sums[rel] = sha
    if MANIFEST_FILE not in sums:
        (dest / MANIFEST_FILE).write_text(yamlio.dump_text(source.manifest))
    return sums


def _project_toml(source: ModelSource) -> str:
    import tomli_w

    assert source.lock is not None
    return ("# written by mx export docker: the model start.sh installs by mx.lock\n"
            + tomli_w.dumps({"registry": source.lock["registry"], "models": {
                source.name: {"version": source.version, "variant": source.variant}}}))
