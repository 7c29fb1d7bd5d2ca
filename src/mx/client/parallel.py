"""One large file over several HTTP Range requests at once, hashed in order as it lands.

The file is cut into pieces (8 to 16 MiB) that `limits.parallel_parts` workers take in
order, each with its own GET and `Range: bytes=a-b`; bytes go straight to their place in
`tmp/<sha256>.part` (pwrite). The first request is the probe: a 206 whose Content-Range names
the length the index promised (the host advertises ranges and a known length) lets the other
workers start; a 200 (the host ignores Range) ends the attempt with `NoRanges`, and the
caller downloads with one stream instead.

sha256 is computed over the contiguous prefix as it grows, on a thread of its own, from the
chunks in memory: pieces are taken in order, so what lands ahead of the prefix is at most a
few pieces, held up to a budget. Past the budget (a stalled piece), chunks are left on disk
and read back when the prefix reaches them (`OrderedHasher.reread` counts those bytes), as
are the pieces an earlier, killed attempt left.

Resume: `tmp/<sha256>.ranges` ({"size": n, "done": [[start, end], ...]}) names the pieces
of the part file that are complete. It is written before the first byte lands past the
contiguous prefix and after each piece's bytes are written, so it never names bytes the
file does not hold; a killed download refetches only the pieces it had not finished. A
part file without it is a plain prefix (the one-stream layout); `to_prefix` turns the
ranged layout back into one (keeping the contiguous prefix) for the one-stream path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from mx import httpbody
from mx.errors import FetchError, IntegrityError
from mx.fsutil import CHUNK, atomic_write_bytes, verify_digest
from mx.http import Transport, _Retry, _retry_after, _status_hint

MIN_PIECE = 8 << 20
MAX_PIECE = 16 << 20
MAX_HELD = 256 << 20  # most bytes the hasher keeps in memory ahead of the prefix

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


class NoRanges(Exception):
    """The host answered a Range request with the whole file: use one stream."""


class _Stopped(Exception):
    """Another worker failed; this one stops quietly."""


def wants_parallel(url: str, size: int, parts: int) -> bool:
    """Ranged parts for http(s) files of at least two pieces, when more than one is allowed."""
    return (parts > 1 and size >= 2 * MIN_PIECE
            and url.partition(":")[0].lower() in ("http", "https"))


def piece_size(size: int, parts: int) -> int:
    """About four pieces per worker, 8 to 16 MiB each: small enough that out-of-order bytes
    stay in memory until hashed, large enough that a request's round trip is noise."""
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


class OrderedHasher:
    """sha256 of a file whose bytes land out of order: `landed(offset, chunk)` after each
    chunk is written; a thread hashes the contiguous prefix as it grows."""

    def __init__(self, fd: int, budget: int) -> None:
        self._fd = fd
        self._budget = budget
        self._h = hashlib.sha256()
        self.frontier = 0
        self.reread = 0  # bytes hashed by reading the file back
        self._ready: dict[int, memoryview | int] = {}  # offset -> bytes, or a length on disk
        self._held = 0
        self._closed = False
        self._busy = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def on_disk(self, start: int, end: int) -> None:
        """Bytes an earlier attempt wrote: read back when the prefix reaches them."""
        with self._cond:
            self._ready[start] = end - start
            self._cond.notify_all()

    def landed(self, offset: int, chunk: memoryview) -> None:
        with self._cond:
            if offset == self.frontier or self._held + len(chunk) <= self._budget:
                self._ready[offset] = chunk
                self._held += len(chunk)
            else:
                self._ready[offset] = len(chunk)
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self.frontier not in self._ready and not self._closed:
                        self._cond.wait()
                    item = self._ready.pop(self.frontier, None)
                    if item is None:
                        return
                    self._busy = True
                if isinstance(item, memoryview):
                    self._h.update(item)
                    n = len(item)
                else:
                    n = item
                    self._read_back(self.frontier, n)
                with self._cond:
                    if isinstance(item, memoryview):
                        self._held -= n
                    self.frontier += n
                    self._busy = False
                    self._cond.notify_all()
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _read_back(self, offset: int, n: int) -> None:
        end = offset + n
        while offset < end:
            data = os.pread(self._fd, min(CHUNK, end - offset), offset)
            if not data:
                raise OSError(f"the part file ends at {offset}, before {end}")
            self._h.update(data)
            offset += len(data)
            self.reread += len(data)

    def digest_at(self, size: int) -> str:
        """The hex digest once the prefix reaches `size`; call when every byte has landed."""
        with self._cond:
            while self.frontier < size and self._error is None:
                if not self._busy and self.frontier not in self._ready:
                    raise IntegrityError(f"no bytes landed at offset {self.frontier} of {size}")
                self._cond.wait()
            if self._error is not None:
                raise self._error
        return self._h.hexdigest()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()


def _check_content_range(value: str | None, start: int, end: int, size: int,
                         url: str) -> None:
    """A 206 must carry exactly the bytes asked for, of a file of the promised length."""
    m = _CONTENT_RANGE.match(value or "")
    if m is not None and m.group(3) != "*" and int(m.group(3)) != size:
        raise IntegrityError(f"{url}: the server's file is {m.group(3)} bytes; the index "
                             f"promised {size}",
                             hint="the artifact on the server is not the one indexed")
    if m is None or m.group(3) == "*" or (int(m.group(1)), int(m.group(2))) != (start, end - 1):
        raise FetchError(f"{url}: asked for bytes {start}-{end - 1}, the server answered "
                         f"206 with Content-Range {value!r}",
                         hint="the host answers Range requests wrongly; nothing was kept",
                         url=url, status=206)


def fetch(transport: Transport, url: str, dest: Path, sha256: str, size: int, part: Path,
          advance: Callable[[int], None], what: str) -> int:
    """Download `url` into `part` with ranged requests, verify size and sha256, rename to
    `dest`. Continues what an earlier attempt left (ranges file or plain prefix).

    Raises NoRanges when the host ignores Range (nothing was written; the caller streams).
    On IntegrityError the part is deleted; on other failures it is left, with its ranges
    file, for a later attempt (the caller decides, as for the one-stream path). Returns
    how many bytes the hash read back from the file (0 unless pieces outran the budget, or
    an earlier attempt left some)."""
    parts = transport.limits.parallel_parts
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
    hasher = OrderedHasher(fd, min(MAX_HELD, 2 * parts * piece))
    lock = threading.Lock()
    probed = threading.Event()
    stop = threading.Event()
    errors: list[BaseException] = []
    for start, end in done:
        hasher.on_disk(start, end)
        advance(end - start)

    def get_piece(start: int, end: int, probe: bool) -> None:
        got, attempt = start, 0
        while True:
            headers = transport._headers(url, {"Accept-Encoding": "identity",
                                               "Range": f"bytes={got}-{end - 1}"})
            try:
                with transport._stream(url, headers) as r:
                    if r.status_code >= 500 or r.status_code == 429:
                        raise _Retry(f"HTTP {r.status_code}",
                                     _retry_after(r.headers.get("Retry-After")))
                    if r.status_code == 200:
                        raise NoRanges(url)
                    if r.status_code == 416:
                        raise FetchError(f"{url}: the server's file ends before byte {got}; "
                                         f"the index promised {size}",
                                         hint="the artifact on the server is not the one "
                                              "indexed", url=url, status=416)
                    if r.status_code != 206:
                        raise FetchError(f"{url}: HTTP {r.status_code}",
                                         hint=_status_hint(r.status_code), url=url,
                                         status=r.status_code)
                    _check_content_range(r.headers.get("Content-Range"), got, end, size, url)
                    if probe:
                        probe = False
                        probed.set()
                    # One byte past the range is enough to know the host lies.
                    for chunk in r.chunks(transport.limits.chunk_size, end + 1 - got):
                        if stop.is_set():
                            raise _Stopped
                        if got + len(chunk) > end:
                            raise IntegrityError(
                                f"{url}: the server sent more than the {end - start} bytes "
                                f"of the range {start}-{end - 1}",
                                hint="the host answers Range requests wrongly")
                        view = chunk
                        while view:
                            view = view[os.pwrite(fd, view, got + len(chunk) - len(view)):]
                        hasher.landed(got, chunk)
                        got += len(chunk)
                        advance(len(chunk))
                if got < end:
                    raise _Retry(f"connection closed after {got - start} of the "
                                 f"{end - start} bytes of range {start}-{end - 1}")
                return
            except (_Retry, *httpbody.TransportFailure) as exc:
                attempt += 1
                transport._backoff(attempt, url, exc)

    def work(first: tuple[int, int] | None) -> None:
        try:
            if first is not None:
                get_piece(*first, probe=True)
                finished(first)
            else:
                probed.wait()
            while not stop.is_set():
                with lock:
                    if not todo:
                        return
                    span = todo.pop(0)
                get_piece(*span, probe=False)
                finished(span)
        except _Stopped:
            pass
        except BaseException as exc:
            with lock:
                errors.append(exc)
            stop.set()
            probed.set()

    def finished(span: tuple[int, int]) -> None:
        with lock:
            done.append(span)
            done[:] = _merge(done)
            save_done(part, size, done)

    try:
        if todo:
            first = todo.pop(0)
            threads = [threading.Thread(target=work, args=(first if i == 0 else None,),
                                        daemon=True)
                       for i in range(min(parts, len(todo) + 1))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
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
        hasher.close()
        os.close(fd)
        raise
    hasher.close()
    os.close(fd)
    os.chmod(part, 0o444)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, dest)
    ranges_file(part).unlink(missing_ok=True)
    return hasher.reread
