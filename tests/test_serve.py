"""`mx serve` with clients nobody here wrote (tritonclient) and plain httpx."""

from __future__ import annotations

import json
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.support.servers import Host
from tests.support.serving import Served, mx_serve


@pytest.fixture
def server(host: Host, tmp_path: Path):  # type: ignore[no-untyped-def]
    with mx_serve("acme/iris@^1.0", "acme/resnet@^0.1", "acme/nope@1", "--registry", host.url,
                  "--max-queue-delay-ms", "20", "--max-body-mb", "0.01",
                  log=tmp_path / "serve.log") as s:
        yield s


def _direct(name: str, version: str, x: np.ndarray, host: Host) -> np.ndarray:
    import mx

    path = mx.install(f"{name}@{version}", registry=host.url).artifact("onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]  # type: ignore[no-any-return]


def test_tritonclient_live_metadata_and_infer(server: Served, host: Host) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.hostport)
    assert client.is_server_live()
    assert not client.is_server_ready()  # acme/nope did not load
    assert client.is_model_ready("acme/iris")
    meta = client.get_model_metadata("acme/iris")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["versions"] == ["1.1.0"]
    x = np.random.default_rng(0).random((3, 4), dtype=np.float32)
    inp = triton.InferInput("input", [3, 4], "FP32")
    inp.set_data_from_numpy(x, binary_data=False)
    out = triton.InferRequestedOutput("probabilities", binary_data=False)
    result = client.infer("acme/iris", [inp], outputs=[out])
    assert np.allclose(result.as_numpy("probabilities"), _direct("acme/iris", "1.1.0", x, host),
                       atol=1e-6)
    assert result.get_response()["model_version"] == "1.1.0"
    versioned = client.infer("acme/iris", [inp], model_version="1.1.0")
    assert versioned.as_numpy("probabilities").shape == (3, 3)
    # Triton's binary tensor extension, both ways (tritonclient's default)
    binary_in = triton.InferInput("input", [3, 4], "FP32")
    binary_in.set_data_from_numpy(x, binary_data=True)
    for outputs in (None, [triton.InferRequestedOutput("probabilities", binary_data=True)]):
        result = client.infer("acme/iris", [binary_in], outputs=outputs)
        assert result.get_output("probabilities")["parameters"]["binary_data_size"] == 36
        assert np.array_equal(result.as_numpy("probabilities"),
                              _direct("acme/iris", "1.1.0", x, host))
    mixed = client.infer("acme/iris", [binary_in], outputs=[out])  # binary in, JSON out
    assert "data" in mixed.get_output("probabilities")
    assert np.allclose(mixed.as_numpy("probabilities"), _direct("acme/iris", "1.1.0", x, host),
                       atol=1e-6)


def test_binary_tensor_codec() -> None:
    from mx.errors import BadInput
    from mx.serve.tensors import decode_request, encode_outputs
    from mx.tensorspec import Value

    specs = [Value("text", "string", ("batch",)), Value("n", "int64", ("batch",))]
    raw = b"".join(len(s).to_bytes(4, "little") + s for s in (b"hi", "h\u00e9".encode()))
    ints = np.array([7, -1], "<i8").tobytes()
    body = {"inputs": [
        {"name": "text", "shape": [2], "datatype": "BYTES",
         "parameters": {"binary_data_size": len(raw)}},
        {"name": "n", "shape": [2], "datatype": "INT64",
         "parameters": {"binary_data_size": len(ints)}}],
        "parameters": {"binary_data_output": True}}
    feeds, wanted = decode_request(body, specs, raw + ints)
    assert feeds["text"].tolist() == ["hi", "h\u00e9"] and feeds["n"].tolist() == [7, -1]
    entries, blobs = encode_outputs(specs, feeds, wanted)
    assert b"".join(blobs) == raw + ints
    assert [e["parameters"]["binary_data_size"] for e in entries] == [len(raw), len(ints)]
    cases = [(raw + ints, len(ints) - 1, "input 'n': shape [2] of INT64 is 16 bytes, "
                                         "binary_data_size says 15"),
             (raw + ints + b"x", len(ints), "binary data: 1 bytes left after the inputs"),
             (raw[:3], len(ints), f"input 'text': binary_data_size {len(raw)} runs past the "
                                  "3 bytes")]
    for data, n_size, message in cases:
        body["inputs"][1]["parameters"]["binary_data_size"] = n_size
        with pytest.raises(BadInput) as info:
            decode_request(body, specs, data)
        assert message in str(info.value)


def test_bad_requests(server: Served) -> None:
    url = f"{server.url}/v2/models/acme/iris/infer"
    ok = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    cases = [
        ({**ok, "datatype": "INT64"}, 400, "input 'input': datatype INT64, the model takes FP32"),
        ({**ok, "shape": [1, 5], "data": [1] * 5}, 400, "input 'input': dim 1 is 5, the model "
                                                        "takes 4 (shape [-1, 4])"),
        ({**ok, "name": "x"}, 400, "unknown input 'x'; the model takes 'input'"),
        ({**ok, "shape": [2, 4]}, 400, "input 'input': shape [2, 4] holds 8 values, data has 4"),
    ]
    for item, status, message in cases:
        r = httpx.post(url, json={"inputs": [item]})
        assert (r.status_code, r.json()["error"]) == (status, message)
    r = httpx.post(url, content=b'{"inputs": [', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("malformed JSON")
    r = httpx.post(url, content=b'{"inputs": []}',
                   headers={"Inference-Header-Content-Length": "99"})
    assert r.status_code == 400
    assert r.json()["error"] == ("Inference-Header-Content-Length: '99' is not a length within "
                                 "the 14-byte body")
    big = {"inputs": [{**ok, "shape": [4000, 4], "data": [0.5] * 16000}]}
    r = httpx.post(url, json=big)
    assert r.status_code == 413 and "over 10485 bytes" in r.json()["error"]
    r = httpx.post(f"{server.url}/v2/models/acme/unknown/infer", json={"inputs": [ok]})
    assert r.status_code == 404 and "unknown model 'acme/unknown'" in r.json()["error"]
    r = httpx.post(f"{server.url}/v2/models/acme/iris/versions/9.9.9/infer",
                   json={"inputs": [ok]})
    assert r.status_code == 404 and "has no version '9.9.9'; serving: 1.1.0" in r.json()["error"]
    r = httpx.get(f"{server.url}/v2/health/ready")
    assert r.status_code == 503
    assert list(r.json()["not_ready"]) == ["acme/nope"]
    assert r.json()["models"] == ["acme/iris", "acme/resnet"]
    r = httpx.get(f"{server.url}/v2/models/acme/nope/ready")
    assert r.status_code == 503
    # the others still answer
    r = httpx.post(f"{server.url}/v2/models/acme/resnet/infer", json={"inputs": [
        {"name": "input", "shape": [1, 8], "datatype": "FP32", "data": [0.1] * 8}]})
    assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [1, 5]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'mx_requests_total{model="acme/iris",status="400",version="1.1.0"} 6.0' in metrics
    assert 'mx_requests_total{model="acme/iris",status="413",version="1.1.0"} 1.0' in metrics
    assert 'mx_model_load_seconds{model="acme/resnet",version="0.1.0"}' in metrics
    logs = [json.loads(line) for line in server.log_text().splitlines()
            if line.startswith("{")]
    assert any(e.get("event") == "load_failed" and e["spec"] == "acme/nope@1" for e in logs)
    assert any(e.get("status") == 413 for e in logs if e.get("event") == "infer")


def test_concurrent_requests_share_batches(server: Served, host: Host) -> None:
    url = f"{server.url}/v2/models/acme/iris/infer"
    rows = np.random.default_rng(1).random((24, 4), dtype=np.float32)

    def one(i: int) -> list[float]:
        body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                            "data": rows[i].tolist()}]}
        r = httpx.post(url, json=body, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["outputs"][0]["data"]  # type: ignore[no-any-return]

    with ThreadPoolExecutor(24) as pool:
        got = np.array(list(pool.map(one, range(24))), dtype=np.float32)
    expected = _direct("acme/iris", "1.1.0", rows, host)
    assert np.allclose(got, expected, atol=1e-6)  # each answer is its own row
    metrics = httpx.get(f"{server.url}/metrics").text
    count = _metric(metrics, 'mx_batch_rows_count{model="acme/iris",version="1.1.0"}')
    total = _metric(metrics, 'mx_batch_rows_sum{model="acme/iris",version="1.1.0"}')
    assert total == 24 and count < 24  # fewer onnxruntime runs than requests


def _metric(text: str, key: str) -> float:
    for line in text.splitlines():
        if line.startswith(key):
            return float(line.split()[-1])
    raise AssertionError(f"{key} not in metrics")


def test_canary_split(host: Host, tmp_path: Path) -> None:
    with mx_serve("acme/iris@1.1.0", "--canary", "acme/iris@1.0.0=25%", "--registry", host.url,
                  log=tmp_path / "serve.log") as s:
        body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                            "data": [1, 2, 3, 4]}]}
        versions = [httpx.post(f"{s.url}/v2/models/acme/iris/infer", json=body)
                    .json()["model_version"] for _ in range(20)]
        assert versions.count("1.0.0") == 5 and versions.count("1.1.0") == 15
        meta = httpx.get(f"{s.url}/v2/models/acme/iris").json()
        assert meta["versions"] == ["1.0.0", "1.1.0"]


def test_new_version_loads_without_dropping_requests(host: Host, world: Path,
                                                     tmp_path: Path) -> None:
    from mx.cli.main import run

    with mx_serve("acme/iris@^1.0", "--registry", host.url, log=tmp_path / "serve.log") as s:
        body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                            "data": [1, 2, 3, 4]}]}
        url = f"{s.url}/v2/models/acme/iris/infer"
        statuses: list[int] = []
        versions: list[str] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client() as c:
                while not stop.is_set():
                    r = c.post(url, json=body)
                    statuses.append(r.status_code)
                    versions.append(r.json().get("model_version", ""))

        t = threading.Thread(target=traffic)
        t.start()
        # the registry un-yanks 1.2.0 and republishes; the server loads it while serving
        reg = world / "registry.yaml"
        reg.write_text(reg.read_text().replace('acme/iris: {1.2.0: "wrong weights; use 1.1.0"}',
                                               "{}"))
        assert run(["index", "build", str(reg), "-o", str(world / "site")]) == 0
        r = httpx.post(f"{s.url}/v2/repository/models/acme/iris/load", timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["version"] == "1.2.0"
        while "1.2.0" not in versions[-5:]:
            pass
        stop.set()
        t.join()
        assert statuses and set(statuses) == {200}
        assert versions[0] == "1.1.0" and versions[-1] == "1.2.0"


def test_sigterm_drains_in_flight_requests(host: Host, tmp_path: Path) -> None:
    with mx_serve("acme/iris@^1.0", "--registry", host.url, "--max-queue-delay-ms", "500",
                  "--max-batch-size", "64", log=tmp_path / "serve.log") as s:
        body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                            "data": [1, 2, 3, 4]}]}
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{s.url}/v2/models/acme/iris/infer", json=body,
                                  timeout=30)
            import time

            time.sleep(0.2)  # the request waits 500 ms for company in the batcher
            s.proc.send_signal(signal.SIGTERM)
            r = pending.result()
        assert r.status_code == 200
        assert s.proc.wait(20) == -signal.SIGTERM  # drained, then exits by the signal
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{s.url}/v2/health/live")
