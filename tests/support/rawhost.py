"""A hostile HTTP host on 127.0.0.1 that answers with exactly the bytes a test gives it:
malformed heads, interim responses, bytes after the body, trickles. http.server cannot
send most of these; this is a bare socket."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# What the host does with the n-th request (0-based, over every connection): bytes to send
# (then it reads the next request on the same connection), or None after it has written
# what it wants to the socket itself (then it closes the connection).
Answer = Callable[[int, bytes, socket.socket], bytes | None]


@dataclass
class RawHost:
    url: str  # http://127.0.0.1:PORT/
    heads: list[bytes] = field(default_factory=list)  # every request head, in order
    connections: int = 0


def ok(body: bytes, *extra: bytes) -> bytes:
    """A plain 200 with Content-Length and `extra` header lines."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(h + b"\r\n" for h in extra) + b"\r\n" + body


@contextmanager
def raw_host(answer: Answer) -> Iterator[RawHost]:
    listener = socket.create_server(("127.0.0.1", 0))
    host = RawHost(f"http://127.0.0.1:{listener.getsockname()[1]}/")
    lock = threading.Lock()
    conns: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                with lock:
                    n = len(host.heads)
                    host.heads.append(head)
                reply = answer(n, head, conn)
                if reply is None:
                    return
                conn.sendall(reply)
        except OSError:
            pass  # the client hung up, as it may
        finally:
            conn.close()

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            with lock:
                host.connections += 1
                conns.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield host
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (Linux)
        listener.close()
        with lock:
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
