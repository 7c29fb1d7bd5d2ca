"""Small documents (index files, TUF metadata, lock files) over the standard library.

`mx install` of a cached model revalidates one index document, and importing httpx would
cost more than the request (a third of the 0.3 s budget): urllib does it, with mx's
redirect policy (no https -> http, credentials stay with their origin) and responses that
fail as stalled when a read_timeout brings under landing.MIN_RATE bytes a second.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from mx import httpbody, tlstunnel
from mx.errors import FetchError, IntegrityError, SizeLimitError
from mx.httpbase import (
    MAX_REDIRECTS,
    USER_AGENT,
    Fetched,
    _content_length,
    _local_path,
    _max_age,
    _Retry,
    _retry_after,
    _status_hint,
    _why,
    check_redirect,
    origin,
)

if TYPE_CHECKING:
    from mx.http import Transport


def get(t: Transport, url: str, max_bytes: int, etag: str | None = None) -> Fetched:
    """GET a small document, at most `max_bytes`, revalidating with `etag`."""
    if url[:3].lower() == "s3:":
        return get_s3(t, url, max_bytes)
    if url.startswith("file:"):
        path = _local_path(url)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise SizeLimitError(f"{url}: {size} bytes is over the {max_bytes}-byte "
                                     "limit", url=url)
            return Fetched(200, path.read_bytes(), None)
        except (FileNotFoundError, NotADirectoryError):
            raise FetchError(f"{url}: not found", url=url, status=404) from None
    # Small documents go through the standard library: `mx install` of a cached model
    # revalidates one index document, and importing httpx would cost more than the
    # request (a third of the 0.3 s budget). Artifacts use `httpbody`, LFS calls httpx.
    attempt = 0
    window = t.limits.read_timeout
    opener = urllib.request.build_opener(
        _RedirectPolicy(), _PacedHTTP(window), _PacedHTTPS(window, context=t._tls()))
    while True:
        headers = t._headers(url, {"If-None-Match": etag} if etag else None)
        headers["User-Agent"] = USER_AGENT
        request = urllib.request.Request(url, headers=headers)
        try:
            try:
                response = opener.open(request, timeout=t.limits.read_timeout)
            except urllib.error.HTTPError as exc:
                response = exc  # an HTTP error is a response too
            except ValueError as exc:
                # urllib follows a redirect to a port out of range, a broken IPv6
                # literal or a host label over 63 characters into ValueError or
                # UnicodeError, which no retry mends.
                # (Never the text of a header error: it quotes the value, a token.)
                why = ("a header http.client cannot send" if "header" in str(exc).lower()
                       else _why(exc))
                raise FetchError(f"{url}: a malformed URL on the way (a redirect's?): "
                                 f"{why}", url=url) from None
            with response:
                status = response.status
                if 300 <= status < 400 and status != 304:
                    # urllib hands back a redirect it would not follow: a loop, one
                    # without a target, or one to a scheme other than http(s).
                    location = str(response.headers.get("Location") or "")[:200]
                    raise FetchError(f"{url}: redirect not followed (HTTP {status} to "
                                     f"{location!r}: more than {MAX_REDIRECTS} "
                                     "redirects, no target, or not an HTTP URL)",
                                     hint="the host redirects in a loop, or off HTTP",
                                     url=url, status=status)
                cache_control = _max_age(response.headers.get("Cache-Control"))
                if status == 304:
                    if etag is None:  # nothing was offered to be "not modified"
                        raise FetchError(f"{url}: HTTP 304 to a request without "
                                         "If-None-Match", url=url, status=304,
                                         hint="the host's answer makes no sense; "
                                              "report it to its maintainers")
                    return Fetched(304, b"", etag, cache_control)
                if status >= 500 or status == 429:
                    raise _Retry(f"HTTP {status}",
                                 _retry_after(response.headers.get("Retry-After")))
                if status != 200:
                    raise FetchError(f"{url}: HTTP {status}", hint=_status_hint(status),
                                     url=url, status=status)
                declared = _content_length(response.headers.get("Content-Length"))
                if declared > max_bytes:
                    raise SizeLimitError(f"{url}: {declared} bytes is over the "
                                         f"{max_bytes}-byte limit for this document",
                                         url=url)
                data = response.read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise SizeLimitError(f"{url}: over the {max_bytes}-byte limit",
                                         url=url)
                if declared and len(data) < declared:
                    raise _Retry(f"truncated body ({len(data)} of {declared} bytes)")
                return Fetched(200, data, response.headers.get("ETag"), cache_control)
        except (_Retry, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            attempt += 1
            t._backoff(attempt, url, exc)


class _Buffer:
    def __init__(self) -> None:
        self.parts: list[bytes | memoryview] = []

    def write(self, chunk: bytes | memoryview) -> None:
        self.parts.append(chunk)

    def reset(self) -> None:
        self.parts.clear()


def get_s3(t: Transport, url: str, max_bytes: int) -> Fetched:
    """A small document from S3-compatible storage (a registry whose base URL is
    s3://): capped, retried like the rest; no revalidation (signed metadata decides)."""

    sink = _Buffer()
    try:
        t._download_s3(url, sink, max_bytes, None, None, 0, exact=False)
    except IntegrityError:
        raise SizeLimitError(f"{url}: over the {max_bytes}-byte limit for this document",
                             url=url) from None
    return Fetched(200, b"".join(sink.parts), None)


class _PacedHTTP(urllib.request.HTTPHandler):
    """urllib's http handler, with responses that fail as stalled when a read_timeout
    brings under landing.MIN_RATE bytes a second (the socket's timeout fires only on
    silence: a registry host trickling the index held mx install for ever)."""

    def __init__(self, window: float) -> None:
        super().__init__()
        self._window = window

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(httpbody.paced(http.client.HTTPConnection, self._window), req)


class _PacedHTTPS(urllib.request.HTTPSHandler):
    """The same for https; through an https:// proxy, the tunnel of `mx.tlstunnel`
    (urllib would send the CONNECT, with the proxy's credentials, in the clear)."""

    def __init__(self, window: float, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self._window = window
        self._tls = context

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        conn_class: Any = http.client.HTTPSConnection
        # urllib's ProxyHandler chose a tunnel (an https URL through the environment's
        # https proxy): req.host is the proxy's now, the target the URL's own.
        if getattr(req, "_tunnel_host", None):
            proxy = httpbody.env_proxy("https")
            if proxy[:8].lower() == "https://":
                target = urllib.parse.urlsplit(req.full_url)
                host, port = target.hostname or "", target.port or 443

                def conn_class(_proxy_host: str, **kwargs: Any) -> http.client.HTTPConnection:
                    return tlstunnel.TunnelledHTTPS(host, port, proxy=proxy, **kwargs)

        return self.do_open(httpbody.paced(conn_class, self._window), req,
                            context=self._tls)


class _RedirectPolicy(urllib.request.HTTPRedirectHandler):
    """urllib copies every header, Authorization included, onto a redirect to any host:
    here a redirect is checked (no https -> http) and loses credentials with the origin."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        check_redirect(req.full_url, newurl)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and origin(newurl) != origin(req.full_url):
            for name in list(new.headers):
                if name.lower() in ("authorization", "cookie", "proxy-authorization"):
                    del new.headers[name]
        return new
