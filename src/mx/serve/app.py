"""The Starlette app: V2 routes, request limits, metrics and structured logs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mx import __version__
from mx.errors import MxError
from mx.infer.model import LoadedModel
from mx.infer.signature import BadInput
from mx.serve.batcher import Batcher, BatchPolicy
from mx.serve.metrics import Metrics
from mx.serve.registry import ModelSet, Served
from mx.serve.tensors import decode_request, encode_outputs, model_metadata

log = logging.getLogger("mx.serve")


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 64 << 20
    policy: BatchPolicy = field(default_factory=BatchPolicy)
    workers: int = 4  # threads running onnxruntime


class TooLarge(Exception):
    pass


class Server:
    """State shared by the routes; `load` adds a model version without stopping traffic."""

    def __init__(self, limits: ServeLimits, loader: Callable[[str], LoadedModel]) -> None:
        self.limits, self.loader = limits, loader
        self.models = ModelSet()
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(limits.workers, thread_name_prefix="mx-ort")

    def attach(self, model: LoadedModel, spec: str, make_default: bool = True) -> None:
        labels = (model.name, model.version)
        batcher = Batcher(model, self.limits.policy, self.executor,
                          on_batch=lambda rows: self.metrics.batch_size.labels(*labels)
                          .observe(rows))
        self.metrics.load_seconds.labels(*labels).set(model.load_seconds)
        self.models.add(Served(model, batcher), spec, make_default)
        log.info(json.dumps({"event": "loaded", "model": model.name, "version": model.version,
                             "load_seconds": round(model.load_seconds, 4)}))

    def load(self, spec: str, make_default: bool = True) -> LoadedModel | None:
        try:
            model = self.loader(spec)
        except MxError as exc:
            # by model name when the spec has one, so /v2/models/<name>/ready can say why
            self.models.failed[spec.split("@")[0]] = exc.message
            log.warning(json.dumps({"event": "load_failed", "spec": spec,
                                    "error": exc.message}))
            return None
        self.attach(model, spec, make_default)
        return model


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


HEADER_LENGTH = "Inference-Header-Content-Length"  # Triton's binary tensor extension


def _split_binary(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON header, binary tensors) of a request body."""
    if header_length is None:
        return raw, b""
    if not header_length.isdigit() or int(header_length) > len(raw):
        raise BadInput(f"{HEADER_LENGTH}: {header_length!r} is not a length within the "
                       f"{len(raw)}-byte body")
    n = int(header_length)
    return raw[:n], raw[n:]


def _respond(payload: dict[str, Any], blobs: list[bytes]) -> Response:
    if not blobs:
        return JSONResponse(payload)
    header = json.dumps(payload, separators=(",", ":")).encode()
    return Response(header + b"".join(blobs), media_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(header))})


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(server: Server) -> Starlette:
    models = server.models

    async def live(_: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(_: Request) -> Response:
        body = {"ready": models.ready, "models": sorted(models.versions),
                "not_ready": dict(sorted(models.failed.items()))}
        return JSONResponse(body, status_code=200 if models.ready else 503)

    async def server_meta(_: Request) -> Response:
        return JSONResponse({"name": "mx", "version": __version__,
                             "extensions": ["model_repository", "binary_tensor_data"]})

    def _find(request: Request) -> Served | Response:
        name = request.path_params["name"]
        version = request.path_params.get("version")
        if name in models.failed:
            return _error(503, f"model {name!r} is not ready: {models.failed[name]}")
        if name not in models.versions:
            return _error(404, f"unknown model {name!r}; serving: "
                          + (", ".join(sorted(models.versions)) or "none"))
        served = models.get(name, version)
        if served is None:
            return _error(404, f"model {name!r} has no version {version!r}; serving: "
                          + ", ".join(sorted(models.versions[name])))
        return served

    async def metadata(request: Request) -> Response:
        found = _find(request)
        if isinstance(found, Response):
            return found
        meta = model_metadata(found.model)
        if request.path_params.get("version") is None:
            meta["versions"] = sorted(models.versions[found.model.name])
        return JSONResponse(meta)

    async def model_ready(request: Request) -> Response:
        found = _find(request)
        return found if isinstance(found, Response) else JSONResponse(
            {"name": found.model.name, "version": found.model.version, "ready": True})

    async def infer(request: Request) -> Response:
        start = time.perf_counter()
        name = request.path_params["name"]
        found = _find(request)
        if isinstance(found, Response):
            server.metrics.requests.labels(name, "", str(found.status_code)).inc()
            return found
        model = found.model
        status, message = 200, None
        try:
            raw = await _body(request, server.limits.max_body_bytes)
            header, binary = _split_binary(raw, request.headers.get(HEADER_LENGTH))
            try:
                body = json.loads(header)
            except ValueError as exc:
                raise BadInput(f"malformed JSON: {exc}") from None
            feeds, wanted = decode_request(body, model.inputs, binary)
            outputs = await found.batcher.infer(feeds)
            entries, blobs = encode_outputs(model.outputs, outputs, wanted)
            payload: dict[str, Any] = {"model_name": model.name, "model_version": model.version,
                                       "outputs": entries}
            if isinstance(body, dict) and "id" in body:
                payload["id"] = body["id"]
            response = _respond(payload, blobs)
        except TooLarge:
            status = 413
            message = f"request body over {server.limits.max_body_bytes} bytes"
            response = _error(413, message + "; raise --max-body-mb or send smaller batches")
        except BadInput as exc:
            status, message = 400, exc.message
            response = _error(400, exc.message)
        except Exception as exc:  # onnxruntime failed on input that passed the checks
            status, message = 500, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            response = _error(500, message)
        elapsed = time.perf_counter() - start
        server.metrics.requests.labels(model.name, model.version, str(status)).inc()
        server.metrics.latency.labels(model.name, model.version).observe(elapsed)
        log.info(json.dumps({"event": "infer", "model": model.name, "version": model.version,
                             "status": status, "ms": round(elapsed * 1000, 3),
                             **({"error": message} if message else {})}))
        return response

    async def repo_load(request: Request) -> Response:
        name = request.path_params["name"]
        route = models.routes.get(name)
        spec = route.spec if route else name
        loaded = await asyncio.get_running_loop().run_in_executor(None, server.load, spec)
        if loaded is None:
            return _error(400, f"{spec}: {models.failed.get(spec.split('@')[0], 'failed')}")
        return JSONResponse({"name": loaded.name, "version": loaded.version, "loaded": True})

    async def metrics(_: Request) -> Response:
        return Response(server.metrics.render(), media_type=server.metrics.content_type)

    routes = [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_meta),
        Route("/metrics", metrics),
        Route("/v2/repository/models/{name:path}/load", repo_load, methods=["POST"]),
        Route("/v2/models/{name:path}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name:path}/versions/{version}/ready", model_ready),
        Route("/v2/models/{name:path}/versions/{version}", metadata),
        Route("/v2/models/{name:path}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name:path}/ready", model_ready),
        Route("/v2/models/{name:path}", metadata),
    ]
    return Starlette(routes=routes)
