"""Prometheus metrics of one server (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("mx_requests", "Inference requests by model, version, status",
                                ["model", "version", "status"], registry=self.registry)
        self.latency = Histogram("mx_request_seconds", "Inference request latency",
                                 ["model", "version"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.batch_size = Histogram("mx_batch_rows", "Rows per onnxruntime run",
                                    ["model", "version"], buckets=BATCH_BUCKETS,
                                    registry=self.registry)
        self.rejected = Counter("mx_rejected", "Requests and connections turned away by a "
                                "limit: header_timeout, body_timeout, too_large, busy, worker_died",
                                ["reason"], registry=self.registry)
        self.body_bytes = Gauge("mx_body_bytes", "Bytes of request bodies held now (what "
                                "--max-inflight-mb caps)", registry=self.registry)
        self.shed = Counter("mx_shed", "Inference requests refused to protect the server: "
                            "rate_limited (429), queue_full (503), deadline_exceeded (504)",
                            ["model", "reason"], registry=self.registry)
        self.queue_depth = Gauge("mx_queue_depth", "Requests waiting to start (what "
                                 "--max-queue caps)", ["model", "version"],
                                 registry=self.registry)
        self.load_seconds = Gauge("mx_model_load_seconds", "Time to load a model version",
                                  ["model", "version"], registry=self.registry)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
