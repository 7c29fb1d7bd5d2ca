"""The connection deadlines of mx serve (`mx.serve.conn`) on both of uvicorn's HTTP/1.1
protocols: httptools (what the serve extra installs) and h11 (the fallback without it).
A real uvicorn server in a thread, real sockets, a trivial app."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from mx.serve.conn import BODY_RECEIVED, guarded_protocol

HEADER, BODY = 0.4, 0.4


_seen: list[bool] = []  # per request: did the protocol say the whole body was in


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    _seen.append(BODY_RECEIVED in scope.get("extensions", {}))
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = b"got %d" % len(body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(answer))]})
    await send({"type": "http.response.body", "body": answer})


KINDS: dict[int, str] = {}  # id of a server's timeouts list -> its protocol


def server_kind(timeouts: list[str]) -> str:
    return KINDS[id(timeouts)]


@pytest.fixture(params=["httptools", "h11"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[int, list[str]]]:
    if request.param == "httptools":
        import httptools  # noqa: F401  (a test dependency: the serve extra; fail, never skip)
    timeouts: list[str] = []
    _seen.clear()
    KINDS[id(timeouts)] = request.param
    protocol = guarded_protocol(HEADER, BODY, timeouts.append, http=request.param)
    assert request.param in protocol.__mro__[1].__name__.lower()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    web = uvicorn.Server(uvicorn.Config(_app, http=protocol, log_level="warning",
                                        lifespan="off"))
    thread = threading.Thread(target=web.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not web.started:
        time.sleep(0.01)
    yield sock.getsockname()[1], timeouts
    web.should_exit = True
    thread.join(10)


def _talk(port: int, send: bytes, wait: float = 5) -> bytes:
    """What the server sends back until it closes (or `wait` seconds pass)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(wait)
    s.sendall(send)
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except TimeoutError:
        pass
    s.close()
    return got


POST = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"


def test_whole_requests_are_answered_and_kept_alive(server: tuple[int, list[str]]) -> None:
    port, timeouts = server
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    for _ in range(3):  # one connection, a request after the other, slower than HEADER
        s.sendall(POST + b"hello")
        assert s.recv(65536).endswith(b"got 5")
        time.sleep(HEADER + 0.2)  # idle between requests: uvicorn's keep-alive, not ours
    s.sendall(POST[:10])
    time.sleep(0.1)
    s.sendall(POST[10:] + b"hel")
    time.sleep(0.1)
    s.sendall(b"lo")
    assert s.recv(65536).endswith(b"got 5")
    s.close()
    assert timeouts == []
    # httptools says when a body came whole (the app then reads it without a deadline)
    whole = server_kind(timeouts) == "httptools"
    assert _seen == [whole] * 3 + [False]


def test_a_head_not_finished_in_time_gets_408(server: tuple[int, list[str]]) -> None:
    port, timeouts = server
    answer = _talk(port, POST[:20])
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    assert answer.endswith(b"request head not received within 0.4 s")
    assert _talk(port, b"") == b""  # a silent connection is closed, with nothing to say
    assert timeouts == ["header_timeout", "header_timeout"]


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_head_deadline_restarts_for_each_request(server: tuple[int, list[str]],
                                                   pipelined: bool) -> None:
    port, timeouts = server
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    s.sendall(POST[:20])
    time.sleep(HEADER / 2)
    if pipelined:  # the rest, and the next request's head (never finished) in one packet
        s.sendall(POST[20:] + b"hello" + POST[:20])
        assert s.recv(65536).endswith(b"got 5")
    else:
        s.sendall(POST[20:] + b"hello")
        assert s.recv(65536).endswith(b"got 5")
        s.sendall(POST[:20])
    started = time.monotonic()
    answer = b""
    while chunk := s.recv(65536):
        answer += chunk
    took = time.monotonic() - started  # from the next request's first byte, not the first's
    assert answer.startswith(b"HTTP/1.1 408") and HEADER * 0.75 < took < HEADER + 1
    assert timeouts == ["header_timeout"]


def test_a_body_nobody_reads_in_time_closes_the_connection(
        server: tuple[int, list[str]]) -> None:
    port, timeouts = server
    started = time.monotonic()
    # the app waits for the rest of the body; the connection's deadline (plus the grace
    # the app has to answer 408 itself, which this app does not) closes it
    assert _talk(port, POST + b"he", wait=10) == b""
    assert BODY < time.monotonic() - started < BODY + 3
    assert timeouts == ["body_timeout"]
