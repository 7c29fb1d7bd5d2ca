"""https hosts through an https:// proxy (mx.tlstunnel): TLS to the proxy, CONNECT inside
it, TLS with the origin inside that. A real TLS CONNECT proxy and a real TLS origin on
127.0.0.1, each with its own self-signed certificate."""

from __future__ import annotations

import base64
import os
import select
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mx import landing
from mx.config import Limits
from mx.errors import FetchError
from mx.http import Transport
from tests.support.servers import static_host
from tests.support.sinks import Collect
from tests.unit.test_httpbody import BLOB, fetch, no_sleep, self_signed, tls_host

INDEX = b'{"models": []}'


@dataclass
class Proxy:
    url: str  # scheme://host:port, no credentials
    # target (host:port for CONNECT, else the URL), Proxy-Authorization
    connects: list[tuple[str, str | None]] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)  # one per TCP connection


def _relay(client: ssl.SSLSocket, upstream: socket.socket) -> None:
    # One thread per tunnel: an SSLSocket may not be read and written from two at once.
    # Bytes the TLS layer already holds are not seen by select: read them first.
    ends = [client, upstream]
    while True:
        ready = [client] if client.pending() else select.select(ends, [], [], 5)[0]
        if not ready:
            return
        for end in ready:
            data = end.recv(1 << 16)
            if not data:
                return
            (upstream if end is client else client).sendall(data)


@contextmanager
def tls_connect_proxy(cert: Path, key: Path, credentials: str | None = None) -> Iterator[Proxy]:
    """A CONNECT proxy that speaks TLS: it reads CONNECT inside TLS, wants `credentials`
    (user:password) when given (else 407), and relays the tunnel's bytes both ways; a
    plain-http URL it forwards itself."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    proxy = Proxy(f"127.0.0.1:{listener.getsockname()[1]}")
    expected = ("Basic " + base64.b64encode(credentials.encode()).decode()
                if credentials else None)
    stop = threading.Event()

    def serve(raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            with context.wrap_socket(raw, server_side=True) as conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                auth = fields.get("Proxy-Authorization")
                proxy.connects.append((target, auth))
                if expected and auth != expected:
                    conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                 b'Proxy-Authenticate: Basic realm="p"\r\n'
                                 b"Content-Length: 0\r\n\r\n")
                    return
                if method == "CONNECT":
                    host, _, port = target.rpartition(":")
                    with socket.create_connection((host, int(port))) as upstream:
                        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        _relay(conn, upstream)
                    return
                # A plain-http URL in absolute form: the request, in origin form and
                # without the proxy's credentials, to its host (one per connection here).
                url = urllib.parse.urlsplit(target)
                kept = [line for line in lines[1:]
                        if line and not line.lower().startswith("proxy-authorization:")]
                request = "\r\n".join([f"{method} {url.path} HTTP/1.1", *kept, "", ""])
                with socket.create_connection((url.hostname or "", url.port or 80)) as upstream:
                    upstream.sendall(request.encode("latin-1"))
                    _relay(conn, upstream)
        except OSError:
            return  # a handshake the client refused, a reset

    def accept() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            proxy.accepted.append(1)
            threading.Thread(target=serve, args=(raw,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        stop.set()
        thread.join()
        listener.close()


class FileSink:
    """A file the body lands in itself (`Body.into_file`), as the client's part files."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w+b")
        self.size = 0

    def fileno(self) -> int:
        return self.file.fileno()

    def landed(self, n: int) -> None:
        self.size += n

    def write(self, chunk: bytes | memoryview) -> None:
        os.pwrite(self.file.fileno(), chunk, self.size)
        self.size += len(chunk)

    def reset(self) -> None:
        self.file.truncate(0)
        self.size = 0


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "blob").write_bytes(BLOB)
    (root / "index.json").write_bytes(INDEX)
    return root


@pytest.fixture
def certs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[Path, Path]]:
    """The origin's and the proxy's certificates, both trusted (SSL_CERT_FILE); no proxy
    set but by the test."""
    origin, proxy = self_signed(tmp_path, "origin"), self_signed(tmp_path, "proxy")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(origin[0].read_bytes() + proxy[0].read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return {"origin": origin, "proxy": proxy}


def transport() -> Transport:
    t = Transport(Limits(chunk_size=256 << 10, parallel_parts=1, connect_timeout=5,
                         read_timeout=5))
    t.sleep = no_sleep
    return t


def authority(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def test_artifacts_and_documents_through_an_https_proxy_with_credentials(
        www: Path, tmp_path: Path, certs: dict[str, tuple[Path, Path]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_splice(*args: object) -> None:
        raise AssertionError("splice from a TLS-in-TLS socket would land ciphertext")

    monkeypatch.setattr(landing, "splice_into", no_splice)
    with tls_host(www, *certs["origin"]) as (url, faults), \
            tls_connect_proxy(*certs["proxy"], credentials="me:s3cr@t") as proxy:
        monkeypatch.setenv("https_proxy", f"https://me:s3cr%40t@{proxy.url}")
        t = transport()
        sink = FileSink(tmp_path / "blob")
        t.download(url + "blob", sink, len(BLOB))  # into the file, through the tunnel
        assert (tmp_path / "blob").read_bytes() == BLOB
        assert fetch(t, url + "blob") == BLOB  # the same tunnel, reused
        assert len(proxy.connects) == 1
        assert t.get(url + "index.json", 1000).data == INDEX  # urllib: a tunnel of its own
        t.close()
        sink.file.close()
    token = "Basic " + base64.b64encode(b"me:s3cr@t").decode()
    assert proxy.connects == [(authority(url), token)] * 2
    assert [path for path, *_ in faults.requests] == ["/blob", "/blob", "/index.json"]
    assert len(faults.ports) == 2  # the two downloads came on one connection


def test_a_proxy_without_credentials_and_a_resumed_download(
        www: Path, certs: dict[str, tuple[Path, Path]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with tls_host(www, *certs["origin"]) as (url, faults), \
            tls_connect_proxy(*certs["proxy"]) as proxy:
        monkeypatch.setenv("https_proxy", f"https://{proxy.url}")
        t = transport()
        held = 300_000  # what an earlier, killed process left
        sink = Collect(BLOB[:held])
        t.download(url + "blob", sink, len(BLOB), offset=held)
        t.close()
    assert bytes(sink.data) == BLOB
    assert proxy.connects == [(authority(url), None)]
    assert faults.requests[0][:2] == ("/blob", f"bytes={held}-")


def test_wrong_proxy_credentials_are_one_clear_error(
        www: Path, certs: dict[str, tuple[Path, Path]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with tls_host(www, *certs["origin"]) as (url, faults), \
            tls_connect_proxy(*certs["proxy"], credentials="me:right") as proxy:
        monkeypatch.setenv("https_proxy", f"https://me:wr0ngpass@{proxy.url}")
        t = transport()
        with pytest.raises(FetchError, match=r"proxy https://127.*HTTP 407") as refused:
            fetch(t, url + "blob")
        assert refused.value.status == 407
        with pytest.raises(FetchError, match="HTTP 407") as refused_doc:
            t.get(url + "index.json", 1000)
        t.close()
    for error in (refused.value, refused_doc.value):
        assert "wr0ngpass" not in error.with_hint()
    assert len(proxy.accepted) == 2  # one each: no retry
    assert faults.requests == []


def test_a_proxy_with_an_untrusted_certificate_gets_nothing(
        www: Path, tmp_path: Path, certs: dict[str, tuple[Path, Path]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certs["origin"][0]))  # not the proxy's
    with tls_host(www, *certs["origin"]) as (url, faults), \
            tls_connect_proxy(*certs["proxy"], credentials="me:s3cret") as proxy:
        monkeypatch.setenv("https_proxy", f"https://me:s3cret@{proxy.url}")
        t = transport()
        with pytest.raises(FetchError, match=r"proxy .* certificate is not trusted") as bad:
            fetch(t, url + "blob")
        assert "SSL_CERT_FILE" in (bad.value.hint or "")
        with pytest.raises(FetchError, match=r"proxy .* certificate is not trusted"):
            t.get(url + "index.json", 1000)
        t.close()
    assert "s3cret" not in str(bad.value)
    assert proxy.connects == []  # the CONNECT (and its credentials) never went out
    assert len(proxy.accepted) == 2  # no retries
    assert faults.requests == []


def test_no_proxy_still_bypasses_an_https_proxy(
        www: Path, certs: dict[str, tuple[Path, Path]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with tls_host(www, *certs["origin"]) as (url, faults), \
            tls_connect_proxy(*certs["proxy"]) as proxy:
        monkeypatch.setenv("https_proxy", f"https://{proxy.url}")
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        t = transport()
        assert fetch(t, url + "blob") == BLOB
        assert t.get(url + "index.json", 1000).data == INDEX
        t.close()
    assert proxy.accepted == []
    assert len(faults.requests) == 2


def test_plain_http_through_an_https_proxy_goes_inside_tls_with_it(
        www: Path, certs: dict[str, tuple[Path, Path]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with static_host(www) as host, \
            tls_connect_proxy(*certs["proxy"], credentials="me:pw") as proxy:
        monkeypatch.setenv("http_proxy", f"https://me:pw@{proxy.url}")
        t = transport()
        assert fetch(t, host.url + "blob") == BLOB
        assert t.get(host.url + "index.json", 1000).data == INDEX
        t.close()
    token = "Basic " + base64.b64encode(b"me:pw").decode()
    assert proxy.connects == [(host.url + "blob", token), (host.url + "index.json", token)]
    assert [path for path, *_ in host.faults.requests] == ["/blob", "/index.json"]


def test_the_host_s_certificate_is_verified_inside_the_tunnel(
        www: Path, certs: dict[str, tuple[Path, Path]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy is trusted, the host is not: the inner session refuses the host as a
    direct connection would, once (the proxy cannot stand in for the host)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certs["proxy"][0]))
    with tls_host(www, *certs["origin"]) as (url, faults), \
            tls_connect_proxy(*certs["proxy"]) as proxy:
        monkeypatch.setenv("https_proxy", f"https://{proxy.url}")
        t = transport()
        with pytest.raises(FetchError, match="host's TLS certificate is not trusted"):
            fetch(t, url + "blob")
        t.close()
    assert proxy.connects == [(authority(url), None)]
    assert len(proxy.accepted) == 1
    assert faults.requests == []
