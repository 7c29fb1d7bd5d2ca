"""What every kind of request shares: origins and redirects, the retry signal, the trust
store, credentials from ~/.netrc, and the small wire facts (Retry-After, Cache-Control).

`mx.http.Transport` (artifacts), `mx.httpdocs` (small documents) and `mx.lfsapi` (the Git
LFS batch API) build on it; none of it does I/O beyond reading ~/.netrc.
"""

from __future__ import annotations

import base64
import email.utils
import netrc
import os
import re
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from mx import __version__
from mx.errors import FetchError

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


@runtime_checkable
class FileSink(Sink, Protocol):
    """A sink over a file that a body may write into itself (`mx.landing`), at the offset
    of what the sink holds: `landed(n)` announces the n bytes written there."""

    def fileno(self) -> int: ...
    def landed(self, n: int) -> None: ...


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


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


def content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """(first, last, total) of a 206's `Content-Range: bytes first-last/total` (total None
    for `*`), or None when the value is missing or malformed."""
    m = _CONTENT_RANGE.match(value or "")
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), None if m.group(3) == "*" else int(m.group(3))


def _netrc_authorization(url: str, headers: dict[str, str]) -> dict[str, str]:
    """Basic auth from ~/.netrc (or $NETRC) for the URL's host, as curl and pip do."""
    if "Authorization" in headers:
        return {}
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if not path.is_file():
        return {}
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
