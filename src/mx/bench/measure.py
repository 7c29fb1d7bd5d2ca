"""Measure one (artifact, batch) in a fresh child process, so peak memory and load time
are the model's own and not what earlier runs left behind."""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mx.bench.backends import backend_for
from mx.cpufeatures import cpu_model
from mx.errors import MxError
from mx.sampling import Spec, generate
from mx.tensorspec import Value


@dataclass
class BenchJob:
    path: str
    fmt: str
    device: str
    batch: int
    threads: int
    dims: dict[str, int]
    specs: list[tuple[Value, int | None]]  # Spec.to_tuple
    warmup: int = 5
    iterations: int = 50
    min_seconds: float = 1.0


def _status_kib(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _peak_kib() -> int:
    # VmHWM is this address space's high-water mark; ru_maxrss survives exec, so a spawned
    # child would report its parent's peak.
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _worker(job: BenchJob) -> dict[str, Any]:

    backend = backend_for(job.fmt)
    if backend is None:
        raise MxError(f"no bench backend runs {job.fmt} artifacts")
    feeds = generate([Spec(*t) for t in job.specs], job.dims, job.batch)
    base = _status_kib("VmRSS")
    t0 = time.perf_counter()
    loaded = backend.load(Path(job.path), job.device, job.threads)
    load_s = time.perf_counter() - t0
    for _ in range(job.warmup):
        loaded.run(feeds)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < job.iterations or time.perf_counter() - start < job.min_seconds:
        t = time.perf_counter()
        loaded.run(feeds)
        times.append(time.perf_counter() - t)
        if len(times) >= 100 * job.iterations:
            break
    total = sum(times)
    lat = np.array(times) * 1000
    peak = _peak_kib()
    return {
        "backend": loaded.backend, "backend_version": loaded.version,
        "provider": loaded.provider, "gpu": loaded.gpu,
        "latency_ms": {"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                       "p99": float(np.percentile(lat, 99)), "mean": float(lat.mean())},
        "throughput": job.batch * len(times) / total,
        "iterations": len(times),
        "load_time_ms": load_s * 1000,
        "peak_memory_mb": peak / 1024,
        "model_memory_mb": max(peak - base, 0) / 1024,
    }


def _child(job: BenchJob, conn: Any) -> None:
    try:
        conn.send(("ok", _worker(job)))
    except MxError as exc:
        conn.send(("error", (exc.message, exc.hint)))
    except Exception as exc:
        conn.send(("error", (f"{type(exc).__name__}: {exc}", None)))
    finally:
        conn.close()


def measure(job: BenchJob, isolate: bool = True) -> dict[str, Any]:
    if not isolate:
        return _worker(job)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(job, child))
    proc.start()
    child.close()
    try:
        status, payload = parent.recv()
    except EOFError:
        proc.join()
        raise MxError(f"the benchmark process for {job.path} died "
                      f"(exit {proc.exitcode})") from None
    proc.join()
    if status == "error":
        message, hint = payload
        raise MxError(message, hint=hint)
    return dict(payload)


def hardware(result: dict[str, Any]) -> dict[str, Any]:
    return {"cpu": cpu_model(), "cores": os.cpu_count() or 0, "gpu": result.get("gpu"),
            "backend": result["backend"], "backend_version": result["backend_version"],
            "provider": result["provider"]}


def hardware_key(hw: dict[str, Any]) -> str:
    return (f"{hw['cpu']} x{hw['cores']} | {hw['gpu'] or 'no gpu'} | {hw['backend']} "
            f"{hw['backend_version']} | {hw['provider']}")
