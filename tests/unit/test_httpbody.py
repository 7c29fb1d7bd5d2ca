"""Artifact bodies over http.client (mx.httpbody) against real servers on 127.0.0.1:
keep-alive reuse, a connection the server dropped while idle, a body left half-read, and
a forward proxy named by the environment."""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mx.config import Limits
from mx.devserver import make_server, serve_in_thread
from mx.errors import IntegrityError
from mx.http import Transport
from tests.support.servers import Faults, FaultyHandler, static_host

BLOB = bytes(range(256)) * 4096  # 1 MiB: several chunks of the 256 KiB used below


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes | memoryview) -> None:
        self.data += chunk

    def reset(self) -> None:
        self.data.clear()


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "blob").write_bytes(BLOB)
    return root


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"backed off {seconds} s: the failure should not need a retry")


def fetch(transport: Transport, url: str, size: int = len(BLOB)) -> bytes:
    sink = Collect()
    transport.download(url, sink, size)
    return bytes(sink.data)


def test_one_connection_carries_successive_downloads(www: Path) -> None:
    with static_host(www) as host:
        transport = Transport(Limits(chunk_size=256 << 10))
        transport.sleep = no_sleep
        assert fetch(transport, host.url + "blob") == BLOB
        assert fetch(transport, host.url + "blob") == BLOB
        transport.close()
    assert len(host.faults.ports) == 1


class DropsIdle(FaultyHandler):
    """Answers, then closes the connection without saying so (no `Connection: close`):
    what a server does when its keep-alive timeout passes between two requests."""

    def serve(self, head: bool) -> None:
        super().serve(head)
        self.close_connection = True


def test_a_connection_dropped_while_idle_is_replaced_without_a_retry(www: Path) -> None:
    faults = Faults()
    server = make_server(www, handler=type("H", (DropsIdle,), {"faults": faults}))
    serve_in_thread(server)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/blob"
        transport = Transport(Limits(chunk_size=256 << 10))
        transport.sleep = no_sleep
        assert fetch(transport, url) == BLOB
        assert fetch(transport, url) == BLOB  # the pooled connection is dead by now
        transport.close()
    finally:
        server.shutdown()
        server.server_close()
    assert len(faults.ports) == 2


def test_a_half_read_body_does_not_go_back_to_the_pool(www: Path) -> None:
    with static_host(www) as host:
        transport = Transport(Limits(chunk_size=256 << 10))
        transport.sleep = no_sleep  # a polluted connection would fail and be retried
        with pytest.raises(IntegrityError, match="more than"):
            fetch(transport, host.url + "blob", size=len(BLOB) // 2)
        # Had the connection gone back with half a body unread, this answer would begin
        # with the rest of that body.
        assert fetch(transport, host.url + "blob") == BLOB
        transport.close()
    assert len(host.faults.ports) == 2


@contextmanager
def forward_proxy() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """A plain-http forward proxy: GET with an absolute URL, relayed to the origin."""
    seen: list[tuple[str, str | None]] = []

    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Proxy-Authorization")))
            target = urllib.parse.urlsplit(self.path)
            conn = http.client.HTTPConnection(target.hostname or "", target.port or 80)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("proxy-authorization", "host", "connection")}
            conn.request("GET", target.path, headers=headers)
            answer = conn.getresponse()
            body = answer.read()
            self.send_response(answer.status)
            for name in ("Content-Type", "Content-Range", "ETag"):
                if answer.getheader(name):
                    self.send_header(name, answer.getheader(name) or "")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            conn.close()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_environment_s_proxy_carries_artifacts(www: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with static_host(www) as host, forward_proxy() as (proxy, seen):
        for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", f"http://user:s%40cret@{proxy}")
        transport = Transport(Limits(chunk_size=256 << 10, parallel_parts=1))
        assert fetch(transport, host.url + "blob") == BLOB
        transport.close()
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        direct = Transport(Limits(parallel_parts=1))
        assert fetch(direct, host.url + "blob") == BLOB
        direct.close()
    # The proxy got the absolute URL and its credentials (the origin never sees them);
    # with no_proxy naming the host, nothing went through it.
    assert seen == [(host.url + "blob", "Basic dXNlcjpzQGNyZXQ=")]
    assert len(host.faults.requests) == 2
