"""The inference core and its REST routes in-process, through Starlette's TestClient: no
server process, no sockets, a real onnxruntime model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from starlette.testclient import TestClient

from mx.errors import ConfigError
from mx.infer.model import LoadedModel, resolve_model
from mx.serve.app import build_app
from mx.serve.core import InferenceCore, ServeError, ServeLimits
from tests.support.examples import model_folder


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = model_folder(tmp_path)
    return d


@pytest.fixture
def core(model_dir: Path) -> Iterator[InferenceCore]:
    def loader(spec: str) -> LoadedModel:
        if spec == "acme/broken":
            raise ConfigError("acme/broken: no such model in the test")
        return resolve_model(str(model_dir), spin=False)

    c = InferenceCore(ServeLimits(workers=1), loader)
    assert c.load(str(model_dir)) is not None
    yield c
    c.close()


def test_find_and_metadata_without_a_protocol(core: InferenceCore) -> None:
    assert core.find("acme/iris", None).model.version == "1.0.0"
    with pytest.raises(ServeError) as missing:
        core.find("acme/nope", None)
    assert missing.value.status == 404 and "serving: acme/iris" in missing.value.message
    with pytest.raises(ServeError) as version:
        core.find("acme/iris", "9.9.9")
    assert version.value.status == 404
    meta = core.model_metadata("acme/iris", None)
    assert meta["versions"] == ["1.0.0"] and meta["inputs"][0]["datatype"] == "FP32"
    assert core.readiness()[0] is True


def test_rest_routes_over_the_core(core: InferenceCore, model_dir: Path) -> None:
    client = TestClient(build_app(core))
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2").json()["extensions"] == ["model_repository", "binary_tensor_data"]
    x = np.random.default_rng(0).random((3, 4), np.float32)
    body = {"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP32",
                        "data": x.ravel().tolist()}]}
    r = client.post("/v2/models/acme/iris/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    direct = ort.InferenceSession(str(model_dir / "model.onnx")).run(None, {"input": x})[0]
    assert np.allclose(np.array(out["data"], np.float32).reshape(out["shape"]), direct)
    bad = client.post("/v2/models/acme/iris/infer", json={"inputs": [
        {"name": "input", "shape": [1, 5], "datatype": "FP32", "data": [0.0] * 5}]})
    assert bad.status_code == 400 and "input" in bad.json()["error"]
    assert client.get("/v2/models/acme/nope").status_code == 404
    metrics = client.get("/metrics").text
    assert 'mx_requests_total{model="acme/iris",status="200",version="1.0.0"} 1.0' in metrics
    assert 'mx_requests_total{model="acme/iris",status="400",version="1.0.0"} 1.0' in metrics


def test_a_model_that_fails_to_load_is_reported(core: InferenceCore) -> None:
    assert core.load("acme/broken") is None
    client = TestClient(build_app(core))
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503
    assert ready.json()["not_ready"] == {"acme/broken": "acme/broken: no such model in the test"}
    r = client.post("/v2/models/acme/broken/infer", json={"inputs": []})
    assert r.status_code == 503 and "is not ready" in r.json()["error"]
    again = client.post("/v2/repository/models/acme/broken/load")
    assert again.status_code == 400 and "no such model" in again.json()["error"]
    # a name the server was not started with is not resolved: one request would
    # otherwise list it as failed, and /v2/health/ready would say 503 from then on
    made_up = client.post("/v2/repository/models/acme/made-up/load")
    assert made_up.status_code == 404 and "unknown model 'acme/made-up'" in made_up.text
    assert client.get("/v2/health/ready").json()["not_ready"] == {
        "acme/broken": "acme/broken: no such model in the test"}


def test_routes_answer_as_the_starlette_app_did(core: InferenceCore) -> None:
    """The plain ASGI app keeps the framework's answers: 404 and 405 (with Allow) in
    text, HEAD on GET routes, paths matched in order ({name:path} across slashes)."""
    with TestClient(build_app(core)) as client:  # lifespan: started and stopped
        missing = client.get("/v2/nothing")
        assert (missing.status_code, missing.text) == (404, "Not Found")
        assert missing.headers["content-type"] == "text/plain; charset=utf-8"
        wrong = client.post("/v2/health/live")
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, HEAD")
        assert client.get("/v2/models/acme/iris/infer").status_code == 404  # metadata of a
        # model named acme/iris/infer, as before; POST on metadata is 405
        assert client.post("/v2/models/acme/iris").status_code == 405
        head = client.head("/v2/health/live")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len(b'{"live":true}')
        for path in ("/v2/models/acme/iris/versions/1.0.0/ready",
                     "/v2/models/acme/iris/ready"):
            assert client.get(path).json() == {"name": "acme/iris", "version": "1.0.0",
                                               "ready": True}
        assert client.get("/v2/models/acme/iris/versions/1.0.0").json()["versions"] == [
            "1.0.0"]
        body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                            "data": [1, 2, 3, 4]}], "id": "r-\u00e9"}
        for path in ("/v2/models/acme/iris/versions/1.0.0/infer", "/v2/models/acme/iris/infer"):
            r = client.post(path, json=body)
            assert r.status_code == 200 and r.json()["id"] == "r-\u00e9"
            assert r.headers["content-type"] == "application/json"
        r = client.post("/v2/models/acme/iris/versions/9.9.9/infer", json=body)
        assert r.status_code == 404 and "has no version '9.9.9'" in r.json()["error"]


def test_the_request_log_line_is_json(core: InferenceCore,
                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="mx.serve"):
        for status, message in [(200, None), (400, 'input "x": \u00e9\\'), (200, None)]:
            core.record("acme/iris", "1.0.0", status, 0.0012345, message)
        core.record("acme/nope", "", 404, 0.0, "unknown model")  # counted, not logged
    lines = [json.loads(r.getMessage()) for r in caplog.records]
    assert lines[1] == {"event": "infer", "model": "acme/iris", "version": "1.0.0",
                        "status": 400, "ms": 1.234, "error": 'input "x": \u00e9\\'}
    assert lines[0] == lines[2] == {"event": "infer", "model": "acme/iris",
                                    "version": "1.0.0", "status": 200, "ms": 1.234}
    assert len(lines) == 3
    metrics = core.metrics.render().decode()
    assert 'mx_requests_total{model="acme/iris",status="200",version="1.0.0"} 2.0' in metrics
    # names nobody serves share one label: a label each would grow /metrics per request
    assert 'mx_requests_total{model="(unknown)",status="404",version=""} 1.0' in metrics
    assert "acme/nope" not in metrics
    assert 'mx_request_seconds_count{model="acme/iris",version="1.0.0"} 3.0' in metrics
