"""Connections that cannot be held open by clients that never finish a request.

uvicorn times out idle keep-alive connections only: a client that sends half its headers,
or headers and then part of a body, keeps its socket (and file descriptor) until it
leaves. `guarded_protocol` adds two deadlines to uvicorn's HTTP/1.1 protocol:

- header: from a connection's start (or a request's first byte on a reused connection)
  to the end of the request head; past it the server answers 408 and closes;
- body: from the request head to the end of its body. The app answers 408 itself when it
  reads the body (`intake.read_body`); this one, a little later, closes connections whose
  body nobody reads, e.g. after an early 413 or 503.

The protocol is uvicorn's httptools one (llhttp, in C) when httptools is installed (the
`serve` extra installs it), else its h11 one (pure Python: on a small request it costs
as much again as everything else the server does).
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

BODY_GRACE = 1.0  # seconds the app has to answer its own 408 before the socket closes
# bytes a request head may hold on httptools, as h11's limit (uvicorn's
# h11_max_incomplete_event_size default) is on h11
MAX_HEAD = 16 << 10
BODY_RECEIVED = "mx.body_received"  # scope extension: the whole body is in (httptools only)


class _Deadlines:
    """The two deadlines over a protocol: `_enter(phase)` as a request moves along."""

    header_timeout: float
    body_timeout: float
    on_timeout: Callable[[str], None]
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    phase: str | None = None  # "header", "body" or None (no deadline of ours running)
    timer: asyncio.TimerHandle | None = None

    def _enter(self, phase: str | None) -> None:
        if phase == self.phase:
            return  # a deadline runs from the phase's start, however many bytes trickle
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.phase = phase
        if phase is not None:
            delay = self.header_timeout if phase == "header" else self.body_timeout + BODY_GRACE
            self.timer = self.loop.call_later(delay, self._expire)

    def _partial_head(self) -> bool:
        raise NotImplementedError

    def _expire(self) -> None:
        self.timer = None
        if self.transport.is_closing():
            return
        self.on_timeout(f"{self.phase}_timeout")
        if self.phase == "header" and self._partial_head():
            message = f"request head not received within {self.header_timeout:g} s".encode()
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\n"
                                 b"content-type: text/plain; charset=utf-8\r\n"
                                 b"connection: close\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(message), message))
        self.transport.close()


def guarded_protocol(header_timeout: float, body_timeout: float,
                     on_timeout: Callable[[str], None], http: str = "auto") -> type[Any]:
    """uvicorn's protocol with the two deadlines; `on_timeout(reason)` counts them.
    `http`: "httptools", "h11", or "auto" (httptools when installed)."""
    base: type[Any] = _h11_guarded()
    if http != "h11":
        try:
            base = _httptools_guarded()
        except ImportError:
            if http == "httptools":
                raise
    settings = {"header_timeout": header_timeout, "body_timeout": body_timeout,
                "on_timeout": staticmethod(on_timeout)}
    return type("Guarded", (base,), settings)


def _h11_guarded() -> type[Any]:
    class GuardedH11(_Deadlines, H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._enter("header")

        def connection_lost(self, exc: Exception | None) -> None:
            self._enter(None)
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            state = self.conn.their_state
            if state is h11.SEND_BODY:
                self._enter("body")
            elif state is h11.IDLE and (self.timeout_keep_alive_task is None
                                        or self.conn.trailing_data[0]):
                # a request head has begun (pipelined after the last one, too), or nothing
                # came yet
                self._enter("header")
            else:  # the whole request is in, or uvicorn's keep-alive timeout runs
                self._enter(None)

        def _partial_head(self) -> bool:
            return bool(self.conn.trailing_data[0])

    return GuardedH11


def _httptools_guarded() -> type[Any]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpTools(_Deadlines, HttpToolsProtocol):
        in_head = False  # a request head has begun and not ended
        wanted: str | None = "header"  # the phase the parser's callbacks left a request in
        ended = False  # a request ended within the data being read
        began = False  # a request began within the data being read
        head_bytes = 0  # bytes of the unfinished head read after the read it began in
        max_head = MAX_HEAD

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._enter("header")

        def connection_lost(self, exc: Exception | None) -> None:
            self._enter(None)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            # the deadline follows the request once the data is read: a request that comes
            # whole in one read starts and stops no timer
            self.ended = self.began = False
            was_in_head = self.in_head
            super().data_received(data)
            if self.transport.is_closing():
                self._enter(None)
                return
            if self.in_head:
                # llhttp has no limit on a head's size (h11 has 16 KiB): without this a
                # client fills memory with one endless header until the deadline. Reads
                # wholly inside a head count (the one it began in is at most a read more).
                self.head_bytes = self.head_bytes + len(data) \
                    if was_in_head and not self.began else 0
                if self.head_bytes > self.max_head:
                    self.on_timeout("head_too_large")
                    self._refuse(431, "Request Header Fields Too Large",
                                 f"request head over {self.max_head} bytes")
                    return
            if self.ended and self.wanted is not None:
                self._enter(None)  # the next request's deadline runs from its own start
            if self.wanted is None and self.timeout_keep_alive_task is None \
                    and (self.cycle is None or self.cycle.response_complete):
                # bytes on an idle connection that began no request (a bare CRLF, or
                # anything after an upgrade llhttp will not parse past): uvicorn stopped
                # its keep-alive timer on them, so without a deadline here the socket
                # would be held for ever
                self.wanted = "header"
            self._enter(self.wanted)

        def _refuse(self, status: int, reason: str, message: str) -> None:
            self._enter(None)
            body = message.encode()
            self.transport.write(b"HTTP/1.1 %d %s\r\n"
                                 b"content-type: text/plain; charset=utf-8\r\n"
                                 b"connection: close\r\n"
                                 b"content-length: %d\r\n\r\n%s"
                                 % (status, reason.encode(), len(body), body))
            self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.in_head, self.wanted, self.began = True, "header", True

        def on_headers_complete(self) -> None:
            self.in_head = False
            super().on_headers_complete()
            self.wanted = "body"

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self.wanted, self.ended = None, True
            # the app may read it without a deadline of its own (intake.read_body)
            self.scope.setdefault("extensions", {})[BODY_RECEIVED] = {}

        def _partial_head(self) -> bool:
            return self.in_head

    return GuardedHttpTools


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one (each connection takes one;
    1,024 soft is a common default); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # e.g. macOS caps it below an infinite hard limit
            pass
    return soft
