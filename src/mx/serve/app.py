"""The KServe V2 REST protocol over the inference core: routes, request bodies, answers."""

from __future__ import annotations

import asyncio
import time

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mx.errors import BadInput
from mx.serve.core import InferenceCore, ServeError
from mx.serve.guard import TIMEOUT_HEADER, client_key, parse_timeout_header
from mx.serve.intake import HEADER_LENGTH, Refused, read_body


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _respond(header: bytes, blobs: list[bytes]) -> Response:
    if not blobs:
        return Response(header, media_type="application/json")
    return Response(header + b"".join(blobs), media_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(header))})


def build_app(core: InferenceCore) -> Starlette:
    """The KServe V2 REST routes over `core`."""

    async def live(_: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(_: Request) -> Response:
        ok, body = core.readiness()
        return JSONResponse(body, status_code=200 if ok else 503)

    async def server_meta(_: Request) -> Response:
        return JSONResponse(core.server_metadata())

    def _version(request: Request) -> str | None:
        version: str | None = request.path_params.get("version")
        return version

    async def metadata(request: Request) -> Response:
        try:
            return JSONResponse(core.model_metadata(request.path_params["name"],
                                                    _version(request)))
        except ServeError as exc:
            return _error(exc.status, exc.message)

    async def model_ready(request: Request) -> Response:
        try:
            found = core.find(request.path_params["name"], _version(request))
        except ServeError as exc:
            return _error(exc.status, exc.message)
        return JSONResponse({"name": found.model.name, "version": found.model.version,
                             "ready": True})

    async def infer(request: Request) -> Response:
        start, arrived = core.clock(), time.monotonic()
        name = request.path_params["name"]
        core.tracing.begin(name, request.headers)  # OpenTelemetry, when OTEL_* ask for it
        try:
            found = core.find(name, _version(request))
            core.admit(found.model.name, client_key(
                request.headers.get, request.client.host if request.client else None,
                core.limits.guard.key_header))
        except ServeError as exc:
            core.record(name, "", exc.status, 0.0, exc.message)
            return _error(exc.status, exc.message, exc.headers)
        model = found.model
        status, message = 200, None
        limits = core.limits
        try:
            asked = parse_timeout_header(request.headers.get(TIMEOUT_HEADER))
            with core.budget.hold() as held:  # until the answer is built: arrays live on
                raw = await read_body(request, limits.max_body_bytes, limits.body_timeout, held)
                decoded = await core.offload.decode(raw, request.headers.get(HEADER_LENGTH),
                                                    model.inputs)
                del raw
                until = core.deadline(arrived, asked, decoded.timeout)
                outputs = await core.run(found, decoded.feeds, until)
                head = {"model_name": model.name, "model_version": model.version,
                        **decoded.extra}
                with core.tracing.span("encode"):
                    response = _respond(*await core.offload.encode(
                        head, model.outputs, outputs, decoded.wanted))
        except Refused as exc:
            status, message = exc.status, exc.message
            core.metrics.rejected.labels(exc.reason).inc()
            response = _error(exc.status, exc.message)
            response.headers.update(exc.headers)
        except ServeError as exc:  # shed: rate, queue or deadline
            status, message = exc.status, exc.message
            response = _error(exc.status, exc.message, exc.headers)
        except ClientDisconnect:
            status, message = 499, "the client disconnected before sending the whole body"
            response = _error(499, message)  # nobody reads it; 499 labels metrics and logs
        except BadInput as exc:
            status, message = 400, exc.message
            response = _error(400, exc.message)
        except Exception as exc:  # onnxruntime failed on input that passed the checks
            status, message = 500, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            response = _error(500, message)
        core.record(model.name, model.version, status, core.clock() - start, message)
        return response

    async def repo_load(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(None, core.reload, name)
        except ServeError as exc:
            return _error(exc.status, exc.message)
        return JSONResponse({"name": loaded.name, "version": loaded.version, "loaded": True})

    async def metrics(_: Request) -> Response:
        return Response(core.metrics.render(), media_type=core.metrics.content_type)

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
