"""mx serve under load: dynamic batching against none, latency at half load, overhead;
with --mlserver, mx serve against MLServer on the same JSON requests.

Targets, 32 concurrent clients on a small CNN (3x32x32 -> 10):
- issue 7: throughput with dynamic batching >= 2x without; p50 and p99 at half the
  maximum throughput (reported);
- issue 17 (--mlserver): mx serve's throughput >= 1.3x MLServer 1.7.1's on KServe V2
  JSON requests (the tensor as a `data` list), both batching up to 32 requests or 2 ms;
  p50 at one client for each (reported);
- both: per-request server overhead against a direct onnxruntime call <= 0.5 ms p50 on a
  tiny model, one client, JSON and binary bodies.
The servers run in their own processes; the clients run here, on loopback: one load
generator for both servers (asyncio streams, pre-encoded requests: tens of microseconds a
request), so on a small machine it takes the same share of the cores from each. Wall-clock
rates move with whatever else runs on the machine; the CPU seconds each server process
(and its children) spent per request, read from /proc, move much less.

With --mlserver the script makes `.venv-mlserver` at the repository root on first use
(python -m venv, pip install mlserver==1.7.1: about a minute; bench/mlserver_side.py);
when that fails it says why in one line and measures mx alone. Sides alternate
(mx, MLServer, mx, ...) over --runs rounds; figures are medians. A few minutes in all:

    .venv/bin/python bench/serve.py [--mlserver] [--seconds 5] [--clients 32] [--runs 3]
                                    [--head dense|pooled]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support.examples

import numpy as np

from loadgen import Connection, closed_loop, cpu_seconds, open_loop, pct

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
            # its own process group: cpu_seconds counts it and any workers it starts
            self.proc = subprocess.Popen([sys.executable, "-m", "mx", "serve", str(d), "--port",
                                          "0", *args], stdout=sink, stderr=sink,
                                         start_new_session=True)
        while not (m := re.search(r"on (http://[\d.]+:\d+)/v2", self.log.read_text())):
            if self.proc.poll() is not None:
                raise SystemExit(self.log.read_text())
            time.sleep(0.05)
        self.url = m.group(1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def json_body(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """An infer request with the input as a JSON `data` list, as a Python client writes it
    from an array (json.dumps of .tolist(): float32 values at float64's 17 digits)."""
    import json

    doc = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                       "data": x.ravel().tolist()}]}
    return json.dumps(doc).encode(), {"Content-Type": "application/json"}


def body(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """An infer request with the input as raw bytes (Triton's binary tensor extension), as
    tritonclient sends it by default; the answer (10 floats) comes back as JSON."""
    import json

    header = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape),
                                     "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}]}).encode()
    return header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header))}


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


def batching(args: argparse.Namespace, cnn: Path, sess: object) -> None:
    """Issue 7: dynamic batching against none (binary requests), then latency at half load."""
    x = np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)
    payload = body(x)
    one, many = per_row_ms(sess, 1), per_row_ms(sess, 32)
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


def raw_round_trip(sock: socket.socket, request: bytes) -> None:
    """One request on a kept-alive socket, its answer read whole: a client costing a few
    microseconds, so what is left over onnxruntime's time is the server's."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    assert head.startswith(b"HTTP/1.1 200") and m, head
    need = int(m.group(1)) - len(rest)
    while need > 0:
        need -= len(sock.recv(need))


def overhead(tiny: Path) -> None:
    """What the server adds to onnxruntime's own time, p50, one client, on a tiny model.
    Measured twice: with http.client (whose own Python work, 0.1-0.2 ms, counts against the
    server) and with a raw socket and a pre-encoded request (what the target is judged on:
    the server's own overhead)."""
    import http.client

    import onnxruntime as ort

    xt = np.ones((1, 4), np.float32)
    sess = ort.InferenceSession(str(tiny / "model.onnx"), providers=["CPUExecutionProvider"])
    direct = []
    for _ in range(2000):
        t = time.perf_counter()
        sess.run(None, {"input": xt})
        direct.append(time.perf_counter() - t)
    s = Server(tiny, "--max-batch-size", "1")
    url = f"{s.url}/v2/models/bench/tiny/infer"
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(f"  tiny model, one client: direct onnxruntime p50 {pct(direct, 50):.3f} ms")
    for label, (payload, headers) in (("JSON", json_body(xt)), ("binary", body(xt))):
        request = Connection(url, payload, headers).request
        lib, raw = [], []
        for i in range(4400):  # the two clients alternate, request by request
            t = time.perf_counter()
            if i % 2:
                raw_round_trip(sock, request)
            else:
                conn.request("POST", parts.path, payload, headers)
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200
            if i >= 400:
                (raw if i % 2 else lib).append(time.perf_counter() - t)
        over, lib_over = pct(raw, 50) - pct(direct, 50), pct(lib, 50) - pct(direct, 50)
        print(f"    {label:6s} body, raw socket client: p50 {pct(raw, 50):.3f} ms (p99 "
              f"{pct(raw, 99):.3f}); server overhead p50 {over:.3f} ms  (target <= 0.5 ms) "
              f"{'OK' if over <= 0.5 else 'MISSED'}")
        print(f"    {label:6s} body, http.client:        p50 {pct(lib, 50):.3f} ms (p99 "
              f"{pct(lib, 99):.3f}); overhead with the client's own work {lib_over:.3f} ms")
    conn.close()
    sock.close()
    s.stop()


def against_mlserver(args: argparse.Namespace, root: Path, cnn: Path, sess: object) -> None:
    """Issue 17: mx serve and MLServer, both batching 32 requests / 2 ms, on one JSON body."""
    import mlserver_side

    venv = ROOT / ".venv-mlserver"
    why = mlserver_side.ensure_venv(venv, root / "mlserver-install.log")
    if why is not None:
        print(f"MLServer: could not be installed ({why}), not measured")
        return
    x = np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)
    payload = json_body(x)
    mx = Server(cnn, "--max-batch-size", "32", "--max-queue-delay-ms", "2")
    try:
        ml = mlserver_side.MLServer(venv, mlserver_side.model_folder(root, cnn / "model.onnx"))
    except RuntimeError as exc:
        mx.stop()
        print(f"MLServer: could not be started, not measured ({str(exc).splitlines()[0]})")
        return
    sides = {"mx serve": (mx.url + "/v2/models/bench/cnn/infer", mx.proc.pid),
             "MLServer": (ml.url + ml.infer_path, ml.proc.pid)}
    rates: dict[str, list[float]] = {k: [] for k in sides}
    cpu: dict[str, list[float]] = {k: [] for k in sides}
    p50: dict[str, list[float]] = {k: [] for k in sides}
    try:
        for url, _ in sides.values():
            asyncio.run(closed_loop(url, payload, args.clients, 1.0))  # warm-up
        for _ in range(args.runs):
            for label, (url, group) in sides.items():  # A B A B: drift hits both alike
                before, t = cpu_seconds(group), time.perf_counter()
                rate = asyncio.run(closed_loop(url, payload, args.clients, args.seconds))
                spent = cpu_seconds(group) - before
                rates[label].append(rate)
                cpu[label].append(spent * 1000 / (rate * (time.perf_counter() - t)))
                lat: list[float] = []
                asyncio.run(closed_loop(url, payload, 1, min(args.seconds, 2.0), lat))
                p50[label].append(pct(lat, 50))
    finally:
        mx.stop()
        ml.stop()
    direct = per_row_ms(sess, 1)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"  JSON body ({len(payload[0]):,} bytes), {args.clients} clients; each figure the "
          f"median of {args.runs}; server CPU per request from /proc")
    for label in sides:
        print(f"  {label:9s} {med[label]:8.1f} req/s  {[round(v, 1) for v in rates[label]]}  "
              f"CPU {statistics.median(cpu[label]):.2f} ms/req  one client: p50 "
              f"{statistics.median(p50[label]):.2f} ms")
    ratio = med["mx serve"] / med["MLServer"]
    print(f"  ratio mx/MLServer {ratio:.2f}x  (target >= 1.3x) "
          f"{'OK' if ratio >= 1.3 else 'MISSED'}")
    print(f"  (onnxruntime alone: {direct:.3f} ms for one image; both servers wait up to 2 ms "
          "for company at one client)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--head", choices=["dense", "pooled"], default="dense",
                    help="the CNN's shape (see small_cnn)")
    ap.add_argument("--mlserver", action="store_true",
                    help="mx serve against MLServer on JSON (issue 17) instead of batching "
                         "against none (issue 7)")
    args = ap.parse_args()
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="mx-bench-serve-") as tmp:
        root = Path(tmp)
        cnn, tiny = model_dir(root, "cnn", args.head), model_dir(root, "tiny")
        sess = ort.InferenceSession(str(cnn / "model.onnx"), providers=["CPUExecutionProvider"])
        print(f"small CNN, {args.head} head (3x32x32 -> 10), {args.clients} clients, "
              f"{args.seconds:g} s each, {args.runs} runs, {os.cpu_count()} cores")
        if args.mlserver:
            against_mlserver(args, root, cnn, sess)
        else:
            batching(args, cnn, sess)
        overhead(tiny)


if __name__ == "__main__":
    main()
