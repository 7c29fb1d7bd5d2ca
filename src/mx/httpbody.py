"""Artifact bodies over HTTP/1.1 with the standard library, straight into files.

A download is bytes from a socket to a file and a hash, nothing more, and on two cores
the Python work per byte is what separates it from curl: httpx/h11 turn every read into
events and copies (about a second of CPU per GiB here). Here the head is parsed by
http.client and the body goes to the file by `mx.landing` (splice(2) on plain TCP, else
`readinto` one reused buffer, in C with the GIL released), while the hash reads it back
on another thread.

`Connections` keeps idle keep-alive connections per origin for the threads of one
Transport; `Body` is one response. Redirects, credentials and retries stay the caller's
(`Transport._stream`): this module sends exactly the request it is given. Proxies from
the environment (http_proxy, https_proxy, no_proxy) are honoured as urllib honours them:
plain http through the proxy with the absolute URL, https through a CONNECT tunnel (to
an https:// proxy inside its own TLS session: `mx.tlstunnel`).
"""

from __future__ import annotations

import functools
import http.client
import io
import select
import socket
import ssl
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

from mx import landing, tlstunnel

# What a failed exchange raises here: the connection broke, timed out, or spoke no HTTP.
# ssl.SSLError is an OSError. The caller retries these as it retries a dropped transfer.
TransportFailure = (http.client.HTTPException, OSError)

_Key = tuple[str, str, int, str]  # scheme, host, port, proxy URL ("" for none)

# Interim (1xx) answers taken before a response's own: a CDN sends one or two.
MAX_INTERIM = 100

# What may go on the request line unquoted (requests' requote_uri): a Location header or
# an index may carry raw UTF-8 or spaces, which http.client refuses to send.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


def env_proxy(scheme: str) -> str:
    """The proxy URL the environment names for `scheme` (what urllib's ProxyHandler uses),
    or "". A value without a scheme (`proxy.corp:3128`) is an http proxy, as urllib and
    curl read it."""
    proxy = urllib.request.getproxies().get(scheme, "")
    if proxy and "://" not in proxy:
        proxy = "http://" + proxy
    return proxy


def _proxy_for(scheme: str, host: str) -> str:
    """The proxy URL for `scheme://host`, or "" (no_proxy names the host, or none is set)."""
    if urllib.request.proxy_bypass(host):
        return ""
    return env_proxy(scheme)


class _Paced(io.RawIOBase):
    """The socket as http.client reads it (head and body), failing a read with a timeout
    once a read_timeout window brought fewer than landing.MIN_RATE bytes a second."""

    def __init__(self, sock: socket.socket, window: float) -> None:
        super().__init__()
        # The socket's own reader: it keeps the descriptor open after http.client closes
        # the connection under a response read to its end of file (no Content-Length).
        self._raw = sock.makefile("rb", buffering=0)
        self._pace = landing.Pace(window)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._raw.readinto(b) or 0  # silence for read_timeout raises here
        self._pace.count(n)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Response(http.client.HTTPResponse):
    """http.client's response, reading through `_Paced`, and past every interim answer."""

    def __init__(self, sock: socket.socket, debuglevel: int = 0, method: str | None = None,
                 url: str | None = None, *, window: float) -> None:
        class Paced:  # what HTTPResponse asks of a socket: makefile
            @staticmethod
            def makefile(mode: str) -> io.BufferedReader:
                return io.BufferedReader(_Paced(sock, window))

        super().__init__(Paced, debuglevel, method, url)  # type: ignore[arg-type]
        self._interim = 0

    def _read_status(self) -> tuple[str, int, str]:
        # http.client skips 100 Continue only and would return 103 Early Hints (or any
        # other interim 1xx) as the answer, leaving the real one unread on the socket;
        # httpx skipped them all. 101 is not interim (the connection changes protocol).
        # Interim answers are counted (100 Continue too, which begin() skips by calling
        # this again): a host sending them without end, fast enough for no timeout to
        # fire, would hold the download for ever.
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if 100 <= status < 200 and status != 101:
                self._interim += 1
                if self._interim > MAX_INTERIM:
                    raise http.client.HTTPException(
                        f"more than {MAX_INTERIM} interim (1xx) answers before the answer")
            if not (100 < status < 200) or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim answer's headers


def paced(conn_class: Callable[..., http.client.HTTPConnection],
          window: float) -> Callable[..., http.client.HTTPConnection]:
    """`conn_class` whose responses are read as artifact bodies are (through `_Paced`,
    past interim answers): for urllib, which fetches the small documents."""

    def make(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
        conn = conn_class(*args, **kwargs)
        conn.response_class = functools.partial(  # type: ignore[assignment]
            _Response, window=window)
        return conn

    return make


class Body:
    """One response: status, headers, and the body either written into a file
    (`into_file`, a `landing.Landing`) or read in chunks of fresh buffers (`chunks`: the
    consumer keeps them)."""

    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse,
                 give_back: Callable[[http.client.HTTPConnection | None], None],
                 window: float) -> None:
        self._conn = conn
        self._response = response
        self._give_back = give_back
        self._window = window
        self.status_code = response.status
        self.headers: Message = response.headers
        self.overran = False

    def into_file(self, fd: int, offset: int, want: int) -> Iterator[int]:
        """At most `want` bytes of the body into `fd` at `offset` onwards, yielding each
        stretch's length once written; `overran` is set when the body holds more. A
        connection that closes early just ends it (the caller counts what arrived)."""
        r = self._response
        sock = self._conn.sock
        # splice only from plain TCP: TLS (and TLS in TLS, `tlstunnel`) is decrypted here.
        if not (landing.SPLICE and r.length is not None and not r.chunked
                and type(sock) is socket.socket):
            self.overran = yield from landing.copy_into(r.readinto, fd, offset, want)
            return
        announced = r.length
        want = min(want, announced)
        got = 0
        # What http.client's reader already holds past the head goes through it.
        held = min(len(r.fp.peek(1)) if want else 0, want)
        if held:
            buf = bytearray(held)
            n = r.readinto(buf)
            landing.pwrite_all(fd, memoryview(buf)[:n], offset)
            got += n
            yield n
        if got < want and r.length:
            for n in landing.splice_into(sock, fd, offset + got, want - got, self._window,
                                         landing.Pace(self._window)):
                r.length -= n
                got += n
                yield n
        if got == want < announced:
            # The host announced more: one byte more shows whether it sends it (a host
            # that overstates Content-Length and closes is left to the sha256).
            self.overran = bool(r.read(1))
        elif r.length == 0:
            r.read()  # ends the response as http.client does: the connection can be reused

    def chunks(self, size: int, limit: int | None = None) -> Iterator[memoryview]:
        """The body in chunks of `size` bytes (the last may be shorter), at most `limit`
        bytes in all; a connection that closes early just ends the iteration (the
        caller counts what arrived)."""
        left = limit
        while left is None or left > 0:
            want = size if left is None else min(size, left)
            buf = bytearray(want)
            view = memoryview(buf)
            got = 0
            while got < want:
                n = self._response.readinto(view[got:])
                if not n:
                    break
                got += n
            if got:
                if left is not None:
                    left -= got
                yield view[:got]
            if got < want:
                return

    def close(self) -> None:
        """Hand the connection back when the body was read to its end; close it when it
        was not (the rest of the body would be the next response's start)."""
        reusable = self._response.isclosed() and not self._response.will_close
        if not reusable:
            self._response.close()
        self._give_back(self._conn if reusable else None)


def _readable(sock: socket.socket) -> bool:
    """Whether a read would not block (bytes, or an end of file, are waiting). poll where
    there is one: select refuses descriptors past 1023."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


class Connections:
    """Idle keep-alive connections per origin (and proxy), shared by threads."""

    def __init__(self, tls: Callable[[], ssl.SSLContext], connect_timeout: float,
                 read_timeout: float, user_agent: str, max_idle: int) -> None:
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._user_agent = user_agent
        self._max_idle = max_idle
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def _new(self, key: _Key) -> http.client.HTTPConnection:
        scheme, host, port, proxy = key
        conn: http.client.HTTPConnection
        if proxy:
            p = urllib.parse.urlsplit(proxy)
            via_tls = p.scheme == "https"
            proxy_port = p.port or (443 if via_tls else 80)
            if scheme == "https" and via_tls:  # TLS with the origin inside TLS with the proxy
                conn = tlstunnel.TunnelledHTTPS(host, port, proxy=proxy,
                                                timeout=self._connect_timeout,
                                                context=self._tls())
            elif scheme == "https":  # a tunnel: TLS with the origin, end to end
                conn = http.client.HTTPSConnection(p.hostname or "", proxy_port,
                                                   timeout=self._connect_timeout,
                                                   context=self._tls())
                conn.set_tunnel(host, port, headers=tlstunnel.proxy_authorization(proxy))
            elif via_tls:
                conn = http.client.HTTPSConnection(p.hostname or "", proxy_port,
                                                   timeout=self._connect_timeout,
                                                   context=self._tls())
            else:
                conn = http.client.HTTPConnection(p.hostname or "", proxy_port,
                                                  timeout=self._connect_timeout)
        elif scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=self._connect_timeout,
                                               context=self._tls())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        conn.response_class = functools.partial(  # type: ignore[assignment]
            _Response, window=self._read_timeout)
        conn.connect()
        if conn.sock is not None:  # connect with one deadline, read with the other
            conn.sock.settimeout(self._read_timeout)
        return conn

    def open(self, url: str, headers: dict[str, str]) -> Body:
        """Send GET `url` with `headers` and read the response head."""
        p = urllib.parse.urlsplit(url)
        scheme = p.scheme.lower()
        host = p.hostname or ""
        port = p.port or (443 if scheme == "https" else 80)
        proxy = _proxy_for(scheme, host)
        key: _Key = (scheme, host, port, proxy)
        target = p.path or "/"
        if p.query:
            target += "?" + p.query
        sent = {"User-Agent": self._user_agent, **headers}
        target = urllib.parse.quote(target.encode("utf-8", "surrogatepass"), safe=_URL_SAFE)
        if proxy and scheme == "http":
            target = f"{scheme}://{p.netloc.rpartition('@')[2]}{target}"
            sent.update(tlstunnel.proxy_authorization(proxy))
        conn = self._pooled(key)
        reused = conn is not None
        while True:
            if conn is None:
                conn = self._new(key)
            try:
                conn.request("GET", target, headers=sent)
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                if not reused:
                    raise
                # The server closed an idle keep-alive connection: one fresh try.
                conn, reused = None, False
                continue
            except BaseException:
                conn.close()
                raise
            return Body(conn, response, lambda c: self._give_back(key, c),
                        self._read_timeout)

    def _pooled(self, key: _Key) -> http.client.HTTPConnection | None:
        """An idle connection for `key` with nothing waiting to be read on it. A server
        that wrote past the end of a body (or answered a request it never got) left bytes
        the next response would begin with; one that closed it left an end of file."""
        while True:
            with self._lock:
                pool = self._idle.get(key) or []
                conn = pool.pop() if pool else None
            if conn is None:
                return None
            sock = conn.sock
            if sock is None:
                continue
            pending = (sock.pending()
                       if isinstance(sock, ssl.SSLSocket | tlstunnel.TunnelSocket) else 0)
            if not pending and not _readable(sock):
                return conn
            conn.close()

    def _give_back(self, key: _Key, conn: http.client.HTTPConnection | None) -> None:
        if conn is None:
            return
        with self._lock:
            pool = self._idle.setdefault(key, [])
            if len(pool) < self._max_idle:
                pool.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for pool in idle.values():
            for conn in pool:
                conn.close()
