"""The Git LFS batch API: where an object is (its href and the headers to send there).

Every answer is hostile: streamed and capped at `limits.max_lfs_batch_bytes`, refused as
stalled when it trickles, redirects refused, errors cut to one line, an href that is not
http(s) and headers that are not single-line RFC 9110 fields refused.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

from mx import landing
from mx.errors import FetchError
from mx.httpbase import _HEADER_TOKEN, _HEADER_VALUE, _Retry, _retry_after, _status_hint
from mx.lfs import LFS_MEDIA_TYPE, Pointer, batch_request, endpoint_for_remote

if TYPE_CHECKING:
    import httpx

    from mx.http import Transport


def batch(t: Transport, endpoint: str, objects: list[Pointer],
              operation: str = "download") -> dict[str, dict[str, Any]]:
    """Ask a Git LFS server for `objects`: oid -> {"href", "header"} or {"error"}."""
    import httpx

    url = endpoint.rstrip("/") + "/objects/batch"
    body = json.dumps(batch_request(objects, operation)).encode()
    attempt = 0
    while True:
        try:
            headers = {"Accept": LFS_MEDIA_TYPE, "Content-Type": LFS_MEDIA_TYPE}
            request = t._http().build_request("POST", url, content=body,
                                                 headers=t._headers(url, headers))
            # Streamed and capped: `post` would hold the whole answer in memory, and a
            # hostile server's has no end.
            r = t._http().send(request, stream=True)
            try:
                if r.is_redirect:
                    raise FetchError(f"{url}: the Git LFS batch API answered with a "
                                     f"redirect (HTTP {r.status_code}); refused", url=url)
                if r.status_code >= 500 or r.status_code == 429:
                    raise _Retry(f"HTTP {r.status_code}",
                                 _retry_after(r.headers.get("Retry-After")))
                content = _capped(t, r, url) if r.status_code == 200 else b""
            finally:
                r.close()
            break
        except (_Retry, httpx.TransportError) as exc:
            attempt += 1
            t._backoff(attempt, url, exc)
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


def _capped(t: Transport, r: httpx.Response, url: str) -> bytes:
    """The body of a batch answer: at most max_lfs_batch_bytes, and refused as stalled
    when a read_timeout passes with under landing.MIN_RATE bytes a second (httpx's
    timeout fires only on silence)."""
    import httpx

    limit = t.limits.max_lfs_batch_bytes
    pace = landing.Pace(t.limits.read_timeout)
    parts: list[bytes] = []
    held = 0
    for chunk in r.iter_bytes():
        parts.append(chunk)
        held += len(chunk)
        if held > limit:
            raise FetchError(f"{url}: batch answer over the size limit")
        try:
            pace.count(len(chunk))
        except TimeoutError as exc:  # what the caller retries, as httpx's own timeouts
            raise httpx.ReadTimeout(str(exc)) from None
    return b"".join(parts)


def href(t: Transport, url: str, size: int) -> tuple[str, dict[str, str]]:
    """Where the object of an lfs+http(s)/lfs+ssh URL is: the batch API's href and the
    headers it asks for (they go to that href only)."""
    remote, _, oid = url[4:].rpartition("#")
    if not remote or not re.fullmatch(r"[0-9a-f]{64}", oid):
        raise FetchError(f"{url}: malformed lfs+ URL (want lfs+<remote>#<oid>)", url=url)
    endpoint = endpoint_for_remote(remote)
    answer = batch(t, endpoint, [Pointer(oid, size)])
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
