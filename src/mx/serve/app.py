"""The Starlette app: V2 routes, request limits, metrics and structured logs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mx import __version__
from mx.errors import MxError
from mx.infer.model import LoadedModel
from mx.infer.signature import BadInput
from mx.serve.batcher import Batcher, BatchPolicy
from mx.serve.intake import HEADER_LENGTH, BodyBudget, Offload, Refused, read_body
from mx.serve.metrics import Metrics
from mx.serve.registry import ModelSet, Served
from mx.serve.tensors import model_metadata

log = logging.getLogger("mx.serve")


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 64 << 20
    policy: BatchPolicy = field(default_factory=BatchPolicy)
    workers: int = 4  # threads running onnxruntime
    inflight_bytes: int = 128 << 20  # request bodies held at once; at least max_body_bytes
    header_timeout: float = 10.0  # seconds from connecting to the end of the request head
    body_timeout: float = 60.0  # seconds from the request head to the end of its body


class Server:
    """State shared by the routes; `load` adds a model version without stopping traffic."""

    def __init__(self, limits: ServeLimits, loader: Callable[[str], LoadedModel]) -> None:
        self.limits, self.loader = limits, loader
        self.models = ModelSet()
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(limits.workers, thread_name_prefix="mx-ort")
        self.budget = BodyBudget(limits.inflight_bytes)
        self.metrics.body_bytes.set_function(lambda: self.budget.used)
        self.offload = Offload()

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.offload.close()

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


def _respond(header: bytes, blobs: list[bytes]) -> Response:
    if not blobs:
        return Response(header, media_type="application/json")
    return Response(header + b"".join(blobs), media_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(header))})


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
        limits = server.limits
        try:
            with server.budget.hold() as held:  # until the answer is built: arrays live on
                raw = await read_body(request, limits.max_body_bytes, limits.body_timeout, held)
                decoded = await server.offload.decode(raw, request.headers.get(HEADER_LENGTH),
                                                      model.inputs)
                del raw
                outputs = await found.batcher.infer(decoded.feeds)
                head = {"model_name": model.name, "model_version": model.version,
                        **decoded.extra}
                response = _respond(*await server.offload.encode(head, model.outputs, outputs,
                                                                 decoded.wanted))
        except Refused as exc:
            status, message = exc.status, exc.message
            server.metrics.rejected.labels(exc.reason).inc()
            response = _error(exc.status, exc.message)
            response.headers.update(exc.headers)
        except ClientDisconnect:
            status, message = 499, "the client disconnected before sending the whole body"
            response = _error(499, message)  # nobody reads it; 499 labels metrics and logs
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
