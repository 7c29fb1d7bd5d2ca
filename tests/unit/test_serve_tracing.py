"""OpenTelemetry spans of inference requests, through the core's REST routes in-process,
recorded by the SDK's in-memory exporter."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from mx.errors import ConfigError
from mx.infer.model import LoadedModel, resolve_model
from mx.serve.app import build_app
from mx.serve.batcher import BatchPolicy
from mx.serve.core import InferenceCore, ServeLimits
from mx.serve.tracing import Tracing, from_env, wanted
from tests.support.examples import model_folder

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = model_folder(tmp_path)
    return d


@pytest.fixture
def traced(model_dir: Path) -> Iterator[tuple[InferenceCore, InMemorySpanExporter]]:
    def loader(spec: str) -> LoadedModel:
        return resolve_model(str(model_dir), spin=False)

    core = InferenceCore(ServeLimits(workers=1, policy=BatchPolicy(max_delay=0.05)), loader)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    core.tracing = Tracing(provider.get_tracer("test"), provider)
    assert core.load(str(model_dir)) is not None
    yield core, exporter
    core.close()


def _body(rows: int) -> dict[str, object]:
    x = np.random.default_rng(rows).random((rows, 4), np.float32)
    return {"inputs": [{"name": "input", "shape": [rows, 4], "datatype": "FP32",
                        "data": x.ravel().tolist()}]}


def _tree(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    by_name = {s.name: s for s in spans}
    assert sorted(by_name) == ["batch run", "encode", "infer", "queue wait"], by_name
    return by_name


def test_a_request_makes_a_span_tree_continuing_the_callers_trace(
        traced: tuple[InferenceCore, InMemorySpanExporter]) -> None:
    core, exporter = traced
    client = TestClient(build_app(core))
    r = client.post("/v2/models/acme/iris/infer", json=_body(3),
                    headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"})
    assert r.status_code == 200, r.text
    spans = _tree(exporter.get_finished_spans())
    root = spans["infer"]
    assert root.context is not None and root.parent is not None
    assert f"{root.context.trace_id:032x}" == TRACE_ID  # the caller's trace, continued
    assert f"{root.parent.span_id:016x}" == CALLER_SPAN and root.parent.is_remote
    for name in ("queue wait", "batch run", "encode"):
        child = spans[name]
        assert child.parent is not None and child.parent.span_id == root.context.span_id
        assert child.context is not None and child.context.trace_id == root.context.trace_id
    assert dict(root.attributes or {}) == {
        "mx.model": "acme/iris", "mx.model_version": "1.0.0", "mx.rows": 3,
        "mx.batch_rows": 3, "mx.batch_requests": 1, "mx.status": 200}
    assert dict(spans["batch run"].attributes or {}) == {"mx.batch_rows": 3,
                                                        "mx.batch_requests": 1}
    wait, run = spans["queue wait"], spans["batch run"]
    assert wait.start_time is not None and wait.end_time is not None
    assert run.start_time is not None and run.end_time is not None
    assert wait.start_time <= wait.end_time <= run.start_time <= run.end_time
    assert root.start_time is not None and root.end_time is not None
    assert root.start_time <= wait.start_time and run.end_time <= root.end_time


def test_without_traceparent_a_new_trace_and_errors_are_marked(
        traced: tuple[InferenceCore, InMemorySpanExporter]) -> None:
    core, exporter = traced
    client = TestClient(build_app(core))
    assert client.post("/v2/models/acme/iris/infer", json=_body(2)).status_code == 200
    first = _tree(exporter.get_finished_spans())["infer"]
    assert first.parent is None
    exporter.clear()
    missing = client.post("/v2/models/acme/nope/infer", json=_body(1))
    assert missing.status_code == 404
    (only,) = exporter.get_finished_spans()
    assert only.name == "infer" and dict(only.attributes or {}) == {"mx.model": "acme/nope",
                                                                   "mx.status": 404}
    exporter.clear()
    bad = client.post("/v2/models/acme/iris/infer", json={"inputs": [
        {"name": "input", "shape": [1, 5], "datatype": "FP32", "data": [0.0] * 5}]})
    assert bad.status_code == 400
    (only,) = exporter.get_finished_spans()
    assert dict(only.attributes or {})["mx.status"] == 400


def test_requests_sharing_a_batch_each_get_their_spans(
        traced: tuple[InferenceCore, InMemorySpanExporter]) -> None:
    import asyncio

    core, exporter = traced
    served = core.find("acme/iris", None)

    async def one(rows: int) -> None:
        core.tracing.begin("acme/iris", {})
        await core.run(served, {"input": np.ones((rows, 4), np.float32)})
        core.record("acme/iris", "1.0.0", 200, 0.0, None)

    async def both() -> None:
        await asyncio.gather(asyncio.create_task(one(2)), asyncio.create_task(one(3)))

    # its own thread: a fresh event loop whatever the test process's main thread holds
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, both()).result(timeout=60)
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.name == "infer"]
    runs = [s for s in spans if s.name == "batch run"]
    assert len(roots) == 2 and len(runs) == 2
    assert {s.parent.span_id for s in runs if s.parent} == {
        r.context.span_id for r in roots if r.context}
    assert {dict(r.attributes or {})["mx.rows"] for r in roots} == {2, 3}
    for r in runs:
        assert dict(r.attributes or {}) == {"mx.batch_rows": 5, "mx.batch_requests": 2}


def test_the_otel_variables_decide() -> None:
    assert not wanted({})
    assert not wanted({"OTEL_SERVICE_NAME": "x"})
    assert wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert not wanted({"OTEL_TRACES_EXPORTER": "none"})
    assert not wanted({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"})
    assert not from_env({}).enabled
    on = from_env({"OTEL_TRACES_EXPORTER": "console"})
    assert on.enabled
    on.close()
    otlp = from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})  # http/protobuf
    assert otlp.enabled
    otlp.provider.shutdown()  # nothing was recorded; no export is tried
    with pytest.raises(ConfigError, match="no span exporter 'zipkin'"):
        from_env({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(ConfigError, match="http/protobuf or grpc"):
        from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


def test_asked_for_without_the_extra_it_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.resources", None)  # not installed
    with pytest.raises(ConfigError, match="need the 'otel' extra") as exc:
        from_env({"OTEL_TRACES_EXPORTER": "otlp"})
    assert exc.value.hint is not None and "OTEL_SDK_DISABLED=true" in exc.value.hint
    assert not from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}).enabled


def test_without_otel_variables_nothing_is_imported(model_dir: Path) -> None:
    code = ("import sys\n"
            "from mx.infer.model import resolve_model\n"
            "from mx.serve.app import build_app\n"
            "from mx.serve.core import InferenceCore, ServeLimits\n"
            "core = InferenceCore(ServeLimits(workers=1),\n"
            "                     lambda s: resolve_model(s, spin=False))\n"
            f"core.load({str(model_dir)!r})\n"
            "build_app(core)\n"
            "assert not core.tracing.enabled\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2] / "src"),
                                         env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_unbatched_runs_are_traced_too(model_dir: Path) -> None:
    core = InferenceCore(ServeLimits(workers=1, policy=BatchPolicy(max_batch=1)),
                         lambda spec: resolve_model(spec, spin=False))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    core.tracing = Tracing(provider.get_tracer("test"), provider)
    try:
        assert core.load(str(model_dir)) is not None
        r = TestClient(build_app(core)).post("/v2/models/acme/iris/infer", json=_body(4))
        assert r.status_code == 200
        spans = _tree(exporter.get_finished_spans())
        assert dict(spans["batch run"].attributes or {}) == {"mx.batch_rows": 4,
                                                            "mx.batch_requests": 1}
    finally:
        core.close()


def test_spans_reach_an_otlp_http_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    got: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("OTEL_SERVICE_NAME", "iris-serving")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        tracing = from_env()
        tracing.begin("acme/iris", {"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"})
        tracing.finish("1.0.0", 200, None)
        tracing.close()  # flushes
    finally:
        server.shutdown()
    assert [path for path, _ in got] == ["/v1/traces"]
    sent = ExportTraceServiceRequest.FromString(got[0][1])
    (resource,) = sent.resource_spans
    service = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert service["service.name"] == "iris-serving"
    (span,) = resource.scope_spans[0].spans
    assert span.name == "infer" and span.trace_id.hex() == TRACE_ID
