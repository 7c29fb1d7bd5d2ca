"""python-tuf's FetcherInterface over mx's one transport (its limits, retries, redirect
and credential rules), with HTTP errors passed on as ngclient expects them.

A module of its own because it subclasses a tuf class: importing it imports tuf, which the
client does only when metadata must be refreshed."""

from __future__ import annotations

from collections.abc import Iterator

from tuf.api import exceptions
from tuf.ngclient import FetcherInterface

from mx.errors import FetchError, SizeLimitError
from mx.http import Transport


class TransportFetcher(FetcherInterface):
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def _fetch(self, url: str) -> Iterator[bytes]:
        yield self.download_bytes(url, self.transport.limits.max_index_bytes)

    def download_bytes(self, url: str, max_length: int) -> bytes:
        # Overridden so the cap reaches the transport: endless data stops at max_length + 1
        # bytes instead of being streamed into a temp file first.
        try:
            return self.transport.get(url, max_length).data
        except SizeLimitError as exc:
            raise exceptions.DownloadLengthMismatchError(str(exc)) from None
        except FetchError as exc:
            if exc.status is not None:
                raise exceptions.DownloadHTTPError(str(exc), exc.status) from None
            raise exceptions.DownloadError(str(exc)) from None
