"""Every network read mx makes: capped, retried, resumable.

Only transport lives here. What the bytes must be (sha256, size) is decided by
the caller; this module streams them into a sink and reports how many arrived.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import random
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from mx import __version__, httpbody
from mx.config import Limits
from mx.errors import FetchError, IntegrityError, SizeLimitError
from mx.lfs import (
    LFS_MEDIA_TYPE,
    Pointer,
    batch_request,
    endpoint_for_remote,
    object_in_local_repo,
)

if TYPE_CHECKING:
    import httpx
    from obstore.store import S3Store

    from mx.objstore import Stores

USER_AGENT = f"mx/{__version__}"
_HEADER_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")  # RFC 9110 field name
# RFC 9110 field value: visible ASCII, space, tab, obs-text. Anything else http.client
# either sends as is (NUL, other controls) or fails to encode (past latin-1: a crash).
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]{0,8192}")
MAX_REDIRECTS = 10
# An attempt that brought this much was progress, not a failing host: the retry count
# starts over, so a long download survives any number of drops that each follow progress.
PROGRESS_BYTES = 1 << 20


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in: what credentials are
    bound to. A redirect to another origin never carries them."""
    p = urllib.parse.urlsplit(url)
    port = p.port or {"http": 80, "https": 443}.get(p.scheme)
    return (p.scheme, (p.hostname or "").lower(), port)


def join_url(base: str, ref: str) -> str:
    """`ref` against `base`, as urljoin does, for s3:// bases too (urllib treats s3 as
    opaque and would drop the base). An absolute `ref` (any scheme) is returned as is."""
    if urllib.parse.urlsplit(ref).scheme:
        return ref
    if base[:5].lower() == "s3://":
        return "s3://" + urllib.parse.urljoin("http://" + base[5:], ref)[len("http://"):]
    return urllib.parse.urljoin(base, ref)


def check_redirect(source: str, target: str) -> None:
    """Refuse a redirect that would downgrade https to plain http (or leave HTTP)."""
    try:
        scheme = urllib.parse.urlsplit(target).scheme
    except ValueError:  # "Invalid IPv6 URL": not a URL at all
        scheme = ""
    if scheme not in ("http", "https"):
        raise FetchError(f"{source}: redirected to {target!r}, which is not an HTTP URL",
                         url=source)
    if urllib.parse.urlsplit(source).scheme == "https" and scheme == "http":
        raise FetchError(f"{source}: redirected from https to plain http ({target}); refused",
                         hint="the host tried to downgrade the connection", url=source)


class Sink(Protocol):
    """Where downloaded bytes go; `reset` starts over when a server ignores Range."""

    def write(self, chunk: bytes | memoryview) -> None: ...
    def reset(self) -> None: ...


class _Held:
    """A sink that counts what it holds (for a download continued with another URL)."""

    def __init__(self, sink: Sink, size: int) -> None:
        self._sink = sink
        self.size = size

    def write(self, chunk: bytes | memoryview) -> None:
        self._sink.write(chunk)
        self.size += len(chunk)

    def reset(self) -> None:
        self._sink.reset()
        self.size = 0


@dataclass
class Fetched:
    status: int  # 200, or 304 when the cached copy is still current
    data: bytes
    etag: str | None
    max_age: float | None = None  # from Cache-Control, when the server sent one


def _max_age(cache_control: str | None) -> float | None:
    for part in (cache_control or "").split(","):
        key, _, value = part.strip().partition("=")
        if key.lower() in ("no-cache", "no-store"):
            return 0.0
        if key.lower() == "max-age" and value.strip().isdigit():
            return float(value)
    return None


class _Retry(Exception):
    """A failure worth another try: 5xx, 429, a dropped connection. `after` is the
    server's Retry-After in seconds, when it sent one."""

    def __init__(self, why: str, after: float | None = None) -> None:
        super().__init__(why)
        self.after = after


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), capped at 60 s."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), 60.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), 60.0)


def trust_store() -> ssl.SSLContext:
    """One TLS trust store for every request (index documents, artifacts, LFS): the
    system's CAs, or SSL_CERT_FILE / SSL_CERT_DIR, as curl and git use them. A corporate
    CA installed system-wide then works for all of mx, not for half of it."""
    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"),
                                      capath=os.environ.get("SSL_CERT_DIR"))


def _local_path(url: str) -> Path:
    parsed = urllib.parse.urlparse(url)
    return Path(urllib.parse.unquote(parsed.path))


class Transport:
    """One connection pool, shared by threads; created lazily (httpx import is not free)."""

    def __init__(self, limits: Limits | None = None, token: str | None = None,
                 token_url: str | None = None) -> None:
        self.limits = limits or Limits()
        self._token = token
        # MX_TOKEN belongs to the registry's origin: scheme, host and port.
        self._token_origin = origin(token_url) if token_url else None
        self._client: httpx.Client | None = None  # small documents' and LFS API calls
        self._bodies: httpbody.Connections | None = None  # artifact bodies
        self._ssl: ssl.SSLContext | None = None
        self.sleep: Callable[[float], None] = time.sleep
        self._s3: Stores | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            # Redirects are followed by hand (`_stream`), so that credentials are
            # dropped on a change of origin and https never falls back to http.
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.limits.read_timeout,
                                      connect=self.limits.connect_timeout),
                headers={"User-Agent": USER_AGENT},
                follow_redirects=False,
                verify=self._tls(),
            )
        return self._client

    def _connections(self) -> httpbody.Connections:
        if self._bodies is None:
            # Files at once times ranged parts per file: every worker keeps its connection.
            self._bodies = httpbody.Connections(
                self._tls, self.limits.connect_timeout, self.limits.read_timeout, USER_AGENT,
                max_idle=self.limits.parallel_downloads * max(self.limits.parallel_parts, 2))
        return self._bodies

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = trust_store()
        return self._ssl

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._bodies is not None:
            self._bodies.close()
            self._bodies = None

    def _headers(self, url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Headers for a first request to `url`: MX_TOKEN on the registry's origin, else
        ~/.netrc credentials for the host (as curl and pip do)."""
        headers = dict(extra or {})
        if self._token and origin(url) == self._token_origin:
            headers["Authorization"] = f"Bearer {self._token}"
        headers.update(_netrc_authorization(url, headers))
        return headers

    def _backoff(self, attempt: int, url: str, exc: BaseException) -> None:
        """The one retry policy: exponential backoff with full jitter, or the server's
        Retry-After when it gave one; at most `limits.retries` retries. A certificate that
        does not verify will not verify on the next try either: no retry."""
        cause = exc if isinstance(exc, ssl.SSLError) else getattr(exc, "reason", exc)
        if isinstance(cause, ssl.SSLCertVerificationError):
            raise FetchError(f"{url}: the host's TLS certificate is not trusted "
                             f"({cause.verify_message or cause})",
                             hint="point SSL_CERT_FILE (or SSL_CERT_DIR) at your CA's "
                                  "certificates", url=url)
        if attempt > self.limits.retries:
            raise FetchError(f"{url}: {_why(getattr(exc, 'reason', exc))} (gave up after "
                             f"{self.limits.retries} retries)",
                             hint="check the server, or try again later", url=url)
        after = exc.after if isinstance(exc, _Retry) else None
        ceiling = self.limits.backoff * (2 ** (attempt - 1))
        self.sleep(after if after is not None else random.uniform(ceiling / 2, ceiling))

    # -- small documents ------------------------------------------------------

    def get(self, url: str, max_bytes: int, etag: str | None = None) -> Fetched:
        """GET a small document, at most `max_bytes`, revalidating with `etag`."""
        if url[:3].lower() == "s3:":
            return self._get_s3(url, max_bytes)
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
        httpbody.check_proxy(url)
        attempt = 0
        window = self.limits.read_timeout
        opener = urllib.request.build_opener(
            _RedirectPolicy(), _PacedHTTP(window), _PacedHTTPS(window, context=self._tls()))
        while True:
            headers = self._headers(url, {"If-None-Match": etag} if etag else None)
            headers["User-Agent"] = USER_AGENT
            request = urllib.request.Request(url, headers=headers)
            try:
                try:
                    response = opener.open(request, timeout=self.limits.read_timeout)
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
                self._backoff(attempt, url, exc)

    def _get_s3(self, url: str, max_bytes: int) -> Fetched:
        """A small document from S3-compatible storage (a registry whose base URL is
        s3://): capped, retried like the rest; no revalidation (signed metadata decides)."""

        class Buffer:
            def __init__(self) -> None:
                self.parts: list[bytes | memoryview] = []

            def write(self, chunk: bytes | memoryview) -> None:
                self.parts.append(chunk)

            def reset(self) -> None:
                self.parts.clear()

        sink = Buffer()
        try:
            self._download_s3(url, sink, max_bytes, None, None, 0, exact=False)
        except IntegrityError:
            raise SizeLimitError(f"{url}: over the {max_bytes}-byte limit for this document",
                                 url=url) from None
        return Fetched(200, b"".join(sink.parts), None)

    # -- artifacts ------------------------------------------------------------

    def download(self, url: str, sink: Sink, size: int,
                 progress: Callable[[int], None] | None = None,
                 headers: dict[str, str] | None = None, offset: int = 0) -> None:
        """Stream `url` into `sink` until it holds exactly `size` bytes. `offset` is what
        `sink` already holds (a download an earlier process began).

        The one table of URL schemes mx fetches from: http(s) (resumed with Range after a
        drop, on the first request and every retry), s3://bucket/key (S3-compatible object
        storage with the AWS credential chain, the `mx[s3]` extra; resumed the same way),
        file, and lfs+<remote>#<oid> (Git LFS: a local repository's store, or the batch API
        of the remote's LFS server)."""
        scheme = url.partition(":")[0].lower()
        handler = {"http": self._download_http, "https": self._download_http,
                   "s3": self._download_s3,
                   "file": self._download_file, "lfs+http": self._download_lfs,
                   "lfs+https": self._download_lfs, "lfs+file": self._download_lfs,
                   "lfs+ssh": self._download_lfs}.get(scheme)
        if handler is None:
            raise FetchError(f"{url}: mx cannot fetch {scheme or 'relative'}: URLs",
                             hint="the index should list http(s)://, s3://, file:// or lfs+ "
                                  "URLs", url=url)
        handler(url, sink, size, progress, headers, offset)

    def _download_file(self, url: str, sink: Sink, size: int,
                       progress: Callable[[int], None] | None,
                       headers: dict[str, str] | None, offset: int) -> None:
        if offset:
            sink.reset()  # a local copy is cheaper than skipping through it
            if progress:
                progress(-offset)
        self._copy_local(_local_path(url), url, sink, size, progress)

    def lfs_href(self, url: str, size: int) -> tuple[str, dict[str, str]]:
        """Where the object of an lfs+http(s)/lfs+ssh URL is: the batch API's href and the
        headers it asks for (they go to that href only)."""
        remote, _, oid = url[4:].rpartition("#")
        if not remote or not re.fullmatch(r"[0-9a-f]{64}", oid):
            raise FetchError(f"{url}: malformed lfs+ URL (want lfs+<remote>#<oid>)", url=url)
        endpoint = endpoint_for_remote(remote)
        answer = self.lfs_batch(endpoint, [Pointer(oid, size)])
        got = answer.get(oid) or {}
        if "error" in got or not got.get("href"):
            why = got.get("error", {}).get("message", "no download action")
            raise FetchError(f"{endpoint}: LFS object {oid}: {why}", url=url)
        href = str(got["href"])
        if urllib.parse.urlsplit(href).scheme.lower() not in ("http", "https"):
            raise FetchError(f"{endpoint}: LFS object {oid}: the server's href {href[:200]!r} "
                             "is not an http(s) URL", url=url)
        header = got.get("header") or {}
        if not isinstance(header, dict) or len(header) > 32 or not all(
                isinstance(k, str) and isinstance(v, str) and _HEADER_TOKEN.fullmatch(k)
                and _HEADER_VALUE.fullmatch(v) for k, v in header.items()):
            raise FetchError(f"{endpoint}: LFS object {oid}: malformed header in the batch "
                             "answer", url=url)
        return href, dict(header)

    def _download_lfs(self, url: str, sink: Sink, size: int,
                      progress: Callable[[int], None] | None,
                      headers: dict[str, str] | None, offset: int) -> None:
        remote, _, oid = url[4:].rpartition("#")
        if remote.startswith("file:"):
            if not re.fullmatch(r"[0-9a-f]{64}", oid):
                raise FetchError(f"{url}: malformed lfs+ URL (want lfs+<remote>#<oid>)",
                                 url=url)
            stored = object_in_local_repo(remote, oid)
            if stored is None:
                raise FetchError(f"{url}: object not in the LFS store at {remote}", url=url)
            self._download_file(stored.as_uri(), sink, size, progress, None, offset)
            return
        # A signed href that expires (`expires_in`) mid-download answers 401/403 to the
        # next retry: ask the batch API again, as long as the last href brought bytes.
        held = _Held(sink, offset)
        while True:
            href, extra = self.lfs_href(url, size)
            start = held.size
            try:
                self._download_http(href, held, size, progress, extra, held.size)
                return
            except FetchError as exc:
                if exc.status not in (401, 403) or held.size <= start:
                    raise

    def _download_http(self, url: str, sink: Sink, size: int,
                       progress: Callable[[int], None] | None,
                       headers: dict[str, str] | None, offset: int) -> None:
        got = offset
        attempt = 0
        while True:
            mark = got
            h = self._headers(url, {"Accept-Encoding": "identity", **(headers or {})})
            if got:
                h["Range"] = f"bytes={got}-"
            try:
                with self._stream(url, h) as r:
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
                    # One byte past the promise is enough to know the host lies.
                    for chunk in r.chunks(self.limits.chunk_size, size + 1 - got):
                        got += len(chunk)
                        if got > size:
                            raise IntegrityError(
                                f"{url}: the server sent more than the {size} bytes the index "
                                "promised",
                                hint="the artifact on the server is not the one indexed")
                        sink.write(chunk)
                        if progress:
                            progress(len(chunk))
                if got < size:
                    raise _Retry(f"connection closed after {got} of {size} bytes")
                return
            except (_Retry, *httpbody.TransportFailure) as exc:
                if got == size:
                    # Every promised byte arrived and then the connection broke (a host
                    # that announced more than it sends): the caller's sha256 decides.
                    return
                attempt = 1 if got - mark >= PROGRESS_BYTES else attempt + 1
                self._backoff(attempt, url, exc)

    def _download_s3(self, url: str, sink: Sink, size: int,
                     progress: Callable[[int], None] | None,
                     headers: dict[str, str] | None, offset: int, exact: bool = True) -> None:
        from mx import s3fetch

        s3fetch.download(self, url, sink, size, progress, offset, exact)

    def s3_range(self, url: str, start: int, end: int,
                 size: int) -> AbstractContextManager[Iterator[bytes]]:
        """Bytes [start, end) of an s3:// object of `size` bytes, for ranged parts."""
        from mx import s3fetch

        return s3fetch.piece(self, url, start, end, size)

    def s3_store(self, url: str) -> tuple[S3Store, str]:
        """The (cached) store of an s3:// URL's bucket, and the key."""
        from mx import objstore

        bucket, key = objstore.split_url(url)
        if self._s3 is None:
            self._s3 = objstore.Stores(0, self.limits.connect_timeout, self.limits.read_timeout)
        return self._s3.get(bucket), key

    @contextmanager
    def _stream(self, url: str, headers: dict[str, str]) -> Iterator[httpbody.Body]:
        """GET `url`, following redirects by hand: at most MAX_REDIRECTS, never from https
        to http, and without credentials (or any header given for `url`) once the origin
        changes."""
        if not _sendable(url):
            raise FetchError(f"{url[:200]}: not an http(s) URL", url=url)
        current, sent = url, headers
        for _ in range(MAX_REDIRECTS + 1):
            response = self._connections().open(current, sent)
            location = response.headers.get("Location")
            if response.status_code not in (301, 302, 303, 307, 308) or not location:
                try:
                    yield response
                finally:
                    response.close()
                return
            response.close()
            # http.client decodes header values as latin-1; a Location sent as raw UTF-8
            # (a file name with accents) is that, and httpbody percent-encodes it.
            location = location.encode("latin-1", "replace").decode("utf-8", "replace")
            try:
                target = urllib.parse.urljoin(current, location)
            except ValueError:  # "Invalid IPv6 URL"
                target = location
            check_redirect(current, target)
            if not _sendable(target):
                # A port out of range or a host no resolver takes would escape from
                # http.client as ValueError or UnicodeError (a crash, exit 3).
                raise FetchError(f"{current}: redirected to a malformed URL "
                                 f"{target[:200]!r}; refused", url=url)
            if origin(target) != origin(url):
                sent = {k: v for k, v in headers.items()
                        if k.lower() in ("accept-encoding", "range")}
            current = target
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects", url=url,
                         hint="the host redirects in a loop")

    def _copy_local(self, path: Path, url: str, sink: Sink, size: int,
                    progress: Callable[[int], None] | None) -> None:
        try:
            f: BinaryIO = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise FetchError(f"{url}: not found", url=url, status=404) from None
        got = 0
        with f:
            for chunk in iter(lambda: f.read(self.limits.chunk_size), b""):
                got += len(chunk)
                if got > size:
                    raise IntegrityError(f"{url}: larger than the {size} bytes the index promised")
                sink.write(chunk)
                if progress:
                    progress(len(chunk))

    # -- Git LFS batch API ----------------------------------------------------

    def lfs_batch(self, endpoint: str, objects: list[Pointer],
                  operation: str = "download") -> dict[str, dict[str, Any]]:
        """Ask a Git LFS server for `objects`: oid -> {"href", "header"} or {"error"}."""
        import httpx

        url = endpoint.rstrip("/") + "/objects/batch"
        body = json.dumps(batch_request(objects, operation)).encode()
        attempt = 0
        while True:
            try:
                headers = {"Accept": LFS_MEDIA_TYPE, "Content-Type": LFS_MEDIA_TYPE}
                request = self._http().build_request("POST", url, content=body,
                                                     headers=self._headers(url, headers))
                # Streamed and capped: `post` would hold the whole answer in memory, and a
                # hostile server's has no end.
                r = self._http().send(request, stream=True)
                try:
                    if r.is_redirect:
                        raise FetchError(f"{url}: the Git LFS batch API answered with a "
                                         f"redirect (HTTP {r.status_code}); refused", url=url)
                    if r.status_code >= 500 or r.status_code == 429:
                        raise _Retry(f"HTTP {r.status_code}",
                                     _retry_after(r.headers.get("Retry-After")))
                    content = self._capped(r, url) if r.status_code == 200 else b""
                finally:
                    r.close()
                break
            except (_Retry, httpx.TransportError) as exc:
                attempt += 1
                self._backoff(attempt, url, exc)
        if r.status_code == 404:
            # giftless answers 404 for the whole batch when none of the objects exist.
            return {o.oid: {"error": {"code": 404, "message": "object does not exist"}}
                    for o in objects}
        if r.status_code != 200:
            raise FetchError(f"{url}: HTTP {r.status_code} from the Git LFS batch API",
                             hint=_status_hint(r.status_code))
        try:
            answer = json.loads(content)
            out: dict[str, dict[str, Any]] = {}
            for obj in answer.get("objects", []):
                if "error" in obj:
                    # Callers read error.message: a string or a list here would be an
                    # AttributeError there (a crash), and a long one more than a line.
                    error = obj["error"] if isinstance(obj["error"], dict) else {}
                    message = " ".join(str(error.get("message", obj["error"])).split())
                    out[obj["oid"]] = {"error": {**error, "message": message[:200]}}
                else:
                    action = (obj.get("actions") or {}).get(operation) or {}
                    out[obj["oid"]] = {"href": action.get("href"),
                                       "header": action.get("header") or {}}
            return out
        except (ValueError, AttributeError, KeyError, TypeError, RecursionError):
            raise FetchError(f"{url}: malformed Git LFS batch answer") from None


    def _capped(self, r: httpx.Response, url: str) -> bytes:
        """The body of a batch answer: at most max_lfs_batch_bytes, and refused as stalled
        when a read_timeout passes with under httpbody.MIN_RATE bytes a second (httpx's
        timeout fires only on silence)."""
        import httpx

        limit = self.limits.max_lfs_batch_bytes
        window = self.limits.read_timeout
        parts: list[bytes] = []
        held = seen = 0
        since = time.monotonic()
        for chunk in r.iter_bytes():
            parts.append(chunk)
            held += len(chunk)
            seen += len(chunk)
            if held > limit:
                raise FetchError(f"{url}: batch answer over the size limit")
            now = time.monotonic()
            if now - since >= window:
                if seen < httpbody.MIN_RATE * window:
                    raise httpx.ReadTimeout(f"the host sends too slowly ({seen} bytes in "
                                            f"{now - since:.0f} s)")
                since, seen = now, 0
        return b"".join(parts)


class _PacedHTTP(urllib.request.HTTPHandler):
    """urllib's http handler, with responses that fail as stalled when a read_timeout
    brings under httpbody.MIN_RATE bytes a second (the socket's timeout fires only on
    silence: a registry host trickling the index held mx install for ever)."""

    def __init__(self, window: float) -> None:
        super().__init__()
        self._window = window

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(httpbody.paced(http.client.HTTPConnection, self._window), req)


class _PacedHTTPS(urllib.request.HTTPSHandler):
    """The same for https."""

    def __init__(self, window: float, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self._window = window
        self._tls = context

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(httpbody.paced(http.client.HTTPSConnection, self._window), req,
                            context=self._tls)


class _RedirectPolicy(urllib.request.HTTPRedirectHandler):
    """urllib copies every header, Authorization included, onto a redirect to any host:
    here a redirect is checked (no https -> http) and loses credentials with the origin."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        check_redirect(req.full_url, newurl)
        httpbody.check_proxy(newurl)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and origin(newurl) != origin(req.full_url):
            for name in list(new.headers):
                if name.lower() in ("authorization", "cookie", "proxy-authorization"):
                    del new.headers[name]
        return new


def _sendable(url: str) -> bool:
    """Whether http.client can send a request for `url` (an http(s) URL with a host a
    resolver takes and a port in range); its path and query it sends percent-encoded."""
    try:
        p = urllib.parse.urlsplit(url)
        host = p.hostname or ""
        p.port  # noqa: B018 (it raises ValueError when out of range)
        host.encode("idna")  # a label over 63 characters, or empty
    except (ValueError, UnicodeError):
        return False
    return (p.scheme.lower() in ("http", "https") and bool(host)
            and not any(c <= " " or c == "\x7f" for c in host))


def _content_length(value: str | None) -> int:
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0


def _netrc_authorization(url: str, headers: dict[str, str]) -> dict[str, str]:
    """Basic auth from ~/.netrc (or $NETRC) for the URL's host, as curl and pip do."""
    if "Authorization" in headers:
        return {}
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if not path.is_file():
        return {}
    import base64
    import netrc

    host = urllib.parse.urlparse(url).hostname or ""
    try:
        found = netrc.netrc(str(path)).authenticators(host)
    except (netrc.NetrcParseError, OSError):
        return {}
    if not found:
        return {}
    login, _, password = found
    token = base64.b64encode(f"{login}:{password or ''}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _why(exc: object) -> str:
    return str(exc) or type(exc).__name__


def _status_hint(status: int) -> str | None:
    if status in (401, 403):
        return "the server wants credentials: set MX_TOKEN or add the host to ~/.netrc"
    if status == 404:
        return "the file is not on the server; was the index published completely?"
    return None
