"""mx serve under load: dynamic batching against none, latency at half load, overhead.

Targets (issue 7), 32 concurrent clients on a small CNN: throughput with dynamic batching
>= 2x without; p50 and p99 at half the maximum throughput (reported); per-request server
overhead against a direct onnxruntime call <= 1 ms p50 on a tiny model. The server runs
in its own process; the clients run here (asyncio + httpx), on loopback.

    .venv/bin/python bench/serve.py [--seconds 5] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = """mx: 1
name: bench/{name}
version: 1.0.0
summary: {name} for bench/serve.py
license: apache-2.0
task: other
artifacts:
  - {{path: model.onnx, format: onnx, variant: fp32}}
"""


def small_cnn(path: Path) -> None:
    """Two 3x3 convolutions (64, 128 channels), global pooling and a linear layer on
    3x32x32 images: about 20 M multiply-adds a sample."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = {
        "c1": rng.normal(0, 0.1, (64, 3, 3, 3)), "b1": np.zeros(64),
        "c2": rng.normal(0, 0.1, (128, 64, 3, 3)), "b2": np.zeros(128),
        "fc": rng.normal(0, 0.1, (128, 10)), "fb": np.zeros(10),
    }
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in w.items()]
    nodes = [
        helper.make_node("Conv", ["input", "c1", "b1"], ["h1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Conv", ["r1", "c2", "b2"], ["h2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["h2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fb"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                     ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9  # what onnxruntime of the last two years loads
    onnx.save(model, path)


def model_dir(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir()
    (d / "mx.yaml").write_text(MANIFEST.format(name=name))
    if name == "cnn":
        small_cnn(d / "model.onnx")
    else:
        from mx.examples import linear_classifier

        linear_classifier(d / "model.onnx")
    return d


class Server:
    def __init__(self, d: Path, *args: str) -> None:
        self.log = d.parent / f"serve-{os.getpid()}-{time.monotonic_ns()}.log"
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen([sys.executable, "-m", "mx", "serve", str(d), "--port",
                                          "0", *args], stdout=sink, stderr=sink)
        while not (m := re.search(r"on (http://[\d.]+:\d+)/v2", self.log.read_text())):
            if self.proc.poll() is not None:
                raise SystemExit(self.log.read_text())
            time.sleep(0.05)
        self.url = m.group(1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def body(name: str, x: np.ndarray) -> bytes:
    import json

    return json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "data": x.ravel().tolist()}]}).encode()


async def closed_loop(url: str, payload: bytes, clients: int, seconds: float) -> float:
    """Requests per second with `clients` each sending back to back."""
    done = 0
    end = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as c:
        async def one() -> None:
            nonlocal done
            while time.perf_counter() < end:
                r = await c.post(url, content=payload)
                r.raise_for_status()
                done += 1
        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(clients)))
        return done / (time.perf_counter() - start)


async def open_loop(url: str, payload: bytes, rate: float, seconds: float) -> list[float]:
    """Latencies (s) of requests sent at a fixed rate, whatever the answers' speed."""
    lat: list[float] = []
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=256), timeout=60) as c:
        async def one() -> None:
            t = time.perf_counter()
            r = await c.post(url, content=payload)
            r.raise_for_status()
            lat.append(time.perf_counter() - t)
        tasks = []
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return lat


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="mx-bench-serve-") as tmp:
        root = Path(tmp)
        cnn, tiny = model_dir(root, "cnn"), model_dir(root, "tiny")
        x = np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)
        payload = body("cnn", x)
        print(f"small CNN (3x32x32 -> 10), {args.clients} clients, {args.seconds:g} s each, "
              f"{args.runs} runs, {os.cpu_count()} cores")
        results: dict[str, list[float]] = {"batched": [], "unbatched": []}
        for _ in range(args.runs):
            for label, extra in (("unbatched", ["--max-batch-size", "1"]),
                                 ("batched", ["--max-batch-size", "32",
                                              "--max-queue-delay-ms", "2"])):
                s = Server(cnn, *extra)
                url = f"{s.url}/v2/models/bench/cnn/infer"
                asyncio.run(closed_loop(url, payload, args.clients, 1.0))  # warm-up
                results[label].append(asyncio.run(closed_loop(url, payload, args.clients,
                                                              args.seconds)))
                s.stop()
        b, u = statistics.median(results["batched"]), statistics.median(results["unbatched"])
        print(f"  reference: no batching (--max-batch-size 1): {u:8.1f} req/s  "
              f"{[round(v, 1) for v in results['unbatched']]}")
        print(f"  dynamic batching (32 rows, 2 ms):          {b:8.1f} req/s  "
              f"{[round(v, 1) for v in results['batched']]}")
        print(f"  ratio {b / u:.2f}x  (target >= 2x) {'OK' if b / u >= 2 else 'MISSED'}")

        s = Server(cnn, "--max-batch-size", "32", "--max-queue-delay-ms", "2")
        url = f"{s.url}/v2/models/bench/cnn/infer"
        rate = b / 2
        lat = asyncio.run(open_loop(url, payload, rate, args.seconds))
        s.stop()
        print(f"  at half the maximum ({rate:.0f} req/s, open loop, {len(lat)} requests): "
              f"p50 {pct(lat, 50):.2f} ms, p99 {pct(lat, 99):.2f} ms")

        # overhead on a tiny model: one client, one request at a time
        xt = np.ones((1, 4), np.float32)
        sess = ort.InferenceSession(str(tiny / "model.onnx"), providers=["CPUExecutionProvider"])
        direct = []
        for _ in range(2000):
            t = time.perf_counter()
            sess.run(None, {"input": xt})
            direct.append(time.perf_counter() - t)
        s = Server(tiny, "--max-batch-size", "1")
        url = f"{s.url}/v2/models/bench/tiny/infer"
        served = []
        # http.client on one kept-alive connection: the least a Python client can add
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port)
        tb = body("tiny", xt)
        headers = {"Content-Type": "application/json"}
        for i in range(2200):
            t = time.perf_counter()
            conn.request("POST", parts.path, tb, headers)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            if i >= 200:
                served.append(time.perf_counter() - t)
        conn.close()
        s.stop()
        over = pct(served, 50) - pct(direct, 50)
        print(f"  tiny model, one client: direct onnxruntime p50 {pct(direct, 50):.3f} ms, "
              f"through mx serve p50 {pct(served, 50):.3f} ms (p99 {pct(served, 99):.3f})")
        print(f"  server overhead p50 {over:.3f} ms  (target <= 1 ms) "
              f"{'OK' if over <= 1 else 'MISSED'}")


if __name__ == "__main__":
    main()
