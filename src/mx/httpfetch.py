"""http(s) artifacts for the Transport: one stream into a sink from an offset, resumed with
Range after a drop (on the first request and every retry), capped at the promised size.

The sink is either kind: a plain `Sink` gets the body in chunks, a `FileSink` has it
written into its file by the body itself (`mx.httpbody.Body.into_file`).
"""

from __future__ import annotations

from collections.abc import Callable

from mx import httpbody
from mx.errors import FetchError, IntegrityError
from mx.http import Transport
from mx.httpbase import (
    PROGRESS_BYTES,
    FileSink,
    Sink,
    _Retry,
    _retry_after,
    _status_hint,
    content_range,
)


def _resumes_at(value: str | None, got: int, size: int, url: str) -> int:
    """Where the bytes of a 206 answer to `Range: bytes=got-` start: `got`, or 0 when the
    host sends the whole file as a 206 (some do, whatever the Range asked). Written after
    the prefix, any other bytes would fail the sha256 as an IntegrityError, which forbids
    the artifact's other URLs; a host that answers Range wrongly is a FetchError."""
    if value is None:
        return got  # no Content-Range: taken at its word
    span = content_range(value)
    if span is not None and span[2] is not None and span[2] != size:
        raise IntegrityError(f"{url}: the server's file is {span[2]} bytes; the index "
                             f"promised {size}",
                             hint="the artifact on the server is not the one indexed")
    if span is None or span[2] is None or span[0] not in (got, 0):
        raise FetchError(f"{url}: asked for the bytes from {got} on, the server answered "
                         f"206 with Content-Range {value!r}",
                         hint="the host answers Range requests wrongly", url=url,
                         status=206)
    return span[0]


def download(transport: Transport, url: str, sink: Sink, size: int,
             progress: Callable[[int], None] | None, headers: dict[str, str] | None,
             offset: int) -> None:
    """`url` from `offset` on into `sink` (which holds `offset` bytes), until it holds
    `size` bytes."""
    got = offset
    attempt = 0
    while True:
        mark = got
        h = transport._headers(url, {"Accept-Encoding": "identity", **(headers or {})})
        if got:
            h["Range"] = f"bytes={got}-"
        try:
            with transport._stream(url, h) as r:
                if r.status_code >= 500 or r.status_code == 429:
                    raise _Retry(f"HTTP {r.status_code}",
                                 _retry_after(r.headers.get("Retry-After")))
                if got and r.status_code == 416:
                    raise FetchError(f"{url}: the server's file ends after {got} bytes; "
                                     f"the index promised {size}",
                                     hint="the artifact on the server is not the one "
                                          "indexed", url=url, status=416)
                if got and r.status_code == 200:
                    sink.reset()  # the server ignored Range: start over
                    if progress:
                        progress(-got)
                    got = 0
                elif r.status_code not in (200, 206):
                    raise FetchError(f"{url}: HTTP {r.status_code}",
                                     hint=_status_hint(r.status_code), url=url,
                                     status=r.status_code)
                elif got and _resumes_at(r.headers.get("Content-Range"), got, size,
                                         url) == 0:
                    sink.reset()  # a 206 of the whole file: start over, as for a 200
                    if progress:
                        progress(-got)
                    got = 0
                if isinstance(sink, FileSink):
                    for n in r.into_file(sink.fileno(), got, size - got):
                        got += n
                        sink.landed(n)
                        if progress:
                            progress(n)
                    over = r.overran
                else:
                    over = False
                    # One byte past the promise is enough to know the host lies.
                    for chunk in r.chunks(transport.limits.chunk_size, size + 1 - got):
                        if got + len(chunk) > size:
                            over = True
                            break
                        got += len(chunk)
                        sink.write(chunk)
                        if progress:
                            progress(len(chunk))
                if over:
                    raise IntegrityError(
                        f"{url}: the server sent more than the {size} bytes the index "
                        "promised",
                        hint="the artifact on the server is not the one indexed")
            if got < size:
                raise _Retry(f"connection closed after {got} of {size} bytes")
            return
        except (_Retry, *httpbody.TransportFailure) as exc:
            if got == size:
                # Every promised byte arrived and then the connection broke (a host
                # that announced more than it sends): the caller's sha256 decides.
                return
            attempt = 1 if got - mark >= PROGRESS_BYTES else attempt + 1
            transport._backoff(attempt, url, exc)
