"""`Transport.download(..., exact=False)`: the size is a cap and the host says the length,
over real HTTP hosts on 127.0.0.1 (a static one, and a raw socket for what http.server
cannot send), into both kinds of sink, and from file:// and lfs+file URLs."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mx.client.partfile import PartWriter
from mx.config import Limits
from mx.errors import FetchError, IntegrityError
from mx.http import Sink, Transport
from tests.support.rawhost import ok, raw_host
from tests.support.servers import static_host
from tests.support.sinks import Collect

BODY = bytes(range(256)) * 64  # 16 KiB


class Target:
    """A sink of either kind: chunks into memory, or a part file the body writes into."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / "part"
        self._fd = -1
        self._writer: PartWriter | None = None
        self._collect = Collect()

    def open(self) -> Sink:
        if self.kind == "chunks":
            return self._collect
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._writer = PartWriter(self._fd)
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            os.close(self._fd)

    def data(self) -> bytes:
        if self.kind == "chunks":
            return bytes(self._collect.data)
        assert self._writer is not None
        on_disk = self.path.read_bytes()
        assert len(on_disk) == self._writer.size  # what the sink counted is what landed
        return on_disk


@pytest.fixture(params=["chunks", "file"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    t = Target(request.param, tmp_path)
    yield t
    t.close()


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "blob").write_bytes(BODY)
    return root


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


def transport(**limits: float) -> Transport:
    t = Transport(Limits(**{"connect_timeout": 5, "read_timeout": 5, "backoff": 0.001,
                            **limits}))  # type: ignore[arg-type]
    t.sleep = lambda seconds: None
    return t


def chunked(body: bytes, step: int = 1000, end: bool = True) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    parts = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step])
                     for i in range(0, len(body), step))
    return head + parts + (b"0\r\n\r\n" if end else b"")


def partial(body: bytes, first: int, total: int) -> bytes:
    rest = body[first:]
    return (b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n"
            b"Content-Range: bytes %d-%d/%d\r\n\r\n" % (len(rest), first, total - 1, total)
            + rest)


@pytest.mark.parametrize("cap", [len(BODY), len(BODY) + 1, 10 * len(BODY)])
def test_a_content_length_at_most_the_cap_is_the_size(www: Path, target: Target,
                                                      cap: int) -> None:
    with static_host(www) as host:
        t = transport()
        t.download(host.url + "blob", target.open(), cap, exact=False)
        t.close()
        requests = list(host.faults.requests)
    assert target.data() == BODY
    assert [r for _, r, _ in requests] == [None]  # no Range after the end: it was complete


def test_a_content_length_over_the_cap_is_refused_before_the_body(www: Path,
                                                                  target: Target) -> None:
    with static_host(www) as host:
        t = transport()
        url = host.url + "blob"
        with pytest.raises(IntegrityError) as caught:
            t.download(url, target.open(), len(BODY) - 1, exact=False)
        t.close()
        requests = list(host.faults.requests)
    assert str(caught.value).startswith(f"{url}: ")
    assert f"{len(BODY)} bytes" in str(caught.value) and f"cap of {len(BODY) - 1}" in str(
        caught.value)
    assert "\n" not in str(caught.value) and caught.value.hint
    assert target.data() == b""  # not a byte of the body was taken
    assert len(requests) == 1  # and it was not retried


def test_the_same_host_with_the_size_exact_still_fails(www: Path) -> None:
    """The cap is opt-in: an exact size larger than the file is a file that ends early."""
    with static_host(www) as host:
        t = transport(retries=1)
        with pytest.raises(FetchError) as caught:
            t.download(host.url + "blob", Collect(), len(BODY) + 1)
        t.close()
    assert caught.value.status == 416


@pytest.mark.parametrize("size", [1, len(BODY) - 1, len(BODY)])
def test_a_chunked_body_under_or_at_the_cap_is_read_to_its_end(target: Target,
                                                               size: int) -> None:
    body = BODY[:size]
    with raw_host(lambda n, head, conn: chunked(body)) as host:
        t = transport()
        t.download(host.url + "blob", target.open(), len(BODY), exact=False)
        t.download(host.url + "blob", Collect(), len(BODY), exact=False)  # on the same connection
        t.close()
    assert target.data() == body
    assert len(host.heads) == 2 and host.connections == 1


def test_a_chunked_body_over_the_cap_is_an_integrity_error(target: Target) -> None:
    with raw_host(lambda n, head, conn: chunked(BODY)) as host:
        t = transport()
        with pytest.raises(IntegrityError, match=f"more than {len(BODY) - 1} bytes, the cap"):
            t.download(host.url + "blob", target.open(), len(BODY) - 1, exact=False)
        t.close()
    assert len(host.heads) == 1
    assert len(target.data()) <= len(BODY) - 1


def test_a_body_read_to_the_close_is_complete(target: Target) -> None:
    def answer(n: int, head: bytes, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
                     + BODY)

    with raw_host(answer) as host:
        t = transport()
        t.download(host.url + "blob", target.open(), 2 * len(BODY), exact=False)
        t.close()
    assert target.data() == BODY


def test_a_drop_mid_body_resumes_with_range_for_the_announced_length(www: Path,
                                                                     target: Target) -> None:
    with static_host(www) as host:
        host.faults.truncate["/blob"] = 1  # the first answer stops half-way
        t = transport()
        t.download(host.url + "blob", target.open(), 4 * len(BODY), exact=False)
        t.close()
        ranges = [r for _, r, _ in host.faults.requests]
    assert target.data() == BODY
    assert ranges == [None, f"bytes={len(BODY) // 2}-"]


def test_the_first_announced_length_is_kept_after_a_drop() -> None:
    """A retry whose 206 announces another total (still under the cap) is another file."""
    half = len(BODY) // 2

    def answer(n: int, head: bytes, conn: socket.socket) -> None:
        if n == 0:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY)
                         + BODY[:half])
            return
        conn.sendall(partial(BODY + BODY, half, 2 * len(BODY)))

    with raw_host(answer) as host:
        t = transport()
        sink = Collect()
        with pytest.raises(IntegrityError, match=f"is {2 * len(BODY)} bytes; the index "
                                                 f"promised {len(BODY)}"):
            t.download(host.url + "blob", sink, 4 * len(BODY), exact=False)
        t.close()
    assert b"Range: bytes=%d-" % half in host.heads[1]
    assert bytes(sink.data) == BODY[:half]


def test_a_chunked_body_cut_short_resumes_and_takes_the_206_total(target: Target) -> None:
    """A chunked body cut mid-chunk is a drop, not an end: the retry asks for the rest,
    and the 206's total becomes the size. (What one read of http.client's was filling
    when the cut came is lost, so the body is several reads long.)"""
    big = BODY * 40  # 640 KiB: more than a buffer of landing's (256 KiB)
    cut = chunked(big, step=1 << 16, end=False)[:-500]  # in the last chunk's data

    def answer(n: int, head: bytes, conn: socket.socket) -> None:
        if n == 0 or b"Range: bytes=" not in head:
            conn.sendall(cut)
            return
        first = int(head.split(b"Range: bytes=")[1].split(b"-")[0])
        conn.sendall(partial(big, first, len(big)))

    with raw_host(answer) as host:
        t = transport(chunk_size=1 << 16)
        t.download(host.url + "blob", target.open(), 2 * len(big), exact=False)
        t.close()
    assert target.data() == big
    assert len(host.heads) == 2 and b"Range: bytes=" in host.heads[1]


@pytest.mark.parametrize("fields", [
    [b"Content-Length: abc"],  # int() fails: http.client would read to the close
    [b"Content-Length: +16"],  # int() takes it, RFC 9110 does not
    [b"Content-Length: 1_6"],
    [b"Content-Length: 16", b"Content-Length: 17"],  # conflicting
], ids=["garbage", "plus", "underscore", "conflicting"])
def test_a_malformed_or_conflicting_content_length_is_refused(fields: list[bytes]) -> None:
    def answer(n: int, head: bytes, conn: socket.socket) -> bytes:
        return b"HTTP/1.1 200 OK\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + (
            BODY[:16])

    with raw_host(answer) as host:
        t = transport()
        sink = Collect()
        with pytest.raises(FetchError, match="Content-Length") as caught:
            t.download(host.url + "blob", sink, len(BODY), exact=False)
        t.close()
    assert caught.value.url == host.url + "blob"
    assert bytes(sink.data) == b"" and len(host.heads) == 1


@pytest.mark.parametrize("answer_bytes,expected", [
    (ok(b""), b""),  # a real 0 is an empty object
    (b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\nContent-Length: 16\r\n\r\n" + BODY[:16],
     BODY[:16]),  # repeated identically: one length
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
     + chunked(BODY)[len(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"):],
     BODY),  # chunked wins over Content-Length, as http.client frames it
], ids=["zero", "repeated", "chunked-wins"])
def test_content_length_forms_that_are_one_length(answer_bytes: bytes,
                                                  expected: bytes) -> None:
    with raw_host(lambda n, head, conn: answer_bytes) as host:
        t = transport()
        sink = Collect()
        t.download(host.url + "blob", sink, len(BODY), exact=False)
        t.close()
    assert bytes(sink.data) == expected


def test_a_resume_of_a_complete_object_ends_at_the_416(www: Path) -> None:
    """Asked for the bytes after all of them, the host answers 416 `bytes */<length>`:
    with the length unknown, that says the sink holds the whole object."""
    with static_host(www) as host:
        t = transport()
        sink = Collect(BODY)
        t.download(host.url + "blob", sink, 2 * len(BODY), offset=len(BODY), exact=False)
        with pytest.raises(FetchError, match="no bytes from") as caught:
            t.download(host.url + "blob", Collect(BODY + b"x"), 2 * len(BODY),
                       offset=len(BODY) + 1, exact=False)
        t.close()
    assert bytes(sink.data) == BODY and caught.value.status == 416


def test_file_urls_with_a_cap_and_with_an_exact_size(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(BODY)
    url = path.as_uri()
    t = transport()
    sink = Collect()
    t.download(url, sink, 2 * len(BODY), exact=False)  # shorter than the cap: fine
    assert bytes(sink.data) == BODY
    with pytest.raises(IntegrityError, match=f"larger than the {len(BODY) - 1}-byte cap"):
        t.download(url, Collect(), len(BODY) - 1, exact=False)
    sink = Collect(b"stale")
    t.download(url, sink, len(BODY), offset=5)  # exact: the whole file, again
    assert bytes(sink.data) == BODY
    with pytest.raises(IntegrityError) as short:
        t.download(url, Collect(), len(BODY) + 1)  # exact, and the file is shorter
    assert str(short.value).startswith(f"{url}: {len(BODY)} bytes")
    assert f"promised {len(BODY) + 1}" in str(short.value)


def test_an_lfs_object_has_its_pointer_size_whatever_the_cap(tmp_path: Path) -> None:
    oid = "ab" * 32
    store = tmp_path / "repo" / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4]
    store.mkdir(parents=True)
    (store / oid).write_bytes(BODY)
    url = f"lfs+{(tmp_path / 'repo').as_uri()}#{oid}"
    t = transport()
    sink = Collect()
    t.download(url, sink, len(BODY), exact=False)
    assert bytes(sink.data) == BODY
    with pytest.raises(IntegrityError, match="promised"):
        t.download(url, Collect(), len(BODY) + 1, exact=False)  # taken as exact
