"""mx serve under load: dynamic batching against none, latency at half load, overhead.

Targets (issue 7), 32 concurrent clients on a small CNN: throughput with dynamic batching
>= 2x without; p50 and p99 at half the maximum throughput (reported); per-request server
overhead against a direct onnxruntime call <= 1 ms p50 on a tiny model. The server runs
in its own process; the clients run here (asyncio streams), on loopback.

    .venv/bin/python bench/serve.py [--seconds 5] [--clients 32] [--head dense|pooled]
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
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support.examples

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


def small_cnn(path: Path, head: str = "dense") -> None:
    """A small CNN on 3x32x32 images, one of two shapes:

    dense: VGG-style, two 3x3 convolutions (32, 64 channels, the second strided) and a
      dense head (16384 -> 512 -> 10, 8.4 M weights), where most CNNs of this era keep
      most of their parameters. One image at a time reads every dense weight for one
      row; a batch reads them once: the case dynamic batching is for.
    pooled: two convolutions (64, 128 channels), global average pooling and a 128 -> 10
      layer. Compute-bound convolutions only: onnxruntime on a CPU runs a batch of 32
      barely faster per image than one image, so batching has nothing to save.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if head == "dense":
        w = {"c1": rng.normal(0, 0.1, (32, 3, 3, 3)), "b1": np.zeros(32),
             "c2": rng.normal(0, 0.05, (64, 32, 3, 3)), "b2": np.zeros(64),
             "fc": rng.normal(0, 0.01, (16384, 512)), "fb": np.zeros(512),
             "out": rng.normal(0, 0.05, (512, 10)), "ob": np.zeros(10)}
        tail = [helper.make_node("Flatten", ["r2"], ["f"]),
                helper.make_node("Gemm", ["f", "fc", "fb"], ["h3"]),
                helper.make_node("Relu", ["h3"], ["r3"]),
                helper.make_node("Gemm", ["r3", "out", "ob"], ["logits"])]
    else:
        w = {"c1": rng.normal(0, 0.1, (64, 3, 3, 3)), "b1": np.zeros(64),
             "c2": rng.normal(0, 0.1, (128, 64, 3, 3)), "b2": np.zeros(128),
             "fc": rng.normal(0, 0.1, (128, 10)), "fb": np.zeros(10)}
        tail = [helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
                helper.make_node("Flatten", ["p"], ["f"]),
                helper.make_node("Gemm", ["f", "fc", "fb"], ["logits"])]
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in w.items()]
    nodes = [
        helper.make_node("Conv", ["input", "c1", "b1"], ["h1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Conv", ["r1", "c2", "b2"], ["h2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["h2"], ["r2"]),
        *tail,
    ]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                     ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9  # what onnxruntime of the last two years loads
    onnx.save(model, path)


def model_dir(root: Path, name: str, head: str = "dense") -> Path:
    d = root / name
    d.mkdir()
    (d / "mx.yaml").write_text(MANIFEST.format(name=name))
    if name == "cnn":
        small_cnn(d / "model.onnx", head)
    else:
        from tests.support.examples import linear_classifier

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


def body(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """An infer request with the input as raw bytes (Triton's binary tensor extension), as
    tritonclient sends it by default; the answer (10 floats) comes back as JSON."""
    import json

    header = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape),
                                     "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}]}).encode()
    return header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header))}


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
                      seconds: float) -> float:
    """Requests per second with `clients` connections each sending back to back."""
    done = 0
    end = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal done
        async with Connection(url, *request) as conn:
            while time.perf_counter() < end:
                await conn.send()
                done += 1
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


def per_row_ms(sess: object, batch: int) -> float:
    """onnxruntime alone: median ms per row at this batch size."""
    x = np.random.default_rng(2).random((batch, 3, 32, 32), dtype=np.float32)
    times = []
    for i in range(30):
        t = time.perf_counter()
        sess.run(None, {"input": x})  # type: ignore[attr-defined]
        if i >= 5:
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000 / batch


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--head", choices=["dense", "pooled"], default="dense",
                    help="the CNN's shape (see small_cnn)")
    args = ap.parse_args()
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="mx-bench-serve-") as tmp:
        root = Path(tmp)
        cnn, tiny = model_dir(root, "cnn", args.head), model_dir(root, "tiny")
        x = np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)
        payload = body(x)
        sess = ort.InferenceSession(str(cnn / "model.onnx"), providers=["CPUExecutionProvider"])
        one, many = per_row_ms(sess, 1), per_row_ms(sess, 32)
        print(f"small CNN, {args.head} head (3x32x32 -> 10), {args.clients} clients, "
              f"{args.seconds:g} s each, {args.runs} runs, {os.cpu_count()} cores")
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
        print(f"  (onnxruntime alone: {one:.3f} ms a row one at a time, {many:.3f} ms a row in "
              f"batches of 32: batching's own ceiling here is {one / many:.2f}x)")

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
        tb, headers = body(xt)
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
