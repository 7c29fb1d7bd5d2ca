"""The inference core, apart from any protocol: which models are served, finding one,
running a request through its batcher, health and metadata, metrics and the request log.

REST (`mx.serve.app`) wraps it in Starlette routes; a gRPC endpoint would wrap the same
calls. Errors a client caused are `ServeError` with the HTTP-style status to answer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np

from mx import __version__
from mx.errors import MxError
from mx.infer.model import LoadedModel
from mx.serve.batcher import Batcher, BatchPolicy, Feeds
from mx.serve.drift import DEFAULT_WINDOW, Drift
from mx.serve.guard import GuardPolicy, RateLimiter, Shed, deadline, timeout_parameter
from mx.serve.intake import BodyBudget, Offload
from mx.serve.metrics import Metrics
from mx.serve.models import ModelSet, Served
from mx.serve.tensors import model_metadata
from mx.serve.tracing import from_env as tracing_from_env

log = logging.getLogger("mx.serve")
UNKNOWN_MODEL = "(unknown)"  # the model label of requests for no model served


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 64 << 20
    policy: BatchPolicy = field(default_factory=BatchPolicy)
    workers: int = 4  # threads running onnxruntime
    inflight_bytes: int = 128 << 20  # request bodies held at once; at least max_body_bytes
    header_timeout: float = 10.0  # seconds from connecting to the end of the request head
    body_timeout: float = 60.0  # seconds from the request head to the end of its body
    guard: GuardPolicy = field(default_factory=GuardPolicy)  # rate limits and deadlines
    drift_window: int = DEFAULT_WINDOW  # rows of recent requests input drift is measured on


@dataclass(frozen=True)
class _Recorded:
    count: Any  # prometheus_client's labelled children
    latency: Any
    line: str  # the log line up to the milliseconds


class ServeError(Exception):
    """What to answer a client: a status (HTTP's numbers; gRPC maps them) and one line."""

    def __init__(self, status: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class InferenceCore:
    """State shared by every protocol; `load` adds a model version without stopping traffic."""

    def __init__(self, limits: ServeLimits, loader: Callable[[str], LoadedModel]) -> None:
        self.limits, self.loader = limits, loader
        self.models = ModelSet()
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(limits.workers, thread_name_prefix="mx-ort")
        self.budget = BodyBudget(limits.inflight_bytes)
        self.metrics.body_bytes.set_function(lambda: self.budget.used)
        self.offload = Offload()
        guard = limits.guard
        self.limiter = RateLimiter(guard.rate, guard.burst) if guard.rate else None
        self.tracing = tracing_from_env()  # OpenTelemetry spans when OTEL_* ask (tracing.py)
        self.drift = Drift(self.metrics.registry, limits.drift_window)  # input profiles
        self._recorded: dict[tuple[str, str, int], _Recorded] = {}

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.offload.close()
        self.tracing.close()

    # -- the model set ---------------------------------------------------------------

    def attach(self, model: LoadedModel, spec: str, make_default: bool = True) -> None:
        labels = (model.name, model.version)
        batch_rows = self.metrics.batch_size.labels(*labels)
        batcher = Batcher(model, self.limits.policy, self.executor,
                          on_batch=batch_rows.observe)
        self.metrics.load_seconds.labels(*labels).set(model.load_seconds)
        self.metrics.queue_depth.labels(*labels).set_function(lambda: batcher.waiting)
        self.models.add(Served(model, batcher), spec, make_default)
        self.drift.attach(model, spec)
        log.info(json.dumps({"event": "loaded", "model": model.name, "version": model.version,
                             "load_seconds": round(model.load_seconds, 4)}))

    def load(self, spec: str, make_default: bool = True) -> LoadedModel | None:
        try:
            model = self.loader(spec)
        except MxError as exc:
            # by model name when the spec has one, so /v2/models/<name>/ready can say why
            self.models.failed[spec.split("@")[0]] = exc.message
            log.warning(json.dumps({"event": "load_failed", "spec": spec,
                                    "error": exc.message}))
            return None
        self.attach(model, spec, make_default)
        return model

    def reload(self, name: str) -> LoadedModel:
        """Resolve `name`'s spec again and serve what it now names (ServeError if it fails)."""
        route = self.models.routes.get(name)
        if route is None and name not in self.models.failed:
            # only what the server was started with: any client may call this, and a made-up
            # name would be resolved (a download, or a directory on this machine) and, on
            # failing, listed in failed for ever: /v2/health/ready 503 from one request
            raise ServeError(404, f"unknown model {name!r}; serving: "
                             + (", ".join(sorted(self.models.versions)) or "none"))
        spec = route.spec if route else name
        loaded = self.load(spec)
        if loaded is None:
            why = self.models.failed.get(spec.split("@")[0], "failed")
            raise ServeError(400, f"{spec}: {why}")
        return loaded

    def find(self, name: str, version: str | None) -> Served:
        models = self.models
        if name in models.failed:
            raise ServeError(503, f"model {name!r} is not ready: {models.failed[name]}")
        if name not in models.versions:
            raise ServeError(404, f"unknown model {name!r}; serving: "
                             + (", ".join(sorted(models.versions)) or "none"))
        served = models.get(name, version)
        if served is None:
            raise ServeError(404, f"model {name!r} has no version {version!r}; serving: "
                             + ", ".join(sorted(models.versions[name])))
        return served

    # -- health and metadata ------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        models = self.models
        return models.ready, {"ready": models.ready, "models": sorted(models.versions),
                              "not_ready": dict(sorted(models.failed.items()))}

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "mx", "version": __version__,
                "extensions": ["model_repository", "binary_tensor_data"]}

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        found = self.find(name, version)
        meta = model_metadata(found.model)
        if version is None:
            meta["versions"] = sorted(self.models.versions[found.model.name])
        return meta

    # -- inference --------------------------------------------------------------------

    def admit(self, name: str, client: str) -> None:
        """Let `client` send a request to model `name`, or ServeError 429 over its rate."""
        if self.limiter is None:
            return
        wait = self.limiter.take(client)
        if wait > 0:
            self._shed(name, Shed(429, f"rate limit: {self.limits.guard.rate:g} requests a "
                                       "second per client; retry after the delay "
                                       "Retry-After gives", "rate_limited", wait))

    def deadline(self, arrived: float, asked_seconds: float | None,
                 asked_micros: object = None) -> float | None:
        """time.monotonic() by which a request that `arrived` then must start: the server's
        --timeout, or sooner when the client asks (a header in seconds, or the V2 request
        parameter `timeout` in microseconds)."""
        asked = [t for t in (asked_seconds, timeout_parameter(asked_micros)) if t is not None]
        return deadline(arrived, self.limits.guard.timeout, min(asked) if asked else None)

    async def run(self, served: Served, feeds: Feeds,
                  until: float | None = None) -> dict[str, np.ndarray]:
        """One request's rows through the model's batcher, started by `until` or not at all."""
        times = self.tracing.times()
        try:
            outputs = await served.batcher.infer(feeds, until, times)
        except Shed as exc:
            self._shed(served.model.name, exc)
        finally:
            self.tracing.ran(served.model.version, feeds, times)
        self.drift.observe(served.model, feeds)
        return outputs

    def _shed(self, name: str, exc: Shed) -> NoReturn:
        self.metrics.shed.labels(name, exc.reason).inc()
        raise ServeError(exc.status, exc.message, exc.headers) from None

    def record(self, name: str, version: str, status: int, seconds: float,
               message: str | None) -> None:
        """Metrics and the one log line of a finished inference request."""
        self.tracing.finish(version, status, message)
        if not version:  # no such model: nothing to time, nothing to log
            if name not in self.models.versions and name not in self.models.failed:
                # a name the client made up: one label for all (a label each would grow
                # /metrics, and the server's memory, with every new name in a URL)
                name = UNKNOWN_MODEL
            self.metrics.requests.labels(name, version, str(status)).inc()
            return
        # a served version's metric children and log line head, made once (labels() takes
        # a lock and checks its arguments: microseconds a call, three calls a request)
        key = (name, version, status)
        done = self._recorded.get(key)
        if done is None:
            done = self._recorded[key] = _Recorded(
                self.metrics.requests.labels(name, version, str(status)),
                self.metrics.latency.labels(name, version),
                f'{{"event": "infer", "model": {json.dumps(name)}, "version": '
                f'{json.dumps(version)}, "status": {status}, "ms": ')
        done.count.inc()
        done.latency.observe(seconds)
        if log.isEnabledFor(logging.INFO):  # the line json.dumps wrote, without json.dumps
            error = f', "error": {json.dumps(message)}' if message else ""
            log.info(f"{done.line}{round(seconds * 1000, 3)!r}{error}}}")

    def clock(self) -> float:
        return time.perf_counter()
