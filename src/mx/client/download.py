"""Bring artifacts into blobs/: try each URL in order, verify, rename into place.

URLs are relative to the index base or absolute; which schemes can be fetched, and how,
is the transport's one table (`mx.http.Transport.download`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mx.client import parallel
from mx.client.cache import Cache
from mx.client.partfile import PartWriter, fetch_resumable
from mx.errors import FetchError, IntegrityError, MxError
from mx.http import Transport, join_url
from mx.progress import Progress


@dataclass
class Downloader:
    cache: Cache
    transport: Transport
    base_url: str
    progress: Progress

    def fetch_all(self, artifacts: list[dict[str, Any]], label: str) -> None:
        """Every artifact in `artifacts` into the blob store, in parallel."""
        missing = {a["sha256"]: a for a in artifacts if not self.cache.has_blob(a["sha256"],
                                                                                a["size"])}
        if not missing:
            return
        self.cache.ensure()
        workers = min(self.transport.limits.parallel_downloads, len(missing))
        if workers == 1:
            for art in missing.values():
                self.fetch_one(art, label)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(lambda a: self.fetch_one(a, label), missing.values()):
                pass

    def fetch_one(self, art: dict[str, Any], label: str) -> Path:
        sha, size = art["sha256"], art["size"]
        dest = self.cache.blob(sha)
        # The blob's lock owns tmp/<sha>.part: one writer at a time, in any process, and
        # prune leaves the blob alone while it is held (mx.client.cache).
        with self.cache.holding_blob(sha):
            if self.cache.has_blob(sha, size):
                return dest
            errors: list[str] = []
            last: MxError | None = None
            denied: str | None = None  # the hint of a host that wants credentials
            urls = art.get("urls") or []
            if not urls:
                raise FetchError(f"{label} {art['path']}: the index lists no URL for it")
            for url in urls:
                task = self.progress.add(f"{label} {art['path']}", size)
                try:
                    self._fetch_from(url, art, task)
                    return dest
                except IntegrityError:
                    raise  # wrong bytes are an attack or a broken publish: never fall back
                except MxError as exc:
                    errors.append(str(exc))
                    last = exc
                    if isinstance(exc, FetchError) and exc.status in (401, 403):
                        denied = denied or exc.hint
                finally:
                    self.progress.done(task)
            one = isinstance(last, FetchError) and len(errors) == 1
            raise FetchError(errors[-1] if len(errors) == 1 else
                             f"{label} {art['path']}: every URL failed: " + "; ".join(errors),
                             hint=denied or "check the registry URL and your network; "
                                            "`mx install --offline` uses only the cache",
                             url=last.url if one and isinstance(last, FetchError) else None,
                             status=last.status if one and isinstance(last, FetchError)
                             else None)

    def _fetch_from(self, url: str, art: dict[str, Any], task: int) -> None:
        """Fetch into tmp/<sha>.part, continuing what an earlier attempt (this process or
        a killed one) left there, then verify the whole file and move it into blobs/."""
        sha, size = art["sha256"], art["size"]
        if url.startswith("lfs+") and url.rpartition("#")[2] != sha:
            # The object named must be the artifact itself, whatever the batch API says.
            raise FetchError(f"{url}: names another LFS object than {art['path']}'s sha256")
        part = self.cache.part(sha)
        what = f"{art['path']} from {self._absolute(url)}"
        shown = 0  # what the progress bar shows, so each attempt can set it right
        counting = threading.Lock()  # ranged pieces advance it from several threads

        def advance(n: int) -> None:
            nonlocal shown
            with counting:
                shown += n
            self.progress.advance(task, n)

        def fill(writer: PartWriter) -> None:
            advance(writer.size - shown)  # a resumed file starts part-way
            self._fill(url, art, writer, advance)

        absolute = self._absolute(url)
        ranged = parallel.wants_parallel(absolute, size, self.transport.limits.parallel_parts)
        fresh = _size(part) == 0
        while True:
            try:
                if ranged:
                    advance(-shown)  # the ranged fetch counts what the part holds itself
                    try:
                        parallel.fetch(self.transport, absolute, self.cache.blob(sha), sha,
                                       size, part, advance, what)
                        return
                    except parallel.NoRanges:
                        # The host ignores Range, or one connection is as fast as this
                        # machine takes it (OneStream): one stream, as below.
                        ranged = False
                # A ranged attempt (this process or a killed one) may have left holes: the
                # one-stream path continues after the contiguous prefix only.
                parallel.to_prefix(part, size)
                fetch_resumable(self.cache.blob(sha), sha, size, part, fill, what)
                return
            except (IntegrityError, FetchError) as exc:
                # The prefix came from an earlier run, the host ignored the Range request
                # or has less than it: judge the host only by a whole fresh download.
                if fresh or not (isinstance(exc, IntegrityError) or exc.status == 416):
                    _drop_unless_resumable(part, exc)
                    raise
                parallel.drop(part)
                fresh = True
            except BaseException as exc:
                _drop_unless_resumable(part, exc)
                raise

    def _absolute(self, url: str) -> str:
        if url.startswith("lfs+"):
            return url
        return join_url(self.base_url, url)

    def _fill(self, url: str, art: dict[str, Any], writer: PartWriter,
              advance: Callable[[int], None]) -> None:
        try:
            # The transport asks for the bytes after what the writer holds (a resumed part),
            # on the first request and on every retry; a host ignoring Range starts over.
            self.transport.download(self._absolute(url), writer, art["size"], advance,
                                    offset=writer.size)
        except FetchError:
            # A host that announces more bytes than it sends fails the transfer after the
            # last promised byte arrived; the sha256 check after this decides about them.
            if writer.size != art["size"]:
                raise


def _drop_unless_resumable(part: Path, exc: BaseException) -> None:
    """Keep what arrived for the next attempt, unless the host answered for good (an
    HTTP error status) or nothing arrived."""
    if (isinstance(exc, FetchError) and exc.status is not None) or not _size(part):
        parallel.drop(part)  # and the ranges file of a ranged attempt


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
