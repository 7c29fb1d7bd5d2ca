"""A hostile (or merely odd) HTTP host against the artifact transport (mx.httpbody under
mx.http.Transport): answers http.client reads differently from httpx, redirects to URLs it
cannot send, bytes left on a pooled connection, trickles, proxies named oddly. Each must
end in the right bytes or one FetchError, never an exception that escapes as a crash."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from mx.config import Limits
from mx.errors import FetchError
from mx.http import Transport
from tests.support.rawhost import ok, raw_host
from tests.support.sinks import Collect

BODY = bytes(range(256)) * 64  # 16 KiB


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"backed off {seconds} s: the answer should need no retry")


def transport(**limits: float) -> Transport:
    t = Transport(Limits(**{"connect_timeout": 5, "read_timeout": 5, **limits}))  # type: ignore[arg-type]
    t.sleep = no_sleep
    return t


def fetch(t: Transport, url: str, size: int = len(BODY)) -> bytes:
    sink = Collect()
    t.download(url, sink, size)
    return bytes(sink.data)


def request_line(head: bytes) -> bytes:
    return head.split(b"\r\n", 1)[0]


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("location", [
    b"http://127.0.0.1:99999/blob",  # port out of range: ValueError in urlsplit
    b"http://127.0.0.1:port/blob",
    b"http://[::1/blob",  # "Invalid IPv6 URL"
    b"http://" + b"a" * 64 + b".example/blob",  # a DNS label over 63: UnicodeError (idna)
    b"http://127.0.0.1\x01x/blob",
])
def test_a_redirect_to_a_url_that_cannot_be_sent_is_one_error_at_once(location: bytes) -> None:
    def answer(n: int, head: bytes, conn: socket.socket) -> bytes:
        return b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"

    with raw_host(answer) as host:
        t = transport()
        with pytest.raises(FetchError, match=r"redirected to .*(malformed|not an HTTP)"):
            fetch(t, host.url + "blob")
        t.sleep = lambda seconds: None  # urllib's InvalidURL (a control character) is retried
        with pytest.raises(FetchError):
            t.get(host.url + "index.json", 1000)  # small documents (urllib) alike
        t.close()


def test_raw_utf8_and_spaces_in_a_location_are_sent_percent_encoded() -> None:
    def answer(n: int, head: bytes, conn: socket.socket) -> bytes:
        if b"/blob " in request_line(head):
            return (b"HTTP/1.1 302 Found\r\nLocation: /w\xc3\xa9ights v2.bin\r\n"
                    b"Content-Length: 0\r\n\r\n")
        return ok(BODY)

    with raw_host(answer) as host:
        t = transport()
        assert fetch(t, host.url + "blob") == BODY
        t.close()
    assert request_line(host.heads[1]) == b"GET /w%C3%A9ights%20v2.bin HTTP/1.1"


def test_interim_answers_before_the_real_one_are_skipped() -> None:
    """103 Early Hints (a CDN's) before the 200: http.client skips only 100 Continue and
    would take the 103 for the answer; httpx skipped every 1xx."""
    interim = (b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
               b"HTTP/1.1 102 Processing\r\n\r\n")
    with raw_host(lambda n, head, conn: interim + ok(BODY)) as host:
        t = transport()
        assert fetch(t, host.url + "blob") == BODY
        assert fetch(t, host.url + "blob") == BODY  # and the connection was left clean
        t.close()
    assert host.connections == 1


def test_interim_answers_without_end_are_a_failure_not_a_hang() -> None:
    """A host that sends 1xx answers fast enough for no timeout to fire would hold the
    download (and the urllib path) for ever; this one stops after 100 000 of them."""
    interim = b"HTTP/1.1 103 Early Hints\r\n\r\n" * 100_000
    with raw_host(lambda n, head, conn: interim + ok(BODY)) as host:
        t = transport(retries=0)
        with pytest.raises(FetchError, match="interim"):
            fetch(t, host.url + "blob")
        with pytest.raises(FetchError, match="interim"):
            t.get(host.url + "index.json", 1000)
        t.close()


def test_bytes_written_after_a_body_keep_that_connection_out_of_use() -> None:
    """A host writes a second answer after the first body, a moment later (so it is still
    in the socket, not in the reader's buffer, when the body ends): the next request on
    that connection would read it as its own answer."""

    def answer(n: int, head: bytes, conn: socket.socket) -> bytes:
        if n == 0:
            conn.sendall(ok(BODY))
            time.sleep(0.2)
            return ok(b"X" * len(BODY))  # an answer to no request
        return ok(BODY)

    with raw_host(answer) as host:
        t = transport()
        assert fetch(t, host.url + "blob") == BODY
        time.sleep(0.5)
        assert fetch(t, host.url + "blob") == BODY
        t.close()
    assert host.connections == 2


def resumed_with(content_range: bytes, body: bytes) -> bytes:
    """What one stream gets from a host that drops the first answer half-way and answers
    the Range request that continues it with a 206 of `content_range` carrying `body`."""
    half = len(BODY) // 2

    def answer(n: int, head: bytes, conn: socket.socket) -> bytes | None:
        if n == 0:
            conn.sendall(ok(BODY)[:-half])
            return None  # closed half-way
        assert b"\r\nRange: bytes=%d-\r\n" % half in head + b"\r\n"
        return (b"HTTP/1.1 206 Partial Content\r\nContent-Range: " + content_range
                + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    with raw_host(answer) as host:
        t = transport(backoff=0.001)
        t.sleep = lambda seconds: None
        try:
            return fetch(t, host.url + "blob")
        finally:
            t.close()


def test_a_206_with_the_whole_file_to_a_resume_starts_over() -> None:
    """Some hosts answer any Range with 206 and the whole file (Content-Range 0-): written
    after the prefix, those bytes failed the sha256, an IntegrityError that forbids the
    artifact's other URLs."""
    n = len(BODY)
    assert resumed_with(b"bytes 0-%d/%d" % (n - 1, n), BODY) == BODY


@pytest.mark.parametrize("content_range", [b"bytes 100-%d/%d", b"bytes */%d", b"nonsense"])
def test_a_206_to_a_resume_with_other_bytes_is_refused(content_range: bytes) -> None:
    n = len(BODY)
    value = content_range % ((n - 1, n) if content_range.count(b"%") == 2 else
                             (n,) if b"%" in content_range else ())
    with pytest.raises(FetchError, match="Content-Range") as caught:
        resumed_with(value, BODY[100:])
    assert caught.value.status == 206


@pytest.mark.parametrize("where", ["head", "body"])
def test_a_host_trickling_a_byte_a_second_is_dropped_as_stalled(where: str) -> None:
    """The socket's timeout fires only on silence: a byte a second would hold the download
    for ever. A read_timeout window with fewer than 1 KiB a second is a stall, retried from
    where it stopped like a dropped connection."""
    stop = threading.Event()

    def answer(n: int, head: bytes, conn: socket.socket) -> None:
        whole = ok(BODY)
        at = 0 if where == "head" else whole.index(b"\r\n\r\n") + 4
        conn.sendall(whole[:at])
        for i in range(at, len(whole)):
            if stop.wait(0.2):
                return
            conn.sendall(whole[i:i + 1])

    with raw_host(answer) as host:
        t = transport(read_timeout=1, retries=1, backoff=0.01)
        t.sleep = time.sleep
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"too slowly.*gave up after 1 retries"):
            fetch(t, host.url + "blob")
        stop.set()
        t.close()
    assert time.monotonic() - started < 10
    assert len(host.heads) == 2


def test_a_proxy_named_without_a_scheme_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """`http_proxy=proxy.corp:3128`, as many set it: urllib and curl take it for an http
    proxy; read as a URL it has no host, and mx connected to no proxy at all."""
    with raw_host(lambda n, head, conn: ok(BODY)) as proxy:
        monkeypatch.setenv("http_proxy", proxy.url[len("http://"):].rstrip("/"))
        t = transport()
        assert fetch(t, "http://models.example/blob") == BODY
        t.close()
    assert request_line(proxy.heads[0]) == b"GET http://models.example/blob HTTP/1.1"


def test_an_https_proxy_hears_tls_first_never_a_clear_text_connect(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """http.client alone would send the CONNECT, with the proxy's credentials, in the clear
    to a proxy the user said speaks TLS: mx opens TLS with it first (`mx.tlstunnel`)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    monkeypatch.setenv("https_proxy",
                       f"https://me:s3cret@127.0.0.1:{listener.getsockname()[1]}")
    heard: list[bytes] = []

    def listen() -> None:  # what the first two connections say before any answer
        for _ in range(2):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                heard.append(conn.recv(1 << 16))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    t = transport(retries=0)
    with pytest.raises(FetchError) as failed:
        fetch(t, "https://models.example/blob")
    assert "s3cret" not in str(failed.value)
    with pytest.raises(FetchError):
        t.get("https://models.example/index.json", 1000)  # urllib alike
    t.close()
    thread.join(10)
    listener.close()
    assert len(heard) == 2
    for first in heard:
        assert first[:1] == b"\x16"  # a TLS handshake record: a ClientHello
        assert b"CONNECT" not in first and b"s3cret" not in first


def test_an_index_document_trickled_a_byte_at_a_time_is_a_stall() -> None:
    """Small documents go through urllib: the same reader, so a host trickling the index
    does not hold mx install for ever either."""
    stop = threading.Event()

    def answer(n: int, head: bytes, conn: socket.socket) -> None:
        whole = ok(b"{}" * 1000)
        for i in range(len(whole)):
            if stop.wait(0.2):
                return
            conn.sendall(whole[i:i + 1])

    with raw_host(answer) as host:
        t = transport(read_timeout=1, retries=1, backoff=0.01)
        t.sleep = time.sleep
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"too slowly.*gave up after 1 retries"):
            t.get(host.url + "index.json", 1 << 20)
        stop.set()
        t.close()
    assert time.monotonic() - started < 10
