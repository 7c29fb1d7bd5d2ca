"""OpenTelemetry traces of inference requests, for every protocol (the core makes them).

On when the standard variables ask for traces: OTEL_TRACES_EXPORTER (anything but `none`),
OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; off with
OTEL_SDK_DISABLED=true, and off (nothing imported) when none is set. It needs the `otel`
extra (opentelemetry-sdk and the OTLP/HTTP exporter); asked for without it, `mx serve`
refuses to start and says so. The rest is the SDK's own configuration: OTEL_SERVICE_NAME
(default `mx-serve`) and OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_*,
OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout; protocol http/protobuf unless it says
grpc, which needs opentelemetry-exporter-otlp-proto-grpc), OTEL_PROPAGATORS (default W3C
tracecontext and baggage). OTEL_TRACES_EXPORTER names span exporters as the SDK does
(`otlp`, `console`, or any installed `opentelemetry_traces_exporter` entry point).

One request's spans:

    infer        SERVER span, a child of the caller's `traceparent` when it sends one
    ├ queue wait from joining the model's queue to leaving it to run
    ├ batch run  the onnxruntime run the request's rows were part of (shared by the
    │            requests of one batch: each gets its own span with the same times)
    └ encode     building the answer

Attributes: `mx.model`, `mx.model_version`, `mx.rows` (the request's rows), `mx.batch_rows`
and `mx.batch_requests` (the run's), `mx.status` (the HTTP-style status; 500 and up mark the
span an error).

A protocol calls `begin` when a request arrives (with its headers or metadata), wraps its
encoding in `span("encode")`, and the core's `run` and `record` do the rest. The request
in flight is a context variable, so concurrent requests (asyncio tasks) never mix.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mx import __version__
from mx.errors import ConfigError
from mx.serve.batcher import Feeds, RunTimes

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

SERVICE_NAME = "mx-serve"
EXPORTER_GROUP = "opentelemetry_traces_exporter"
OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the OTEL_* variables in `env` ask for traces."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER")
    if exporters is not None:
        return any(e.strip() not in ("", "none") for e in exporters.split(","))
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


@dataclass
class _Request:
    span: Span
    context: Context  # the request span's, parent of the others


_current: ContextVar[_Request | None] = ContextVar("mx_serve_trace", default=None)
_NO_SPAN: AbstractContextManager[None] = nullcontext()


class Tracing:
    """Spans of inference requests through `tracer`; without one every call does nothing."""

    def __init__(self, tracer: Tracer | None = None, provider: Any = None) -> None:
        self.tracer = tracer
        self.provider = provider  # flushed and shut down by `close`

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def times(self) -> RunTimes | None:
        """What the batcher fills in for a request in flight (None: not traced)."""
        return RunTimes() if self.tracer is not None and _current.get() is not None else None

    def begin(self, model: str, carrier: Mapping[str, str] | None = None) -> None:
        """Start a request's span; `carrier` (headers, gRPC metadata as a mapping) may hold
        the caller's `traceparent`, which the span then continues."""
        if self.tracer is None:
            return
        from opentelemetry.propagate import extract
        from opentelemetry.trace import SpanKind, set_span_in_context

        parent = extract(carrier) if carrier is not None else None
        span = self.tracer.start_span("infer", context=parent, kind=SpanKind.SERVER,
                                      attributes={"mx.model": model})
        _current.set(_Request(span, set_span_in_context(span)))

    def ran(self, version: str, feeds: Feeds, times: RunTimes | None) -> None:
        """The queue wait and batch run spans of a request that went through the batcher."""
        req = _current.get()
        if req is None or times is None or self.tracer is None:
            return
        rows = next(iter(feeds.values())).shape[0] if feeds else 1
        req.span.set_attributes({"mx.model_version": version, "mx.rows": int(rows)})
        now = time.time_ns()
        if times.queued:
            self.tracer.start_span("queue wait", context=req.context,
                                   start_time=times.queued).end(times.started or now)
        if times.ran:
            batch = {"mx.batch_rows": times.batch_rows,
                     "mx.batch_requests": times.batch_requests}
            req.span.set_attributes(batch)
            self.tracer.start_span("batch run", context=req.context, start_time=times.ran,
                                   attributes=batch).end(times.done or now)

    def span(self, name: str) -> AbstractContextManager[None]:
        """A child span of the request in flight (none when there is none)."""
        if self.tracer is None:
            return _NO_SPAN  # no generator to start and stop a request when tracing is off
        return self._span(name)

    @contextmanager
    def _span(self, name: str) -> Iterator[None]:
        req = _current.get()
        if req is None or self.tracer is None:
            yield
            return
        span = self.tracer.start_span(name, context=req.context)
        try:
            yield
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            span.end()

    def finish(self, version: str, status: int, message: str | None) -> None:
        """End the request's span with its status."""
        req = _current.get()
        if req is None:
            return
        _current.set(None)
        from opentelemetry.trace import Status, StatusCode

        req.span.set_attribute("mx.status", status)
        if version:
            req.span.set_attribute("mx.model_version", version)
        if status >= 500:
            req.span.set_status(Status(StatusCode.ERROR, message))
        req.span.end()

    def close(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def from_env(env: Mapping[str, str] | None = None) -> Tracing:
    """Tracing as the OTEL_* variables say (off, importing nothing, when they do not ask)."""
    env = os.environ if env is None else env
    if not wanted(env):
        return Tracing()
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError("the OTEL_* variables ask for traces, which need the 'otel' extra "
                          "(opentelemetry-sdk is not installed)",
                          hint="pip install 'mx[otel]', or set OTEL_SDK_DISABLED=true") from None

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for exporter in _exporters(env):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider.get_tracer("mx.serve", __version__), provider)


def _exporters(env: Mapping[str, str]) -> list[Any]:
    from importlib.metadata import entry_points

    out = []
    for name in (n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")):
        if name in ("", "none"):
            continue
        target = name
        if name == "otlp":
            protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip()
            if protocol not in OTLP_BY_PROTOCOL:
                raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol[:40]!r}: mx sends "
                                  "traces over http/protobuf or grpc")
            target = OTLP_BY_PROTOCOL[protocol]
        found = list(entry_points(group=EXPORTER_GROUP, name=target))
        if not found:
            package = {"otlp_proto_http": "opentelemetry-exporter-otlp-proto-http",
                       "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc"}
            raise ConfigError(f"OTEL_TRACES_EXPORTER={name[:40]}: no span exporter "
                              f"{target!r} is installed",
                              hint=f"pip install {package[target]}" if target in package
                              else "exporters: otlp, console, none")
        out.append(found[0].load()())
    return out
