"""`mx serve` shedding load: rate limits (429), a full queue (503) and deadlines (504),
against a real server process with httpx and tritonclient."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.servers import Host
from tests.support.serving import Served, mx_serve

INFER = "/v2/models/acme/iris/infer"
RATE, BURST = 0.5, 2


def _rows(n: int) -> dict[str, object]:
    return {"inputs": [{"name": "input", "shape": [n, 4], "datatype": "FP32",
                        "data": [0.5] * (4 * n)}]}


@pytest.fixture
def server(host: Host, tmp_path: Path):  # type: ignore[no-untyped-def]
    # Four rows fill a batch and run at once; a single row waits up to 8 s for company,
    # which keeps it in the queue long enough to see the queue fill and deadlines pass.
    with mx_serve("acme/iris@^1.0", "--registry", host.url, "--max-batch-size", "4",
                  "--max-queue-delay-ms", "8000", "--max-queue", "3",
                  "--rate-limit", f"{RATE}/{BURST}", "--rate-limit-key-header", "X-Client-Id",
                  log=tmp_path / "serve.log") as s:
        yield s


def _metric(s: Served, key: str) -> float:
    for line in httpx.get(f"{s.url}/metrics").text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return 0.0


def _post(s: Served, body: dict[str, object], **headers: str) -> httpx.Response:
    return httpx.post(s.url + INFER, json=body, headers=headers, timeout=60)


def test_rate_limit_answers_429_with_retry_after(server: Served) -> None:
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _post(server, _rows(4), **{"X-Client-Id": "alice"}),
                                range(20)))
    elapsed = time.monotonic() - start
    ok = [r for r in answers if r.status_code == 200]
    limited = [r for r in answers if r.status_code == 429]
    assert len(ok) + len(limited) == 20, [r.text for r in answers]
    # a bucket of BURST, refilled at RATE a second while the requests ran
    assert 1 <= len(ok) <= BURST + RATE * elapsed + 1
    assert limited
    for r in limited:
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"].startswith("rate limit: 0.5 requests a second per client")
    # other clients have buckets of their own: a named one, a bearer token, the address
    assert _post(server, _rows(4), **{"X-Client-Id": "bob"}).status_code == 200
    assert _post(server, _rows(4), Authorization="Bearer token-1").status_code == 200
    assert _post(server, _rows(4)).status_code == 200
    assert _metric(server, 'mx_shed_total{model="acme/iris",reason="rate_limited"}') == len(
        limited)
    assert _metric(server, 'mx_requests_total{model="acme/iris",status="429",version=""}'
                   ) == len(limited)
    # health and metrics are never limited
    assert all(httpx.get(f"{server.url}/v2/health/live").status_code == 200 for _ in range(5))


def test_full_queue_answers_503_at_once(server: Served) -> None:
    depth = 'mx_queue_depth{model="acme/iris",version="1.1.0"}'
    with ThreadPoolExecutor(3) as pool:
        waiting = [pool.submit(_post, server, _rows(1), **{"X-Client-Id": f"q{i}"})
                   for i in range(3)]
        deadline = time.monotonic() + 30
        while _metric(server, depth) < 3:
            assert time.monotonic() < deadline, "three single rows never queued up"
            assert not any(f.done() for f in waiting), [f.result().text for f in waiting]
            time.sleep(0.05)
        r = _post(server, _rows(1), **{"X-Client-Id": "q3"})
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "1"
        assert "3 requests already wait for acme/iris 1.1.0" in r.json()["error"]
        assert not any(f.done() for f in waiting)  # refused without waiting for them
        assert [f.result().status_code for f in waiting] == [200, 200, 200]
    assert _metric(server, 'mx_shed_total{model="acme/iris",reason="queue_full"}') == 1
    assert _metric(server, depth) == 0


def test_expired_deadlines_answer_504_unrun(server: Served) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    r = _post(server, _rows(1), **{"X-Client-Id": "d1", "X-Request-Timeout": "0.2"})
    assert r.status_code == 504, r.text
    assert r.json()["error"].startswith("request deadline passed while it waited")
    # the V2 request parameter `timeout`, in microseconds, as tritonclient sends it
    client = triton.InferenceServerClient(url=server.hostport)
    inp = triton.InferInput("input", [1, 4], "FP32")
    inp.set_data_from_numpy(np.ones((1, 4), np.float32), binary_data=True)
    with pytest.raises(InferenceServerException) as info:
        client.infer("acme/iris", [inp], timeout=200_000, headers={"X-Client-Id": "d2"})
    assert info.value.status() == "504" and "deadline passed" in info.value.message()
    # a full batch runs at once; the dropped single rows were never run
    assert _post(server, _rows(4), **{"X-Client-Id": "d3"}).status_code == 200
    assert _metric(server, 'mx_shed_total{model="acme/iris",reason="deadline_exceeded"}') == 2
    assert _metric(server, 'mx_batch_rows_sum{model="acme/iris",version="1.1.0"}') == 4
    r = _post(server, _rows(1), **{"X-Request-Timeout": "-3"})
    assert r.status_code == 400 and "X-Request-Timeout: '-3'" in r.json()["error"]


def test_guard_options_are_checked(mx) -> None:  # type: ignore[no-untyped-def]
    out = mx("serve", "--help").out
    for option in ("--rate-limit", "--rate-limit-key-header", "--max-queue", "--timeout"):
        assert option in out
    for args, hint in [(["--rate-limit", "fast"], "--rate-limit"),
                       (["--rate-limit", "0/3"], "--rate-limit"),
                       (["--rate-limit", "5/0"], "--rate-limit"),
                       (["--rate-limit-key-header", "X Client"], "--rate-limit-key-header"),
                       (["--max-queue", "0"], "--max-queue"),
                       (["--timeout", "0"], "--timeout")]:
        r = mx("serve", "acme/iris", *args)
        assert r.code == 2 and hint in r.err, (args, r.err)
