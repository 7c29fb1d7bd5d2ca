"""`mx serve` attacked through its httptools (llhttp) protocol: holds and floods."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.servers import Host
from tests.support.serving import Served, mx_serve

INFER = "/v2/models/acme/iris/infer"
BODY = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                               "data": [1, 2, 3, 4]}]}).encode()
REQUEST = (f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(BODY)}\r\n\r\n").encode() + BODY


@pytest.fixture
def server(host: Host, tmp_path: Path):  # type: ignore[no-untyped-def]
    with mx_serve("acme/iris@^1.0", "--registry", host.url, "--header-timeout", "2",
                  "--body-timeout", "2", log=tmp_path / "serve.log") as s:
        yield s


def _connect(s: Served) -> socket.socket:
    host, port = s.hostport.split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _answer(sock: socket.socket) -> bytes:
    got = b""
    while b"\r\n\r\n" not in got or not got.endswith(b"}"):
        got += sock.recv(65536)
    return got


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends before closing; fails if it holds the socket longer."""
    sock.settimeout(seconds)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except TimeoutError:
        raise AssertionError(f"connection still open after {seconds} s") from None
    finally:
        sock.close()
    return got


def _metric(s: Served, key: str) -> float:
    for line in httpx.get(f"{s.url}/metrics").text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return 0.0


def test_idle_bytes_that_begin_no_request_do_not_hold_the_socket(server: Served) -> None:
    # uvicorn stops its keep-alive timer on any bytes; a bare CRLF (which llhttp skips
    # between requests) started no deadline of ours either: held for ever
    crlf = _connect(server)
    crlf.sendall(REQUEST)
    assert _answer(crlf).startswith(b"HTTP/1.1 200 OK")
    crlf.sendall(b"\r\n")
    assert _closed_within(crlf, 6) == b""  # header deadline 2 s (+ slack)


def test_a_request_head_has_a_size_limit(server: Served) -> None:
    # llhttp takes heads of any size: one endless header filled memory until the deadline
    big = _connect(server)
    big.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-A: ")
    answer = b""
    try:
        for _ in range(2000):  # up to 8 MB, a few KiB a read
            big.sendall(b"a" * 4096)
            time.sleep(0.0005)
    except OSError:  # the server closed it
        pass
    answer = _closed_within(big, 6)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large"), answer[:100]
    assert answer.endswith(b"request head over 16384 bytes")
    assert _metric(server, 'mx_rejected_total{reason="head_too_large"}') == 1
    # a head within the limit is served, sent in small pieces or whole
    fine = _connect(server)
    head = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 12000 + b"\r\n\r\n"
    for i in range(0, len(head), 1000):
        fine.sendall(head[i:i + 1000])
        time.sleep(0.01)
    assert _answer(fine).startswith(b"HTTP/1.1 200 OK")
    fine.sendall(REQUEST * 50)  # pipelined, in reads far over the limit: not a head
    got = b""
    while got.count(b"HTTP/1.1 200 OK") < 50:
        got += fine.recv(65536)
    fine.close()
