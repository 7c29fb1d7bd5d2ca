"""https hosts through an https:// proxy: TLS to the proxy, CONNECT inside it, and the
origin's TLS session inside that tunnel (TLS in TLS), as curl, pip and huggingface_hub do.

http.client (and urllib) can only send a CONNECT in the clear: to a proxy that speaks TLS
it would hand the proxy's credentials to anyone on the path. Here the CONNECT goes over a
verified TLS session with the proxy, and the origin's session runs in memory
(`ssl.SSLContext.wrap_bio`) over it, like urllib3's SSLTransport, with only what
http.client and `mx.httpbody` ask of a socket.
"""

from __future__ import annotations

import base64
import http.client
import io
import socket
import ssl
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

from mx.errors import FetchError

_T = TypeVar("_T")
_RECORD = 1 << 16  # what one read from the proxy asks for: more than a TLS record
_MAX_HEAD_LINE = 65536  # http.client's own limit on a header line


def proxy_authorization(proxy: str) -> dict[str, str]:
    """Basic credentials from the proxy URL's userinfo (percent-decoded), or none."""
    p = urllib.parse.urlsplit(proxy)
    if p.username is None:
        return {}
    user = urllib.parse.unquote(p.username)
    password = urllib.parse.unquote(p.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Proxy-Authorization": f"Basic {token}"}


def shown(proxy: str) -> str:
    """The proxy as messages name it: never its credentials."""
    p = urllib.parse.urlsplit(proxy)
    return f"{p.scheme}://{p.netloc.rpartition('@')[2]}"


class TunnelSocket:
    """The origin's TLS session carried inside the proxy's TLS session, as a socket.

    Closing it while a reader from `makefile` is open defers the close to that reader's,
    as socket.socket does: urllib closes the connection right after the head and reads
    the body through the response's reader."""

    def __init__(self, outer: ssl.SSLSocket, context: ssl.SSLContext, hostname: str) -> None:
        self._outer = outer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=hostname)
        self._readers = 0
        self._closing = False
        self._io(self._tls.do_handshake)  # verifies the origin's certificate and name

    def _io(self, op: Callable[[], _T]) -> _T:
        """Run `op` on the inner session, moving its records to and from the proxy's
        session until it needs no more."""
        while True:
            try:
                result = op()
            except ssl.SSLWantReadError:
                self._flush()
                data = self._outer.recv(_RECORD)  # the socket's timeout applies here
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
                continue
            except ssl.SSLWantWriteError:  # the memory BIO is unbounded: flush and go on
                self._flush()
                continue
            self._flush()
            return result

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self._outer.sendall(data)

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        n = nbytes or len(buffer)
        if not n:
            return 0
        try:
            # With a buffer, read gives the count (typeshed says bytes).
            return int(self._io(lambda: self._tls.read(n, buffer)))
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            # The end of the stream, with or without close_notify: what SSLSocket's
            # suppress_ragged_eofs makes of it (a short body is the caller's to count).
            return 0

    def recv(self, size: int) -> bytes:
        buffer = bytearray(size)
        return bytes(buffer[:self.recv_into(buffer)])

    def send(self, data: Any) -> int:
        return self._io(lambda: self._tls.write(data))

    def sendall(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while view:
            view = view[self.send(view):]

    def makefile(self, mode: str = "rb", buffering: int | None = None) -> io.IOBase:
        """A reader (http.client's only use): unbuffered with buffering=0."""
        if mode != "rb":
            raise ValueError(f"a tunnel socket reads only: mode {mode!r}")
        self._readers += 1
        raw = _Reader(self)
        return raw if buffering == 0 else io.BufferedReader(raw)

    def pending(self) -> int:
        """Bytes already come from the proxy and not yet read (poll does not see them)."""
        return self._tls.pending() + self._incoming.pending + self._outer.pending()

    def settimeout(self, timeout: float | None) -> None:
        self._outer.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._outer.gettimeout()

    def fileno(self) -> int:
        return self._outer.fileno()  # for poll: the inner session's bytes arrive there

    def shutdown(self, how: int) -> None:
        self._outer.shutdown(how)

    def close(self) -> None:
        # No close_notify to the origin: closing the TCP connection ends both sessions.
        self._closing = True
        if not self._readers:
            self._outer.close()

    def _reader_closed(self) -> None:
        self._readers -= 1
        if self._closing and not self._readers:
            self._outer.close()


class _Reader(io.RawIOBase):
    """What makefile("rb", buffering=0) gives: reads through the tunnel."""

    def __init__(self, sock: TunnelSocket) -> None:
        super().__init__()
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self._sock.recv_into(b)

    def close(self) -> None:
        if not self.closed:
            self._sock._reader_closed()
        super().close()


def _connect(outer: ssl.SSLSocket, host: str, port: int, proxy: str) -> None:
    """CONNECT host:port over the proxy's TLS session; its answer read to the head's end
    one byte at a time, so that nothing of the origin's first record is taken with it."""
    try:
        name = host.encode("ascii").decode()
    except UnicodeError:
        name = host.encode("idna").decode()
    authority = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
    head = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    head += [f"{k}: {v}" for k, v in proxy_authorization(proxy).items()]
    outer.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    with outer.makefile("rb", buffering=0) as reader:
        line = reader.readline(_MAX_HEAD_LINE + 1)
        if not line:
            raise http.client.RemoteDisconnected(
                f"the proxy {shown(proxy)} closed the connection before answering CONNECT")
        parts = line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise http.client.BadStatusLine(f"the proxy {shown(proxy)} answered CONNECT "
                                            f"with {line[:80]!r}")
        status = int(parts[1])
        http.client.parse_headers(reader)  # bounded in line length and count
    if not 200 <= status < 300:
        # The reason phrase is the proxy's: bounded and printable before it is shown.
        reason = "".join(c for c in (parts[2] if len(parts) > 2 else "")[:80]
                         if c.isprintable()).strip()
        answer = f"{status} {reason}".strip()
        raise FetchError(f"https://{authority}: the proxy {shown(proxy)} refused the "
                         f"tunnel (HTTP {answer})",
                         hint=("the proxy wants other credentials: set them in https_proxy "
                               "(https://user:password@host:port)") if status == 407
                         else "check the proxy, or set no_proxy for this host",
                         url=f"https://{authority}/", status=status)


def open_tunnel(proxy: str, host: str, port: int, context: ssl.SSLContext,
                timeout: Any) -> TunnelSocket:
    """A socket to https://host:port through the https:// proxy `proxy`: both sessions
    verified with `context`, the whole setup bounded by `timeout` on every wait."""
    p = urllib.parse.urlsplit(proxy)
    proxy_host = p.hostname or ""
    sock: socket.socket = socket.create_connection((proxy_host, p.port or 443), timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            # wrap_socket takes the descriptor over: from here `sock` is the TLS socket.
            sock = outer = context.wrap_socket(sock, server_hostname=proxy_host)
        except ssl.SSLCertVerificationError as exc:
            # Before a byte of the request (or a credential) went out; a retry would not
            # verify either.
            raise FetchError(f"https://{host}:{port}: the proxy {shown(proxy)}'s TLS "
                             f"certificate is not trusted ({exc.verify_message or exc})",
                             hint="point SSL_CERT_FILE (or SSL_CERT_DIR) at your CA's "
                                  "certificates", url=f"https://{host}:{port}/") from None
        _connect(outer, host, port, proxy)
        return TunnelSocket(outer, context, host)
    except BaseException:
        sock.close()
        raise


class TunnelledHTTPS(http.client.HTTPSConnection):
    """An http.client connection to https://host:port through the https:// proxy `proxy`
    (its credentials from its URL, sent only inside its TLS session)."""

    def __init__(self, host: str, port: int | None = None, *, proxy: str,
                 context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(host, port, context=context, **kwargs)
        self._proxy = proxy
        self._tls = context

    def set_tunnel(self, host: str, port: int | None = None,
                   headers: Any = None) -> None:
        # urllib asks for a clear-text CONNECT (with the proxy's credentials in `headers`):
        # this connection makes its own tunnel, to the host it was made for.
        pass

    def connect(self) -> None:
        # http.client types sock loosely; the tunnel gives what http.client uses of one.
        self.sock = open_tunnel(self._proxy, self.host, self.port, self._tls, self.timeout)
