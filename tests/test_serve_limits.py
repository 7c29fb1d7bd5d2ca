"""`mx serve` under hostile input and abusive clients: real sockets, real HTTP."""

from __future__ import annotations

import json
import resource
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.support.servers import Host
from tests.support.serving import Served, mx_serve

OK_INPUT = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
INFER = "/v2/models/acme/iris/infer"


@pytest.fixture
def server(host: Host, tmp_path: Path):  # type: ignore[no-untyped-def]
    # a soft limit of 256 open files: the server must raise it to hold 300 slow clients
    with mx_serve("acme/iris@^1.0", "--registry", host.url, "--header-timeout", "2",
                  "--body-timeout", "2", "--max-body-mb", "2", "--max-inflight-mb", "4",
                  log=tmp_path / "serve.log", open_files=256) as s:
        yield s


def _post(s: Served, raw: bytes, **headers: str) -> tuple[int, str]:
    r = httpx.post(s.url + INFER, content=raw,
                   headers={"content-type": "application/json", **headers}, timeout=10)
    return r.status_code, r.json()["error"] if r.status_code != 200 else ""


def _metric(s: Served, key: str) -> float:
    for line in httpx.get(f"{s.url}/metrics").text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return 0.0


def test_parse_json_limits() -> None:
    from mx.errors import BadInput
    from mx.serve.jsoncodec import MAX_DEPTH, parse_json

    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    # brackets, quotes and digits inside strings are text, not structure
    text = '[' * 500 + '\\"{' + "9" * 400
    assert parse_json(json.dumps({"id": text}).encode()) == {"id": text}
    for raw, message in [
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "JSON nested 65 levels deep"),
        (b'{"a": [1, NaN]}', "JSON has NaN, which is not a JSON number"),
        (b"[-Infinity]", "JSON has -Infinity"),
        (b"[" + b"1" * 5000 + b"]", "JSON has a number of over 309 digits"),
        (b'{"a": "x', "malformed JSON: Unterminated string"),
    ]:
        with pytest.raises(BadInput) as info:
            parse_json(raw)
        assert message in info.value.message


def test_hostile_json_gets_400(server: Served) -> None:
    def body(data: str, extra: str = "") -> bytes:
        return (f'{{"inputs": [{{"name": "input", "shape": [1, 4], "datatype": "FP32", '
                f'"data": [{data}, 2, 3, 4]}}]{extra}}}').encode()

    out_of_range = "input 'input': data has null or a number out of FP32's range"
    cases = [
        (body("1e400"), out_of_range),
        (body("1e39"), out_of_range),  # a float64, but past float32
        (body("1" + "0" * 300), out_of_range),
        (body("null"), out_of_range),
        (body("1" + "0" * 400), "JSON has a number of over 309 digits"),
        (body("NaN"), "JSON has NaN, which is not a JSON number"),
        (body("Infinity"), "JSON has Infinity"),
        (body("-Infinity"), "JSON has -Infinity"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested 100000 levels deep; at most 64"),
        (body("1", ', "id": ' + "[" * 70 + "]" * 70), "JSON nested 71 levels deep"),
    ]
    for raw, message in cases:
        status, error = _post(server, raw)
        assert status == 400 and error.startswith(message), (raw[:80], error)
    # the same text inside a string is only text
    r = httpx.post(server.url + INFER, json={"inputs": [OK_INPUT], "id": "[" * 100 + "NaN"})
    assert r.status_code == 200 and r.json()["id"] == "[" * 100 + "NaN"

    # NaN in binary input is IEEE data; the answer can carry it only as binary
    nan = np.full((1, 4), np.nan, np.float32).tobytes()
    for binary_out, expected in [(False, 400), (True, 200)]:
        head = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                       "parameters": {"binary_data_size": 16}}],
                           "parameters": {"binary_data_output": binary_out}}).encode()
        r = httpx.post(server.url + INFER, content=head + nan,
                       headers={"Inference-Header-Content-Length": str(len(head))})
        assert r.status_code == expected, r.text
        if expected == 400:
            assert r.json()["error"] == ("output 'probabilities' holds NaN or infinity, which "
                                         "JSON cannot carry; ask for it as binary data "
                                         "(binary_data: true)")
    assert np.isnan(np.frombuffer(r.content[-12:], np.float32)).all()

    key = 'mx_requests_total{model="acme/iris",status="400",version="1.1.0"}'
    assert _metric(server, key) == len(cases) + 1
    assert "Traceback" not in server.log_text()


def test_slow_clients_time_out_and_others_are_served(server: Served) -> None:
    # 300 test connections need the room; a machine with less fails here, loudly.
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[1] >= 1024, "hard open-file limit < 1024"
    host, port = server.hostport.split(":")
    head = (f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n").encode()
    silent, half_head, half_body = [], [], []
    try:
        for _ in range(100):
            for group, data in ((silent, b""), (half_head, head[:40]),
                                (half_body, head + b'{"inputs"')):
                sock = socket.create_connection((host, int(port)), timeout=30)
                sock.sendall(data)
                group.append(sock)
        started = time.monotonic()
        r = httpx.post(server.url + INFER, json={"inputs": [OK_INPUT]}, timeout=5)
        assert r.status_code == 200 and time.monotonic() - started < 5

        # a client that trickles its head, a byte each 0.2 s, is cut off all the same
        trickle = socket.create_connection((host, int(port)), timeout=30)
        trickle.settimeout(0.2)
        answer, deadline = b"", time.monotonic() + 10
        for byte in (head[:-2] + b"X: " + b"y" * 1000):
            try:
                trickle.sendall(bytes([byte]))
                answer += trickle.recv(1024)
            except TimeoutError:
                pass
            except OSError:  # reset: the server has closed it
                break
            if answer or time.monotonic() > deadline:
                break
        trickle.close()
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
        assert b"request head not received within 2 s" in answer

        for group, expected in ((silent, b""), (half_head, b"HTTP/1.1 408 Request Timeout"),
                                (half_body, b"HTTP/1.1 408 Request Timeout")):
            for sock in group:
                assert _read_until_closed(sock).startswith(expected)
        body_answer = _read_until_closed(socket.create_connection((host, int(port))),
                                         head + b"{}")
        assert b"request body not received within 2 s (2 bytes arrived)" in body_answer
    finally:
        for sock in silent + half_head + half_body:
            sock.close()
    assert _metric(server, 'mx_rejected_total{reason="header_timeout"}') == 201
    assert _metric(server, 'mx_rejected_total{reason="body_timeout"}') == 101
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200


def _read_until_closed(sock: socket.socket, send: bytes = b"") -> bytes:
    """What the server sends before closing (it must close within 10 s)."""
    sock.settimeout(10)
    sock.sendall(send)
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    sock.close()
    return got


def test_body_budget_refuses_with_503_then_recovers(server: Served, host: Host) -> None:
    host_, port = server.hostport.split(":")
    held = []
    for _ in range(2):  # two uploads that declare 2 MiB and send nothing fill the 4 MiB
        sock = socket.create_connection((host_, int(port)), timeout=30)
        sock.sendall((f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {2 << 20}\r\n\r\n")
                     .encode())
        held.append(sock)
    deadline = time.monotonic() + 10
    while _metric(server, "mx_body_bytes") < 4 << 20:
        assert time.monotonic() < deadline, "the server never took the two uploads"
        time.sleep(0.05)

    rows = np.round(np.random.default_rng(0).random((60_000, 4)), 2)
    big = json.dumps({"inputs": [{"name": "input", "shape": [60_000, 4], "datatype": "FP32",
                                  "data": rows.ravel().tolist()}]}).encode()
    assert 1 << 20 < len(big) < 2 << 20  # decoded in a worker process
    r = httpx.post(server.url + INFER, content=big, timeout=10)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["error"] == ("server busy: request bodies already fill the 4 MB it holds "
                                 "at once; retry shortly")
    small = httpx.post(server.url + INFER, json={"inputs": [OK_INPUT]}, timeout=5)
    assert small.status_code == 200  # small bodies have a reserve

    for sock in held:  # the stalled uploads time out and give their share back
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 408")
    r = httpx.post(server.url + INFER, content=big, timeout=60)
    assert r.status_code == 200, r.text
    got = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(60_000, 3)
    assert np.allclose(got, _direct(rows.astype(np.float32), host), atol=1e-6)
    bad = big.replace(b'"data": [', b'"data": [NaN, ', 1)
    assert httpx.post(server.url + INFER, content=bad, timeout=60).json()["error"] == (
        "JSON has NaN, which is not a JSON number; send finite numbers, or NaN as binary "
        "tensor data")
    assert _metric(server, 'mx_rejected_total{reason="busy"}') == 1
    assert _metric(server, "mx_body_bytes") == 0


def _direct(x: np.ndarray, host: Host) -> np.ndarray:
    import mx

    path = mx.install("acme/iris@1.1.0", registry=host.url).artifact("onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]  # type: ignore[no-any-return]


def test_serve_help_and_limit_checks(mx) -> None:  # type: ignore[no-untyped-def]
    out = mx("serve", "--help").out
    for option in ("--header-timeout", "--body-timeout", "--max-inflight-mb", "--max-body-mb"):
        assert option in out
    r = mx("serve", "acme/iris", "--max-body-mb", "8", "--max-inflight-mb", "4")
    assert r.code == 2 and "--max-inflight-mb" in r.err and "below --max-body-mb 8" in r.err
