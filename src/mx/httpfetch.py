"""http(s) artifacts for the Transport: one stream into a sink from an offset, resumed with
Range after a drop (on the first request and every retry), capped at the promised size.

The sink is either kind: a plain `Sink` gets the body in chunks, a `FileSink` has it
written into its file by the body itself (`mx.httpbody.Body.into_file`).

The size is exact (an index's artifact), or only a cap (`exact` off): then the first answer
that announces the object's length (a 200's Content-Length, a 206's Content-Range total)
makes it the size, and every check of an exact download applies from there on. An answer
that announces none (chunked, or read to the connection's close) is read to its end.
"""

from __future__ import annotations

import re
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

_DECIMAL = re.compile(r"[0-9]{1,20}")  # int() takes "+5", "5_0" and other scripts' digits
OVER_CAP = "the file on the server is not the one expected, or larger than mx accepts here"


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


def _framing(r: httpbody.Body, url: str) -> int | None:
    """The body's Content-Length, or None when it has none (chunked: Transfer-Encoding
    overrides it, as http.client frames it; or read to the connection's close).

    Anything but one plain decimal (repeated identically at most) is refused: http.client
    frames the body by a lax int() of the first field, so a length read otherwise here
    would not be where the body ends, and RFC 9112 (6.3) makes such a length an
    unrecoverable error. `_content_length`'s 0 for garbage would read as an empty object.
    """
    if (r.headers.get("Transfer-Encoding") or "").lower() == "chunked":  # http.client's test
        return None
    values = [v.strip(" \t") for v in r.headers.get_all("Content-Length") or []]
    if not values:
        return None
    if not all(_DECIMAL.fullmatch(v) for v in values) or len({int(v) for v in values}) > 1:
        raise FetchError(f"{url}: the server answered with Content-Length "
                         f"{', '.join(values)[:100]!r}, not one length",
                         hint="the host frames its answers ambiguously", url=url)
    return int(values[0])


def _announced(r: httpbody.Body, url: str, got: int, cap: int) -> int | None:
    """The object's length as a 200 or 206 announces it, at most `cap`; None when it does
    not say (then the body is read to its end)."""
    length = _framing(r, url)
    if r.status_code == 206:  # Content-Length is the part's; the total is the object's
        span = content_range(r.headers.get("Content-Range"))
        length = span[2] if span is not None else None
    if length is None:
        return None
    if length > cap:  # refused before a byte of the body is read
        raise IntegrityError(f"{url}: the server's file is {length} bytes, over the cap of "
                             f"{cap}", hint=OVER_CAP)
    if r.status_code == 206 and got > length:
        raise IntegrityError(f"{url}: the server's file is {length} bytes; {got} arrived "
                             "before", hint=OVER_CAP)
    return length


def download(transport: Transport, url: str, sink: Sink, size: int,
             progress: Callable[[int], None] | None, headers: dict[str, str] | None,
             offset: int, exact: bool = True) -> None:
    """`url` from `offset` on into `sink` (which holds `offset` bytes), until it holds
    `size` bytes; with `exact` off, `size` is a cap and the host says the length."""
    got = offset
    attempt = 0
    known = exact  # whether `size` is the object's length yet, or only the cap
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
                    if not known and ((r.headers.get("Content-Range") or "").strip()
                                      == f"bytes */{got}"):
                        return  # the sink holds all of it; a drop took only the body's end
                    raise FetchError(f"{url}: the server's file ends after {got} bytes; "
                                     f"the index promised {size}" if known else
                                     f"{url}: the server has no bytes from {got} on",
                                     hint="the artifact on the server is not the one "
                                          "indexed", url=url, status=416)
                if not known and r.status_code in (200, 206):
                    length = _announced(r, url, got, size)
                    if length is not None:
                        size, known = length, True  # kept for every retry after this
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
                        "promised" if known else
                        f"{url}: the server sent more than {size} bytes, the cap",
                        hint="the artifact on the server is not the one indexed" if known
                        else OVER_CAP)
            if not known:
                # No length announced: the body's end (the last chunk, or the close) is
                # the object's; a connection cut short cleanly looks the same, and is
                # left to the caller's checks.
                return
            if got < size:
                raise _Retry(f"connection closed after {got} of {size} bytes")
            return
        except (_Retry, *httpbody.TransportFailure) as exc:
            if known and got == size:
                # Every promised byte arrived and then the connection broke (a host
                # that announced more than it sends): the caller's sha256 decides.
                return
            attempt = 1 if got - mark >= PROGRESS_BYTES else attempt + 1
            transport._backoff(attempt, url, exc)
