"""s3:// artifacts for the Transport: whole objects (resumed from an offset) and ranged
pieces, with http's cap, retry and resume policy.

object_store's own retries are off (`mx.objstore.Stores`): `Transport._backoff` decides,
as it does for http. A store error becomes `_Retry` (worth another try), a FetchError with
the status (403, 404, ...), or an IntegrityError when the object is not the size the index
promised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mx import objstore
from mx.errors import FetchError, IntegrityError
from mx.http import Transport
from mx.httpbase import PROGRESS_BYTES, Sink, _Retry

WRONG_OBJECT = "the artifact in the bucket is not the one indexed"


@contextmanager
def _store_failures(url: str, got: int, size: int) -> Iterator[None]:
    """Store errors raised in the block, as mx errors."""
    try:
        yield
    except Exception as exc:
        if not objstore.is_store_error(exc):
            raise
        if got and objstore.status_of(exc) == 416:
            raise FetchError(f"{url}: the object ends after {got} bytes or fewer; the index "
                             f"promised {size}", hint=WRONG_OBJECT, url=url,
                             status=416) from None
        if objstore.retryable(exc):
            raise _Retry(objstore.describe(exc)) from None
        raise objstore.fetch_error(url, exc) from None


def download(transport: Transport, url: str, sink: Sink, size: int,
             progress: Callable[[int], None] | None, offset: int, exact: bool = True) -> None:
    """The object from `offset` on into `sink`, until it holds `size` bytes. With `exact`
    off, `size` is only a cap (a document of unknown length)."""
    store, key = transport.s3_store(url)
    got = offset
    attempt = 0
    while True:
        mark = got
        try:
            with _store_failures(url, got, size):
                total, chunks = objstore.read(store, key, got, transport.limits.chunk_size)
                if not exact and total <= size:
                    size = total
                if total > size:
                    raise IntegrityError(f"{url}: the object is {total} bytes; the index "
                                         f"promised {size}", hint=WRONG_OBJECT)
                for chunk in chunks:
                    got += len(chunk)
                    if got > size:
                        raise IntegrityError(f"{url}: the bucket sent more than the {size} "
                                             "bytes the index promised", hint=WRONG_OBJECT)
                    sink.write(chunk)
                    if progress:
                        progress(len(chunk))
            if got < size:
                raise _Retry(f"connection closed after {got} of {size} bytes")
            return
        except _Retry as exc:
            if got == size:
                return  # every promised byte arrived: the caller's sha256 decides
            attempt = 1 if got - mark >= PROGRESS_BYTES else attempt + 1
            transport._backoff(attempt, url, exc)


@contextmanager
def piece(transport: Transport, url: str, start: int, end: int,
          size: int) -> Iterator[Iterator[bytes]]:
    """Bytes [start, end) of an object that must be `size` bytes long; failures while the
    chunks are read come out of the `with` block as mx errors or `_Retry`."""
    store, key = transport.s3_store(url)
    with _store_failures(url, start, size):
        total, chunks = objstore.read_range(store, key, start, end,
                                            transport.limits.chunk_size)
        if total != size:
            raise IntegrityError(f"{url}: the object is {total} bytes; the index promised "
                                 f"{size}", hint=WRONG_OBJECT)
        yield chunks
