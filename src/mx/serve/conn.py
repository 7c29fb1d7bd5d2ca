"""Connections that cannot be held open by clients that never finish a request.

uvicorn times out idle keep-alive connections only: a client that sends half its headers,
or headers and then part of a body, keeps its socket (and file descriptor) until it
leaves. `guarded_protocol` adds two deadlines to uvicorn's h11 protocol:

- header: from a connection's start (or a request's first byte on a reused connection)
  to the end of the request head; past it the server answers 408 and closes;
- body: from the request head to the end of its body. The app answers 408 itself when it
  reads the body (`intake.read_body`); this one, a little later, closes connections whose
  body nobody reads, e.g. after an early 413 or 503.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

BODY_GRACE = 1.0  # seconds the app has to answer its own 408 before the socket closes


def guarded_protocol(header_timeout: float, body_timeout: float,
                     on_timeout: Callable[[str], None]) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the two deadlines; `on_timeout(reason)` counts them."""

    class Guarded(H11Protocol):
        phase: str | None = None  # "header", "body" or None (no deadline of ours running)
        timer: asyncio.TimerHandle | None = None

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
            elif state is h11.IDLE and self.timeout_keep_alive_task is None:
                self._enter("header")  # a request head has begun, or nothing came yet
            else:  # the whole request is in, or uvicorn's keep-alive timeout runs
                self._enter(None)

        def _enter(self, phase: str | None) -> None:
            if phase == self.phase:
                return  # a deadline runs from the phase's start, however many bytes trickle
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            self.phase = phase
            if phase is not None:
                delay = header_timeout if phase == "header" else body_timeout + BODY_GRACE
                self.timer = self.loop.call_later(delay, self._expire)

        def _expire(self) -> None:
            self.timer = None
            if self.transport.is_closing():
                return
            on_timeout(f"{self.phase}_timeout")
            if self.phase == "header" and self.conn.trailing_data[0]:
                message = f"request head not received within {header_timeout:g} s".encode()
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\n"
                                     b"content-type: text/plain; charset=utf-8\r\n"
                                     b"connection: close\r\n"
                                     b"content-length: %d\r\n\r\n%s" % (len(message), message))
            self.transport.close()

    return Guarded


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
