"""The load generator of bench/serve.py: HTTP/1.1 keep-alive clients on asyncio streams,
closed and open loops, and the CPU a server's processes spent (from /proc)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np


def cpu_seconds(group: int) -> float:
    """CPU time (user and system) of the live processes of a process group; NaN off Linux."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return float("nan")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == group:  # pgrp; utime and stime follow at 11 and 12
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


class Connection:
    """HTTP/1.1 keep-alive on asyncio streams: a wrk-like load generator costing tens of
    microseconds a request, so the clients do not set the ceiling (httpx on these 2 cores
    topped out near 170 req/s even for /v2/health/live; this reaches about 5,000)."""

    def __init__(self, url: str, payload: bytes, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        lines = [f"POST {parts.path} HTTP/1.1", f"Host: {self.host}",
                 f"Content-Length: {len(payload)}", *(f"{k}: {v}" for k, v in headers.items())]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload

    async def __aenter__(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    async def send(self) -> None:
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        assert head.startswith(b"HTTP/1.1 200") and m, head
        await self.reader.readexactly(int(m.group(1)))


async def closed_loop(url: str, request: tuple[bytes, dict[str, str]], clients: int,
                      seconds: float, lat: list[float] | None = None) -> float:
    """Requests per second with `clients` connections each sending back to back; each
    request's latency (s) goes into `lat` when given."""
    done = 0
    end = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal done
        async with Connection(url, *request) as conn:
            while (t := time.perf_counter()) < end:
                await conn.send()
                done += 1
                if lat is not None:
                    lat.append(time.perf_counter() - t)
    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    return done / (time.perf_counter() - start)


async def open_loop(url: str, request: tuple[bytes, dict[str, str]], rate: float,
                    seconds: float) -> list[float]:
    """Latencies (s) of requests sent at a fixed rate, whatever the answers' speed: each
    request takes an idle connection from a pool (opening one if none is idle)."""
    lat: list[float] = []
    idle: list[Connection] = []

    async def one() -> None:
        conn = idle.pop() if idle else await Connection(url, *request).__aenter__()
        t = time.perf_counter()
        await conn.send()
        lat.append(time.perf_counter() - t)
        idle.append(conn)
    for _ in range(16):
        idle.append(await Connection(url, *request).__aenter__())
    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    for conn in idle:
        await conn.__aexit__()
    return lat


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, q))
