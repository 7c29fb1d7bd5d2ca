"""A hostile Git LFS batch API against the client (Transport.lfs_batch / lfs_href): odd
error objects and answers without end must give one FetchError, never a crash or a
process that holds the whole answer in memory."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mx.config import Limits
from mx.errors import FetchError
from mx.http import Transport

OID = "ab" * 32


@contextmanager
def batch_api(answer: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    """An LFS remote whose batch endpoint answers with `answer(handler)`."""

    class Batch(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            answer(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Batch)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/org/model.git"
    finally:
        server.shutdown()
        server.server_close()


def json_answer(doc: object) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(h: BaseHTTPRequestHandler) -> None:
        body = json.dumps(doc).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/vnd.git-lfs+json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return answer


@pytest.mark.parametrize("error", ["no such object\nsecond line", ["a", "list"], 404])
def test_a_batch_error_that_is_not_an_object_is_one_line(error: object) -> None:
    """The spec's error is {"code", "message"}: a string or a list there was read with
    .get (AttributeError: mx install exit 3, and `mx index build` alike)."""
    with batch_api(json_answer({"objects": [{"oid": OID, "error": error}]})) as remote:
        t = Transport(Limits(retries=0))
        with pytest.raises(FetchError, match=f"LFS object {OID}: ") as refused:
            t.lfs_href(f"lfs+{remote}#{OID}", 10)
        t.close()
    assert "\n" not in str(refused.value)


def test_a_batch_answer_without_end_is_cut_at_the_limit() -> None:
    sent = [0]

    def endless(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/vnd.git-lfs+json")
        h.send_header("Content-Length", str(1 << 40))
        h.end_headers()
        chunk = b" " * (1 << 20)
        try:
            for _ in range(64):
                h.wfile.write(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass  # the client stopped reading, as it should

    with batch_api(endless) as remote:
        t = Transport(Limits(retries=0, max_lfs_batch_bytes=1 << 20))
        with pytest.raises(FetchError, match="over the size limit"):
            t.lfs_href(f"lfs+{remote}#{OID}", 10)
        t.close()
    # Read no further than the limit (what the sockets buffer aside), not all 64 MiB.
    assert sent[0] < 32 << 20


def test_a_batch_answer_trickled_a_byte_at_a_time_is_a_stall() -> None:
    stop = threading.Event()

    def trickle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        try:
            while not stop.wait(0.2):
                h.wfile.write(b" ")
                h.wfile.flush()
        except OSError:
            pass

    with batch_api(trickle) as remote:
        t = Transport(Limits(retries=0, read_timeout=1))
        started = time.monotonic()
        with pytest.raises(FetchError, match="too slowly"):
            t.lfs_href(f"lfs+{remote}#{OID}", 10)
        stop.set()
        t.close()
    assert time.monotonic() - started < 10
