"""The KServe V2 REST protocol over the inference core: routes, request bodies, answers.

A plain ASGI application, not a framework's: on a small JSON request the framework's
layers (middleware, request objects, routing by trying each pattern) cost as much as the
request's own work. Routes are matched in the order below, as Starlette's `{name:path}`
patterns were (a model name may hold slashes); a known path asked with another method
gets 405 with Allow, an unknown path 404; GET routes answer HEAD too.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mx.errors import BadInput
from mx.serve.conn import BODY_RECEIVED
from mx.serve.core import InferenceCore, ServeError
from mx.serve.guard import TIMEOUT_HEADER, client_key, parse_timeout_header
from mx.serve.intake import HEADER_LENGTH, ClientDisconnect, Refused, read_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[["Call"], Awaitable[None]]

_HEADER_LENGTH = HEADER_LENGTH.lower()
_TIMEOUT_HEADER = TIMEOUT_HEADER.lower()
_JSON = b"application/json"


class Call:
    """One request: its path parameters, headers (lower-case names, first value kept) and
    the ASGI channels; `answer` sends a whole response at once."""

    __slots__ = ("headers", "params", "receive", "scope", "send")

    def __init__(self, scope: Scope, receive: Receive, send: Send,
                 params: dict[str, str]) -> None:
        self.scope, self.receive, self.send, self.params = scope, receive, send, params
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1")
            if key not in headers:
                headers[key] = value.decode("latin-1")
        self.headers = headers

    def header(self, name: str) -> str | None:
        """A header by any case of its name."""
        return self.headers.get(name.lower())

    @property
    def peer(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None

    async def answer(self, status: int, body: bytes, content_type: bytes = _JSON,
                     headers: dict[str, str] | None = None) -> None:
        raw = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        if headers:
            raw += [(k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in headers.items()]
        await self.send({"type": "http.response.start", "status": status, "headers": raw})
        await self.send({"type": "http.response.body", "body": body})

    async def json(self, doc: Any, status: int = 200,
                   headers: dict[str, str] | None = None) -> None:
        body = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        await self.answer(status, body.encode(), _JSON, headers)

    async def error(self, status: int, message: str,
                    headers: dict[str, str] | None = None) -> None:
        await self.json({"error": message}, status, headers)


def _route(pattern: str) -> re.Pattern[str]:
    """A path pattern as Starlette wrote it: {name:path} matches across slashes, {x} not."""
    regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.*)", pattern)
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex) + "$")


class App:
    """The KServe V2 REST routes over `core` (an ASGI application)."""

    def __init__(self, core: InferenceCore) -> None:
        self.core = core
        get, post = frozenset({"GET", "HEAD"}), frozenset({"POST"})
        table: list[tuple[str, frozenset[str], Handler]] = [
            ("/v2/health/live", get, self.live),
            ("/v2/health/ready", get, self.ready),
            ("/v2", get, self.server_meta),
            ("/metrics", get, self.metrics),
            ("/v2/repository/models/{name:path}/load", post, self.repo_load),
            ("/v2/models/{name:path}/versions/{version}/infer", post, self.infer),
            ("/v2/models/{name:path}/versions/{version}/ready", get, self.model_ready),
            ("/v2/models/{name:path}/versions/{version}", get, self.metadata),
            ("/v2/models/{name:path}/infer", post, self.infer),
            ("/v2/models/{name:path}/ready", get, self.model_ready),
            ("/v2/models/{name:path}", get, self.metadata),
        ]
        self.routes = [(_route(p), methods, h) for p, methods, h in table]
        # POST .../infer carries the load: tried first (no route before them takes POST
        # on such a path, so the answer is the one the whole table gives)
        self.infer_routes = [r for r, _, h in self.routes if h == self.infer]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method == "POST" and path.endswith("/infer"):
            for regex in self.infer_routes:
                if m := regex.match(path):
                    await self._handle(self.infer, Call(scope, receive, send, m.groupdict()))
                    return
        allowed: set[str] = set()
        for regex, methods, handler in self.routes:
            m = regex.match(path)
            if m is None:
                continue
            if method not in methods:
                allowed |= methods
                continue
            await self._handle(handler, Call(scope, receive, send, m.groupdict()))
            return
        call = Call(scope, receive, send, {})
        if allowed:
            await call.answer(405, b"Method Not Allowed", b"text/plain; charset=utf-8",
                              {"Allow": ", ".join(sorted(allowed))})
        else:
            await call.answer(404, b"Not Found", b"text/plain; charset=utf-8")

    @staticmethod
    async def _handle(handler: Handler, call: Call) -> None:
        try:
            await handler(call)
        except Exception:
            # what Starlette's error middleware did: a plain 500, the traceback logged
            await call.answer(500, b"Internal Server Error", b"text/plain; charset=utf-8")
            raise

    # -- health, metadata, metrics --------------------------------------------------------

    async def live(self, call: Call) -> None:
        await call.json({"live": True})

    async def ready(self, call: Call) -> None:
        ok, body = self.core.readiness()
        await call.json(body, 200 if ok else 503)

    async def server_meta(self, call: Call) -> None:
        await call.json(self.core.server_metadata())

    async def metadata(self, call: Call) -> None:
        try:
            meta = self.core.model_metadata(call.params["name"], call.params.get("version"))
        except ServeError as exc:
            await call.error(exc.status, exc.message)
            return
        await call.json(meta)

    async def model_ready(self, call: Call) -> None:
        try:
            found = self.core.find(call.params["name"], call.params.get("version"))
        except ServeError as exc:
            await call.error(exc.status, exc.message)
            return
        await call.json({"name": found.model.name, "version": found.model.version,
                         "ready": True})

    async def metrics(self, call: Call) -> None:
        metrics = self.core.metrics
        await call.answer(200, metrics.render(), metrics.content_type.encode())

    async def repo_load(self, call: Call) -> None:
        name = call.params["name"]
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(None, self.core.reload,
                                                                      name)
        except ServeError as exc:
            await call.error(exc.status, exc.message)
            return
        await call.json({"name": loaded.name, "version": loaded.version, "loaded": True})

    # -- inference ----------------------------------------------------------------------

    async def infer(self, call: Call) -> None:
        core = self.core
        start, arrived = core.clock(), time.monotonic()
        name, headers = call.params["name"], call.headers
        core.tracing.begin(name, headers)  # OpenTelemetry, when OTEL_* ask for it
        try:
            found = core.find(name, call.params.get("version"))
            if core.limiter is not None:  # whose request it is matters to the rate limit only
                core.admit(found.model.name, client_key(call.header, call.peer,
                                                        core.limits.guard.key_header))
        except ServeError as exc:
            core.record(name, "", exc.status, 0.0, exc.message)
            await call.error(exc.status, exc.message, exc.headers)
            return
        model = found.model
        status, message, extra = 200, None, None
        limits = core.limits
        try:
            asked = parse_timeout_header(headers.get(_TIMEOUT_HEADER))
            with core.budget.hold() as held:  # until the answer is built: arrays live on
                raw = await read_body(call.receive, headers.get("content-length"),
                                      limits.max_body_bytes, limits.body_timeout, held,
                                      BODY_RECEIVED in call.scope.get("extensions", ()))
                decoded = await core.offload.decode(raw, headers.get(_HEADER_LENGTH),
                                                    model.inputs)
                del raw
                until = core.deadline(arrived, asked, decoded.timeout)
                outputs = await core.run(found, decoded.feeds, until)
                head = {"model_name": model.name, "model_version": model.version,
                        **decoded.extra}
                with core.tracing.span("encode"):
                    header, blobs = await core.offload.encode(head, model.outputs, outputs,
                                                              decoded.wanted)
        except Refused as exc:
            status, message, extra = exc.status, exc.message, exc.headers
            core.metrics.rejected.labels(exc.reason).inc()
        except ServeError as exc:  # shed: rate, queue or deadline
            status, message, extra = exc.status, exc.message, exc.headers
        except ClientDisconnect:
            # nobody reads the answer; 499 labels metrics and logs
            status, message = 499, "the client disconnected before sending the whole body"
        except BadInput as exc:
            status, message = 400, exc.message
        except Exception as exc:  # onnxruntime failed on input that passed the checks
            status, message = 500, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        core.record(model.name, model.version, status, core.clock() - start, message)
        if message is not None:
            await call.error(status, message, extra)
        elif not blobs:
            await call.answer(200, header)
        else:
            await call.answer(200, header + b"".join(blobs), b"application/octet-stream",
                              {HEADER_LENGTH: str(len(header))})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop (the CLI owns the core), but say so to who asks."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def build_app(core: InferenceCore) -> App:
    """The KServe V2 REST routes over `core`."""
    return App(core)
