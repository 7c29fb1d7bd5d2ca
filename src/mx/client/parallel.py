"""One large file over several Range requests at once, hashed in order as it lands.

The file is cut into pieces (8 to 16 MiB) that `limits.parallel_parts` workers take in
order, each with its own ranged GET (http(s) `Range: bytes=a-b`, or an S3 ranged get);
bytes go straight to their place in `tmp/<sha256>.part`. The first piece is the probe: a
206 whose Content-Range names the length the index promised (the host advertises ranges
and a known length) lets the other workers start once it is in, unless it came at
`limits.one_stream_rate` bytes a second or faster: then the path does not limit one
connection, and `OneStream` sends the caller on in one stream after it, as a 200 (the
host ignores Range) does with `NoRanges`.
An lfs+ URL is resolved first (the batch API's href and the headers it asks for).

Each piece's body writes itself into the file (`mx.landing`: splice(2) for plain http on
Linux, one reused buffer otherwise); sha256 is computed over the contiguous prefix as it
grows, read back from the page cache on a thread of its own (`mx.client.orderedhash`).

Resume: `tmp/<sha256>.ranges` ({"size": n, "done": [[start, end], ...]}) names the pieces
of the part file that are complete. It is written before the first byte lands past the
contiguous prefix and after each piece's bytes are written, so it never names bytes the
file does not hold; a killed download refetches only the pieces it had not finished. A
part file without it is a plain prefix (the one-stream layout); `to_prefix` turns the
ranged layout back into one (keeping the contiguous prefix) for the one-stream path.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from mx import httpbody
from mx.client.orderedhash import OrderedHasher
from mx.errors import FetchError, IntegrityError
from mx.fsutil import atomic_write_bytes, verify_digest
from mx.http import Transport
from mx.httpbase import PROGRESS_BYTES, _Retry, _retry_after, _status_hint, content_range
from mx.landing import ChunkBody, Landing

MIN_PIECE = 8 << 20
MAX_PIECE = 16 << 20


class NoRanges(Exception):
    """The host answered a Range request with the whole file: use one stream."""


class OneStream(NoRanges):
    """The first piece came fast enough that more connections cannot help: the caller
    continues after it in one stream (one request for the rest, not a request a piece)."""


class _Stopped(Exception):
    """Another worker failed; this one stops quietly."""


# lfs+ URLs resolve to an http(s) href (lfs+file is a local copy: nothing to gain).
RANGED_SCHEMES = ("http", "https", "s3", "lfs+http", "lfs+https", "lfs+ssh")

# Opens the bytes [got, end) of the file: a body that writes itself into the part file, or
# NoRanges/_Retry/FetchError/IntegrityError. Failures while it is read come out of the
# `with` block too.
PieceOpener = Callable[[int, int], AbstractContextManager[Landing]]


def wants_parallel(url: str, size: int, parts: int) -> bool:
    """Ranged parts for files of at least two pieces, when more than one is allowed."""
    return (parts > 1 and size >= 2 * MIN_PIECE
            and url.partition(":")[0].lower() in RANGED_SCHEMES)


def piece_size(size: int, parts: int) -> int:
    """About four pieces per worker, 8 to 16 MiB each: small enough that a slow piece holds
    the hash back little, large enough that a request's round trip is noise."""
    return max(MIN_PIECE, min(MAX_PIECE, size // (4 * max(parts, 1))))


def ranges_file(part: Path) -> Path:
    return part.with_suffix(".ranges")


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[0] < s[1]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def load_done(part: Path, size: int) -> list[tuple[int, int]]:
    """What the part file holds for certain: the spans its ranges file names (clipped to
    the file), or its whole length as a prefix when there is none. A malformed ranges file
    or one for another size counts as nothing."""
    try:
        held = part.stat().st_size
    except FileNotFoundError:
        return []
    ranges = ranges_file(part)
    if not ranges.exists():
        return [(0, held)] if 0 < held <= size else []
    try:
        doc = json.loads(ranges.read_text())
        if doc.get("size") != size:
            return []
        spans = [(int(a), int(b)) for a, b in doc["done"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []
    return _merge([(max(a, 0), min(b, held, size)) for a, b in spans])


def save_done(part: Path, size: int, done: list[tuple[int, int]]) -> None:
    atomic_write_bytes(ranges_file(part),
                       json.dumps({"size": size, "done": [list(s) for s in done]}).encode())


def to_prefix(part: Path, size: int) -> None:
    """Fold the ranged layout into a plain prefix (the one-stream layout): keep the bytes up
    to the first hole, drop the ranges file. Truncate first: a ranges file naming bytes past
    the end of its part is clipped when read."""
    ranges = ranges_file(part)
    if not ranges.exists():
        return
    done = load_done(part, size)
    keep = done[0][1] if done and done[0][0] == 0 else 0
    with contextlib.suppress(FileNotFoundError):
        os.truncate(part, keep)
    ranges.unlink(missing_ok=True)


def drop(part: Path) -> None:
    part.unlink(missing_ok=True)
    ranges_file(part).unlink(missing_ok=True)


def _check_content_range(value: str | None, start: int, end: int, size: int,
                         url: str) -> None:
    """A 206 must carry exactly the bytes asked for, of a file of the promised length."""
    span = content_range(value)
    if span is not None and span[2] is not None and span[2] != size:
        raise IntegrityError(f"{url}: the server's file is {span[2]} bytes; the index "
                             f"promised {size}",
                             hint="the artifact on the server is not the one indexed")
    if span is None or span != (start, end - 1, size):
        raise FetchError(f"{url}: asked for bytes {start}-{end - 1}, the server answered "
                         f"206 with Content-Range {value!r}",
                         hint="the host answers Range requests wrongly; nothing was kept",
                         url=url, status=206)


def _http_opener(transport: Transport, url: str, size: int,
                 extra: dict[str, str]) -> PieceOpener:
    @contextlib.contextmanager
    def open_piece(got: int, end: int) -> Iterator[Landing]:
        headers = transport._headers(url, {"Accept-Encoding": "identity", **extra,
                                           "Range": f"bytes={got}-{end - 1}"})
        with transport._stream(url, headers) as r:
            if r.status_code >= 500 or r.status_code == 429:
                raise _Retry(f"HTTP {r.status_code}", _retry_after(r.headers.get("Retry-After")))
            if r.status_code == 200:
                raise NoRanges(url)
            if r.status_code == 416:
                raise FetchError(f"{url}: the server's file ends before byte {got}; the index "
                                 f"promised {size}",
                                 hint="the artifact on the server is not the one indexed",
                                 url=url, status=416)
            if r.status_code != 206:
                raise FetchError(f"{url}: HTTP {r.status_code}",
                                 hint=_status_hint(r.status_code), url=url,
                                 status=r.status_code)
            _check_content_range(r.headers.get("Content-Range"), got, end, size, url)
            yield r

    return open_piece


class _Href:
    """One answer of the batch API, as a piece opener, and whether it served a piece."""

    def __init__(self, transport: Transport, url: str, size: int) -> None:
        href, extra = transport.lfs_href(url, size)
        self.href = href
        self.open = _http_opener(transport, href, size, extra)
        self.served = False


def _lfs_opener(transport: Transport, url: str, size: int) -> tuple[str, PieceOpener]:
    """Pieces from the batch API's href, asking the API again when the href stops working
    (401/403): hosts hand out signed hrefs that expire (`expires_in`), and a large model's
    download can outlast one. A new href is asked for only after the current one served a
    piece, so a host that refuses from the start gets its 403 reported, not a loop."""
    lock = threading.Lock()
    now = [_Href(transport, url, size)]

    @contextlib.contextmanager
    def open_piece(got: int, end: int) -> Iterator[Landing]:
        with lock:
            href = now[0]
        try:
            with href.open(got, end) as body:
                href.served = True
                yield body
        except FetchError as exc:
            if exc.status not in (401, 403):
                raise
            with lock:
                if now[0] is href:  # no other piece asked for a new one meanwhile
                    if not href.served:
                        raise
                    now[0] = _Href(transport, url, size)
            raise _Retry("the LFS href stopped working (expired?): the batch API gave a "
                         "new one") from None

    return now[0].href, open_piece


def opener_for(transport: Transport, url: str, size: int) -> tuple[str, PieceOpener]:
    """(the URL the pieces come from, how to open one) for an http(s), s3 or lfs+ URL."""
    scheme = url.partition(":")[0].lower()
    if scheme == "s3":
        @contextlib.contextmanager
        def s3_piece(got: int, end: int) -> Iterator[Landing]:
            with transport.s3_range(url, got, end, size) as chunks:
                yield ChunkBody(chunks)

        return url, s3_piece
    if scheme.startswith("lfs+"):
        return _lfs_opener(transport, url, size)
    return url, _http_opener(transport, url, size, {})


def fetch(transport: Transport, url: str, dest: Path, sha256: str, size: int, part: Path,
          advance: Callable[[int], None], what: str) -> None:
    """Download `url` into `part` with ranged requests, verify size and sha256, rename to
    `dest`. Continues what an earlier attempt left (ranges file or plain prefix).

    Raises NoRanges when the host ignores Range (nothing was written; the caller streams).
    On IntegrityError the part is deleted; on other failures it is left, with its ranges
    file, for a later attempt (the caller decides, as for the one-stream path)."""
    parts = transport.limits.parallel_parts
    url, open_piece = opener_for(transport, url, size)
    piece = piece_size(size, parts)
    done = load_done(part, size)
    part.parent.mkdir(parents=True, exist_ok=True)
    if not done:
        part.unlink(missing_ok=True)  # not a prefix of this file (or nothing): start over
    save_done(part, size, done)  # from here on, the part file may have holes
    todo: list[tuple[int, int]] = []
    at = 0
    for start, end in [*done, (size, size)]:
        for a in range(at, start, piece):
            todo.append((a, min(a + piece, start)))
        at = end
    fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o666)
    hasher = OrderedHasher(fd)
    lock = threading.Lock()
    # The others start once the first piece is in (its 206 says the host takes ranges, and
    # its speed whether more connections can help).
    decided = threading.Event()
    stop = threading.Event()
    errors: list[BaseException] = []
    for start, end in done:
        hasher.on_disk(start, end)
        advance(end - start)

    def get_piece(start: int, end: int) -> None:
        got, attempt = start, 0
        while True:
            mark = got
            try:
                with open_piece(got, end) as body:
                    for n in body.into_file(fd, got, end - got):
                        hasher.on_disk(got, got + n)
                        got += n
                        advance(n)
                        if stop.is_set():
                            raise _Stopped
                    if body.overran:
                        raise IntegrityError(
                            f"{url}: the server sent more than the {end - start} bytes "
                            f"of the range {start}-{end - 1}",
                            hint="the host answers Range requests wrongly")
                if got < end:
                    raise _Retry(f"connection closed after {got - start} of the "
                                 f"{end - start} bytes of range {start}-{end - 1}")
                return
            except (_Retry, *httpbody.TransportFailure) as exc:
                if got == end:
                    # Every byte of the piece arrived, and then the connection failed (the
                    # host announced more and went silent, or reset): the sha256 decides.
                    # Asking again would send `bytes=end-(end-1)`.
                    return
                attempt = 1 if got - mark >= PROGRESS_BYTES else attempt + 1
                transport._backoff(attempt, url, exc)

    def work(first: tuple[int, int] | None) -> None:
        try:
            if first is not None:
                began = time.monotonic()
                get_piece(*first)
                finished(first)
                # The install's rate: files downloading at once share the path.
                rate = ((first[1] - first[0]) / max(time.monotonic() - began, 1e-9)
                        * transport.count_ranged(0))
                # A stream this fast is not held back by the path (latency, a
                # per-connection cap), and more connections only add CPU: 4 GiB from
                # 127.0.0.1 on two cores took 0.94x curl's time in one stream and 1.42x
                # in four (bench/install.py).
                fast = transport.limits.one_stream_rate
                with lock:  # one stream continues after the prefix: only without holes
                    prefix_only = todo and done == [(0, first[1])]
                if fast and rate >= fast and prefix_only:
                    raise OneStream(url)
                decided.set()
            else:
                decided.wait()
            slots = None if first is not None else transport.part_slots
            while not stop.is_set():
                # The first worker is the file's own stream; the others share the
                # install's extra connections with the other files downloading.
                if slots is not None and not slots.acquire(timeout=0.05):
                    with lock:
                        if not todo:
                            return
                    continue
                try:
                    with lock:
                        if not todo:
                            return
                        span = todo.pop(0)
                    get_piece(*span)
                finally:
                    if slots is not None:
                        slots.release()
                finished(span)
        except _Stopped:
            pass
        except BaseException as exc:
            with lock:
                errors.append(exc)
            stop.set()
            decided.set()

    def finished(span: tuple[int, int]) -> None:
        with lock:
            done.append(span)
            done[:] = _merge(done)
            save_done(part, size, done)

    threads: list[threading.Thread] = []
    try:
        if todo:
            first = todo.pop(0)
            threads = [threading.Thread(target=work, args=(first if i == 0 else None,),
                                        daemon=True)
                       for i in range(min(parts, len(todo) + 1))]
            transport.count_ranged(1)
            try:
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            finally:
                transport.count_ranged(-1)
            if errors:
                # The probe's verdict first: a host ignoring Range is not a failure.
                raise next((e for e in errors if isinstance(e, NoRanges)), errors[0])
        digest = hasher.digest_at(size)
        verify_digest(digest, hasher.frontier, sha256, size, what)
    except NoRanges:
        hasher.close()
        os.close(fd)
        to_prefix(part, size)
        raise
    except IntegrityError:
        hasher.close()
        os.close(fd)
        drop(part)
        raise
    except BaseException:
        # Ctrl-C in the join: workers may still write. Closing the descriptor under them
        # could let a reused descriptor number take their bytes; leave it to the exit
        # unless they stop within a moment.
        stop.set()
        for t in threads:
            t.join(timeout=1)
        hasher.close()
        if not any(t.is_alive() for t in threads):
            os.close(fd)
        raise
    hasher.close()
    os.close(fd)
    os.chmod(part, 0o444)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, dest)
    ranges_file(part).unlink(missing_ok=True)
