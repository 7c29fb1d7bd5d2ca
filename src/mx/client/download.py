"""Bring artifacts into blobs/: try each URL in order, verify, rename into place.

URL kinds (DESIGN section 4): relative to the index base, http(s)://, file://, and
lfs+<remote or endpoint>#<oid> through the Git LFS batch API.
"""

from __future__ import annotations

import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from mx.client.cache import Cache
from mx.errors import FetchError, IntegrityError, MxError
from mx.fsutil import HashingWriter, fetch_verified
from mx.http import Transport
from mx.lfs import Pointer, endpoint_for_remote, object_in_local_repo
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
        # One download of a blob at a time, in any process; prune leaves the blob alone
        # while its lock is held (mx.client.cache).
        with self.cache.holding_blob(sha):
            if self.cache.has_blob(sha, size):
                return dest
            errors: list[str] = []
            urls = art.get("urls") or []
            if not urls:
                raise FetchError(f"{label} {art['path']}: the index lists no URL for it")
            for url in urls:
                task = self.progress.add(f"{label} {art['path']}", size)
                fill = partial(self._fill, url, art, task=task)
                try:
                    fetch_verified(dest, sha, size, self.cache.tmp, fill,
                                   f"{art['path']} from {self._absolute(url)}")
                    return dest
                except IntegrityError:
                    raise  # wrong bytes are an attack or a broken publish: never fall back
                except MxError as exc:
                    errors.append(str(exc))
                finally:
                    self.progress.done(task)
            raise FetchError(errors[-1] if len(errors) == 1 else
                             f"{label} {art['path']}: every URL failed: " + "; ".join(errors),
                             hint="check the registry URL and your network; "
                                  "`mx install --offline` uses only the cache")

    def _absolute(self, url: str) -> str:
        if url.startswith("lfs+"):
            return url
        return urllib.parse.urljoin(self.base_url, url)

    def _fill(self, url: str, art: dict[str, Any], writer: HashingWriter, *, task: int) -> None:
        def advance(n: int) -> None:
            self.progress.advance(task, n)

        if url.startswith("lfs+"):
            self._fill_lfs(url[4:], art, writer, advance)
        else:
            self.transport.download(self._absolute(url), writer, art["size"], advance)

    def _fill_lfs(self, target: str, art: dict[str, Any], writer: HashingWriter,
                  advance: Any) -> None:
        remote, _, oid = target.rpartition("#")
        if not remote or oid != art["sha256"]:
            raise FetchError(f"{target}: malformed lfs+ URL (want lfs+<remote>#<oid>)")
        if remote.startswith("file:"):
            stored = object_in_local_repo(remote, oid)
            if stored is None:
                raise FetchError(f"{target}: object not in the LFS store at {remote}")
            self.transport.download(stored.as_uri(), writer, art["size"], advance)
            return
        endpoint = endpoint_for_remote(remote)
        answer = self.transport.lfs_batch(endpoint, [Pointer(oid, art["size"])])
        got = answer.get(oid) or {}
        if "error" in got or not got.get("href"):
            why = got.get("error", {}).get("message", "no download action")
            raise FetchError(f"{endpoint}: LFS object {oid}: {why}")
        self.transport.download(got["href"], writer, art["size"], advance,
                                headers=got.get("header"))
