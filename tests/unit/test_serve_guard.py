"""Load shedding: the token bucket on an injected clock, client keys, deadlines, and the
server's own --timeout through the core in-process (a real onnxruntime model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mx.errors import BadInput
from mx.infer.model import resolve_model
from mx.serve.app import build_app
from mx.serve.batcher import BatchPolicy
from mx.serve.core import InferenceCore, ServeLimits
from mx.serve.guard import (
    GuardPolicy,
    RateLimiter,
    Shed,
    client_key,
    deadline,
    parse_timeout_header,
    timeout_parameter,
)
from tests.support.examples import model_folder


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_spends_a_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(0.5)  # a token every half second
    assert limiter.take("b") == 0  # another client has its own bucket
    clock.now += 0.5
    assert limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 60  # idle: the bucket fills up to the burst, no further
    assert [limiter.take("a") for _ in range(4)][-1] == pytest.approx(0.5)
    clock.now -= 10  # a clock that steps back refills nothing
    assert limiter.take("a") > 0


def test_refused_requests_spend_no_tokens() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=1, clock=clock)
    assert limiter.take("a") == 0
    for _ in range(50):  # hammering while limited does not push the wait further out
        assert limiter.take("a") == pytest.approx(1.0)
    clock.now += 1
    assert limiter.take("a") == 0


def test_a_flood_of_keys_keeps_a_bounded_number_of_buckets() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=1, max_clients=100, clock=clock)
    assert limiter.take("steady") == 0
    for i in range(10_000):
        limiter.take(f"flood-{i}")
        if i % 50 == 0:  # a client in use stays: least recently used go first
            assert limiter.take("steady") > 0
        assert len(limiter.buckets) <= 100
    assert "flood-0" not in limiter.buckets and "steady" in limiter.buckets


def test_client_key_and_deadline() -> None:
    headers = {"x-client-id": "team-a", "authorization": "Bearer s3cret"}
    assert client_key(headers.get, "10.0.0.1", "x-client-id") == "h:team-a"
    assert client_key(headers.get, "10.0.0.1", None) == "t:s3cret"
    assert client_key({"authorization": "Basic Zm9v"}.get, "10.0.0.1", None) == "ip:10.0.0.1"
    assert client_key({}.get, None, "x-client-id") == "ip:unknown"
    assert len(client_key({"x-client-id": "k" * 10_000}.get, None, "x-client-id")) < 300
    assert deadline(10.0, None, None) is None
    assert deadline(10.0, 5.0, None) == 15.0
    assert deadline(10.0, 5.0, 60.0) == 15.0  # a client cannot ask for more than the server
    assert deadline(10.0, 5.0, 0.5) == 10.5
    assert parse_timeout_header("0.25") == 0.25 and timeout_parameter(250_000) == 0.25
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(BadInput, match="X-Request-Timeout"):
            parse_timeout_header(bad)
    for value in (0, -5, 1.5, "100", True):
        with pytest.raises(BadInput, match=r"parameters\.timeout"):
            timeout_parameter(value)
    assert Shed(429, "x", "rate_limited", 0.2).headers == {"Retry-After": "1"}
    assert Shed(429, "x", "rate_limited", 2.1).headers == {"Retry-After": "3"}
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)


def test_server_timeout_drops_a_queued_request_unrun(tmp_path: Path) -> None:
    d = model_folder(tmp_path)
    # a request waits up to 60 s for company; the server lets it wait 0.2 s
    limits = ServeLimits(policy=BatchPolicy(max_batch=8, max_delay=60.0), workers=1,
                         guard=GuardPolicy(timeout=0.2))
    core = InferenceCore(limits, lambda spec: resolve_model(spec, spin=False))
    try:
        assert core.load(str(d)) is not None
        with TestClient(build_app(core)) as client:
            _drop_and_count(client)
    finally:
        core.close()


def _drop_and_count(client: TestClient) -> None:
    """One row waits alone and is dropped at its deadline; eight rows run at once."""
    one = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                       "data": [1.0, 2.0, 3.0, 4.0]}]}
    r = client.post("/v2/models/acme/iris/infer", json=one)
    assert r.status_code == 504, r.text
    assert "deadline passed while it waited in the queue" in r.json()["error"]
    # a batch of 8 rows fills a batch: it runs at once, and the dropped row never does
    eight = {"inputs": [{"name": "input", "shape": [8, 4], "datatype": "FP32",
                         "data": [0.5] * 32}]}
    assert client.post("/v2/models/acme/iris/infer", json=eight).status_code == 200
    metrics = client.get("/metrics").text
    assert 'mx_shed_total{model="acme/iris",reason="deadline_exceeded"} 1.0' in metrics
    assert 'mx_batch_rows_sum{model="acme/iris",version="1.0.0"} 8.0' in metrics
    assert 'mx_queue_depth{model="acme/iris",version="1.0.0"} 0.0' in metrics
    bad = client.post("/v2/models/acme/iris/infer", json=one,
                      headers={"X-Request-Timeout": "never"})
    assert bad.status_code == 400 and "X-Request-Timeout" in bad.json()["error"]
