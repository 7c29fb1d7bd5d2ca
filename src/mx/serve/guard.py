"""Load shedding, apart from any protocol: per-client rate limits, a bounded queue per
model version, and request deadlines.

- `RateLimiter`: a token bucket per client key (a bearer token, a named header or the
  peer address). At most `max_clients` buckets are kept, least recently used first out,
  so a flood of new keys costs a bounded amount of memory (an evicted client comes back
  with a full bucket, which is no more than a new client gets).
- `Shed`: what a refused request hears (429, 503 or 504), with the reason its metric is
  labelled by and the seconds after which to retry.
- `deadline`: when a request must have started running, from the server's default and
  what the client asked for (never later than the server's own bound).

The batcher enforces the queue bound (`BatchPolicy.max_queue`) and deadlines; the core
(`InferenceCore.admit`, `.run`) applies the policy, counts and answers refusals.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from mx.errors import BadInput

MAX_CLIENTS = 10_000  # buckets held at once
MAX_KEY_CHARS = 256  # longer keys are cut: they name a client, nothing more
TIMEOUT_HEADER = "X-Request-Timeout"  # seconds, a decimal number


class Shed(Exception):
    """A request refused to protect the server; `reason` labels the metric."""

    def __init__(self, status: int, message: str, reason: str,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


@dataclass(frozen=True)
class GuardPolicy:
    rate: float | None = None  # requests per second per client; None: no limit
    burst: int = 1  # requests a client may send at once after being idle
    key_header: str | None = None  # e.g. X-Client-Id, tried before the bearer token
    timeout: float | None = None  # seconds a request may wait to start; None: no bound


class RateLimiter:
    """Token buckets by client key: `rate` tokens a second up to `burst`; a request takes one."""

    def __init__(self, rate: float, burst: int, max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate > 0, burst >= 1 and max_clients >= 1 are required")
        self.rate, self.burst, self.max_clients, self.clock = rate, burst, max_clients, clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """0 when `key` may go now (a token is spent), else the seconds until it may."""
        now = self.clock()
        tokens, at = self.buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self.buckets[key] = (tokens, now)  # most recently used last
        while len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)
        return wait


def client_key(headers: Callable[[str], str | None], peer: str | None,
               key_header: str | None) -> str:
    """Who a request comes from: the named header, else the bearer token, else the peer."""
    if key_header:
        named = headers(key_header)
        if named:
            return "h:" + named[:MAX_KEY_CHARS]
    auth = headers("authorization") or ""
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "t:" + token.strip()[:MAX_KEY_CHARS]
    return "ip:" + (peer or "unknown")


def deadline(now: float, default: float | None, asked: float | None) -> float | None:
    """The clock time by which a request must start, or None for no bound."""
    bounds = [t for t in (default, asked) if t is not None]
    return now + min(bounds) if bounds else None


def parse_timeout_header(value: str | None) -> float | None:
    """`X-Request-Timeout: SECONDS` -> seconds (BadInput when not a positive number)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise BadInput(f"{TIMEOUT_HEADER}: {value[:40]!r} is not a positive number of "
                       "seconds")
    return seconds


def timeout_parameter(value: object) -> float | None:
    """The V2 request parameter `timeout` (microseconds, as Triton and tritonclient send
    it) -> seconds."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadInput(f"parameters.timeout: {str(value)[:40]} is not a positive integer "
                       "number of microseconds")
    return value / 1e6
