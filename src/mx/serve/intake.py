"""Request bodies from the socket to arrays, without letting one client starve the rest.

- A byte budget over every body held in memory: a request over it gets 503 and
  Retry-After at once (its declared Content-Length counts from the headers on).
- A deadline for the whole body (408), so a client that trickles bytes cannot hold its
  share of the budget or its socket for ever.
- JSON parsed with a nesting limit and without NaN/Infinity or numbers no tensor holds
  (`jsoncodec`: orjson when it reads a body as json would, json otherwise).
- Bodies over OFFLOAD_BYTES are decoded, and big JSON answers encoded, in a worker
  process: json.loads holds the GIL, so a 60 MB body parsed on the event loop would stall
  every other request for seconds.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import signal
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from mx.errors import BadInput
from mx.serve.jsoncodec import dumps, parse_json
from mx.serve.tensors import Wanted, decode_request, encode_outputs
from mx.tensorspec import Value

HEADER_LENGTH = "Inference-Header-Content-Length"  # Triton's binary tensor extension
OFFLOAD_BYTES = 1 << 20  # parsing 1 MiB of JSON takes ~20 ms: fine on the event loop
# One process: a 60 MB JSON body is ~350 MB of Python objects while parsed, so big bodies
# take turns rather than multiply that (four at once held 1.2 GB with two workers).
OFFLOAD_WORKERS = 1
SMALL_BODY = 64 << 10  # bodies this small may also use the budget's reserve


class Refused(Exception):
    """A request turned away before its body was decoded; `reason` labels the metric."""

    def __init__(self, status: int, message: str, reason: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason
        self.headers = dict(headers or {})


class BodyBudget:
    """Bytes of request bodies the server holds at once (raw, parsed and in inference).

    Small bodies may go an eighth past `total`, so that a budget filled by big or slow
    uploads still lets ordinary requests through."""

    def __init__(self, total: int) -> None:
        self.total, self.used = total, 0
        self.reserve = total // 8

    def hold(self) -> Hold:
        """`with budget.hold() as held:` bytes held until the block ends."""
        return Hold(self)


class Hold:
    def __init__(self, budget: BodyBudget) -> None:
        self.budget, self.bytes = budget, 0

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.budget.used -= self.bytes
        self.bytes = 0

    def reach(self, size: int) -> None:
        """Hold `size` bytes in all, or refuse with 503 when the budget has no room."""
        more = size - self.bytes
        if more <= 0:
            return
        room = self.budget.total + (self.budget.reserve if size <= SMALL_BODY else 0)
        if self.budget.used + more > room:
            mb = self.budget.total / (1 << 20)
            raise Refused(503, f"server busy: request bodies already fill the {mb:g} MB "
                               "it holds at once; retry shortly", "busy", {"Retry-After": "1"})
        self.budget.used += more
        self.bytes = size


class ClientDisconnect(Exception):
    """The client went away before sending the whole body."""


async def read_body(receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
                    declared: str | None, limit: int, timeout: float, held: Hold,
                    received: bool = False) -> bytes:
    """The whole body of an ASGI request within `timeout` seconds and `limit` bytes,
    counted in `held`; `declared`: its Content-Length header, if it has one; `received`:
    the server says the whole body is in (no deadline needed to read it)."""
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise _too_large(limit)
        held.reach(int(declared))
    chunks, size = [], 0
    try:
        async with nullcontext() if received else asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit)
                    held.reach(size)  # bodies without Content-Length are counted as they come
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        # the client is too slow to wait for: close rather than drain the rest
        raise Refused(408, f"request body not received within {timeout:g} s ({size} bytes "
                           "arrived)", "body_timeout", {"Connection": "close"}) from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> Refused:
    return Refused(413, f"request body over {limit} bytes; raise --max-body-mb or send "
                        "smaller batches", "too_large")


def split_binary(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON header, binary tensors) of a request body."""
    if header_length is None:
        return raw, b""
    # isascii: str.isdigit() is also true of '²', which int() refuses
    if (not (header_length.isascii() and header_length.isdigit())
            or int(header_length) > len(raw)):
        raise BadInput(f"{HEADER_LENGTH}: {header_length!r} is not a length within the "
                       f"{len(raw)}-byte body")
    n = int(header_length)
    return raw[:n], raw[n:]


@dataclass
class Decoded:
    feeds: dict[str, np.ndarray]
    wanted: Wanted
    extra: dict[str, Any]  # request fields the answer repeats (`id`)
    timeout: object = None  # the request parameter `timeout` (microseconds), unchecked


def decode_body(raw: bytes, header_length: str | None, specs: Sequence[Value]) -> Decoded:
    header, binary = split_binary(raw, header_length)
    body = parse_json(header)
    feeds, wanted = decode_request(body, specs, binary)
    params = body.get("parameters")
    return Decoded(feeds, wanted, _echoed_id(body),
                   params.get("timeout") if isinstance(params, dict) else None)


def _echoed_id(body: dict[str, Any]) -> dict[str, Any]:
    """The request's `id`, which the answer repeats: any JSON value that JSON can carry
    back (1e400 reads as infinity, which it cannot: 400 here, not 500 when encoding)."""
    if "id" not in body:
        return {}
    value = body["id"]
    if not isinstance(value, str):
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            raise BadInput("id: has a number out of float64's range, which the answer "
                           "cannot repeat") from None
    return {"id": value}


def encode_body(head: dict[str, Any], specs: Sequence[Value],
                arrays: Mapping[str, np.ndarray], wanted: Wanted) -> tuple[bytes, list[bytes]]:
    """(JSON header, binary outputs) of an answer: `head` plus the outputs."""
    entries, blobs = encode_outputs(specs, arrays, wanted)
    return dumps({**head, "outputs": entries}), blobs


T = TypeVar("T")


class Offload:
    """Worker processes for big bodies, started on first use."""

    def __init__(self, workers: int = OFFLOAD_WORKERS) -> None:
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None

    async def decode(self, raw: bytes, header_length: str | None,
                     specs: Sequence[Value]) -> Decoded:
        if len(raw) <= OFFLOAD_BYTES:
            return decode_body(raw, header_length, specs)
        return await self._call(decode_body, raw, header_length, list(specs))

    async def encode(self, head: dict[str, Any], specs: Sequence[Value],
                     arrays: Mapping[str, np.ndarray],
                     wanted: Wanted) -> tuple[bytes, list[bytes]]:
        as_json = sum(a.nbytes for name, a in arrays.items()
                      if not (wanted.all_binary or name in wanted.binary))
        if as_json <= OFFLOAD_BYTES // 4:  # JSON text is several times the array's bytes
            return encode_body(head, specs, arrays, wanted)
        return await self._call(encode_body, head, list(specs), dict(arrays), wanted)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(self.workers,
                                            mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_ignore_sigint)
        pool = self.pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except BrokenProcessPool:
            if self.pool is pool:  # the next big body starts fresh workers
                self.pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise Refused(503, "the worker decoding large bodies died (out of memory?); "
                               "retry shortly", "worker_died", {"Retry-After": "1"}) from None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; the server stops its workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
