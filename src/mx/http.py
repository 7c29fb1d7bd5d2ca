"""Every network read mx makes: capped, retried, resumable.

Only transport lives here. What the bytes must be (sha256, size) is decided by
the caller; this module streams them into a sink and reports how many arrived.
Artifact bodies over http(s) are streamed by `mx.httpfetch`, over s3 by `mx.s3fetch`;
small documents go through `mx.httpdocs`, the Git LFS batch API through `mx.lfsapi`;
what all of them share is `mx.httpbase`.
"""

from __future__ import annotations

import random
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mx import httpbody, httpdocs, lfsapi
from mx.config import Limits
from mx.errors import FetchError, IntegrityError
from mx.httpbase import (
    MAX_REDIRECTS,
    USER_AGENT,
    _local_path,
    _netrc_authorization,
    _Retry,
    _sendable,
    _why,
    check_redirect,
    origin,
)
from mx.httpbase import PROGRESS_BYTES as PROGRESS_BYTES
from mx.httpbase import Fetched as Fetched
from mx.httpbase import FileSink as FileSink
from mx.httpbase import Sink as Sink
from mx.httpbase import join_url as join_url
from mx.httpbase import trust_store as trust_store
from mx.lfs import Pointer, object_in_local_repo

if TYPE_CHECKING:
    import httpx
    from obstore.store import S3Store

    from mx.objstore import Stores


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


class _HeldFile(_Held):
    """`_Held` over a file sink: bodies write into the file themselves."""

    def __init__(self, sink: FileSink, size: int) -> None:
        super().__init__(sink, size)
        self._file = sink

    def fileno(self) -> int:
        return self._file.fileno()

    def landed(self, n: int) -> None:
        self._file.landed(n)
        self.size += n


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
        # The connections a ranged download may open beyond each file's own, shared by
        # every file this transport downloads at once: one large file gets them all; ten
        # shards get one stream each and share the rest, instead of ten times four
        # connections fighting for the same cores and link.
        self.part_slots = threading.Semaphore(max(self.limits.parallel_parts - 1, 0))
        self._ranged_lock = threading.Lock()
        self._ranged_files = 0  # large files downloading in pieces at this moment

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

    def count_ranged(self, n: int) -> int:
        """Add `n` to the large files downloading at once; returns how many there are."""
        with self._ranged_lock:
            self._ranged_files += n
            return self._ranged_files

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
        return httpdocs.get(self, url, max_bytes, etag)

    # -- artifacts ------------------------------------------------------------

    def download(self, url: str, sink: Sink, size: int,
                 progress: Callable[[int], None] | None = None,
                 headers: dict[str, str] | None = None, offset: int = 0, *,
                 exact: bool = True) -> None:
        """Stream `url` into `sink` until it holds exactly `size` bytes. `offset` is what
        `sink` already holds (a download an earlier process began).

        With `exact` off, `size` is only a cap: the object is as long as the host says, at
        most `size` bytes (more is an IntegrityError, refused before the body is read when
        the length is announced). Over http(s) the first answer's length decides (a 200's
        Content-Length, a 206's Content-Range total) and is kept for every retry; a body of
        no announced length (chunked, or to the connection's close) is read to its end.
        s3 takes the object's length; a file:// path may be shorter. lfs+ URLs ignore it:
        an LFS object's size is part of its name (the batch API is asked for that size).

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
        handler(url, sink, size, progress, headers, offset, exact)

    def _download_file(self, url: str, sink: Sink, size: int,
                       progress: Callable[[int], None] | None,
                       headers: dict[str, str] | None, offset: int, exact: bool = True) -> None:
        if offset:
            sink.reset()  # a local copy is cheaper than skipping through it
            if progress:
                progress(-offset)
        self._copy_local(_local_path(url), url, sink, size, progress, exact)

    def lfs_href(self, url: str, size: int) -> tuple[str, dict[str, str]]:
        """Where the object of an lfs+http(s)/lfs+ssh URL is (`mx.lfsapi.href`)."""
        return lfsapi.href(self, url, size)

    def _download_lfs(self, url: str, sink: Sink, size: int,
                      progress: Callable[[int], None] | None,
                      headers: dict[str, str] | None, offset: int, exact: bool = True) -> None:
        # `exact` is not consulted: the object's size is the pointer's, always known.
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
        held = _HeldFile(sink, offset) if isinstance(sink, FileSink) else _Held(sink, offset)
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
                       headers: dict[str, str] | None, offset: int, exact: bool = True) -> None:
        from mx import httpfetch

        httpfetch.download(self, url, sink, size, progress, headers, offset, exact)

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
                    progress: Callable[[int], None] | None, exact: bool = True) -> None:
        try:
            f: BinaryIO = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise FetchError(f"{url}: not found", url=url, status=404) from None
        got = 0
        with f:
            for chunk in iter(lambda: f.read(self.limits.chunk_size), b""):
                got += len(chunk)
                if got > size:
                    raise IntegrityError(f"{url}: larger than the {size} bytes the index promised"
                                         if exact else f"{url}: larger than the {size}-byte cap")
                sink.write(chunk)
                if progress:
                    progress(len(chunk))
        if exact and got < size:
            # A local file cannot be resumed or retried: short now is short for good. Said
            # here, it names the file (the size check after it names only the artifact).
            raise IntegrityError(f"{url}: {got} bytes; the index promised {size}",
                                 hint="the file is not the one indexed")

    # -- Git LFS batch API ----------------------------------------------------

    def lfs_batch(self, endpoint: str, objects: list[Pointer],
                  operation: str = "download") -> dict[str, dict[str, Any]]:
        """Ask a Git LFS server for `objects`: oid -> {"href", "header"} or {"error"}."""
        return lfsapi.batch(self, endpoint, objects, operation)
