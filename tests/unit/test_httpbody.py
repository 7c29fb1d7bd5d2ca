"""Artifact bodies over http.client (mx.httpbody) against real servers on 127.0.0.1:
keep-alive reuse, a connection the server dropped while idle, a body left half-read, and
a forward proxy named by the environment."""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mx.config import Limits
from mx.devserver import make_server, serve_in_thread
from mx.errors import FetchError, IntegrityError
from mx.http import Transport
from tests.support.servers import Faults, FaultyHandler, static_host
from tests.support.sinks import Collect

BLOB = bytes(range(256)) * 4096  # 1 MiB: several chunks of the 256 KiB used below


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


def self_signed(tmp_path: Path, subject: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, for a TLS origin the test trusts; another
    `subject` (the name it is issued by and to) keeps two of them apart in one bundle."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{subject}.cert.pem", tmp_path / f"{subject}.key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextmanager
def tls_host(root: Path, cert: Path, key: Path) -> Iterator[tuple[str, Faults]]:
    faults = Faults()
    server = make_server(root, handler=type("H", (FaultyHandler,), {"faults": faults}))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    serve_in_thread(server)
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", faults
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def connect_proxy() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """A CONNECT proxy: opens a TCP tunnel and relays bytes both ways, seeing only TLS."""
    seen: list[tuple[str, str | None]] = []

    class Tunnel(BaseHTTPRequestHandler):
        def do_CONNECT(self) -> None:
            seen.append((self.path, self.headers.get("Proxy-Authorization")))
            host, _, port = self.path.rpartition(":")
            upstream = socket.create_connection((host, int(port)))
            self.send_response(200, "Connection established")
            self.end_headers()
            ends = [self.connection, upstream]
            try:
                while True:
                    readable, _, _ = select.select(ends, [], [], 5)
                    if not readable:
                        return
                    for end in readable:
                        data = end.recv(1 << 16)
                        if not data:
                            return
                        (upstream if end is self.connection else self.connection).sendall(data)
            finally:
                upstream.close()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tunnel)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_https_directly_and_through_a_connect_tunnel(www: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    for name in ("no_proxy", "NO_PROXY", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    with tls_host(www, cert, key) as (url, faults), connect_proxy() as (proxy, seen):
        untrusted = Transport()
        untrusted.sleep = no_sleep  # refused at once: a retry would not verify either
        with pytest.raises(FetchError, match="certificate is not trusted") as refused:
            fetch(untrusted, url + "blob")
        assert "SSL_CERT_FILE" in (refused.value.hint or "")
        with pytest.raises(FetchError, match="certificate is not trusted"):
            untrusted.get(url + "blob", 100)  # small documents alike
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        direct = Transport(Limits(chunk_size=256 << 10))
        assert fetch(direct, url + "blob") == BLOB
        direct.close()
        monkeypatch.setenv("https_proxy", f"http://me:pw@{proxy}")
        tunnelled = Transport(Limits(chunk_size=256 << 10, parallel_parts=1))
        assert fetch(tunnelled, url + "blob") == BLOB
        tunnelled.close()
    port = urllib.parse.urlsplit(url).port
    assert seen == [(f"127.0.0.1:{port}", "Basic bWU6cHc=")]
    assert len(faults.requests) == 2
