"""`mx serve --grpc-port`: KServe V2 over gRPC, with tritonclient's gRPC client.

tritonclient.grpc registers the protobuf package `inference`, as mx.serve.grpcproto does, so
mx's generated modules are only ever imported in other processes here.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.support.servers import Host
from tests.support.serving import Served, mx_serve

ROW = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)


def _grpc_url(s: Served, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"serving gRPC \(KServe V2\) on ([\d.]+:\d+)", s.log_text())
        if m:
            return m.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no gRPC port announced:\n{s.log_text()}")


@pytest.fixture
def server(host: Host, tmp_path: Path):  # type: ignore[no-untyped-def]
    with mx_serve("acme/iris@^1.0", "acme/resnet@^0.1", "acme/nope@1", "--registry", host.url,
                  "--grpc-port", "0", "--max-queue-delay-ms", "20", "--max-body-mb", "0.01",
                  log=tmp_path / "serve.log") as s:
        yield s, _grpc_url(s)


def _direct(name: str, version: str, x: np.ndarray, host: Host) -> np.ndarray:
    import mx

    path = mx.install(f"{name}@{version}", registry=host.url).artifact("onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]  # type: ignore[no-any-return]


def _rest(s: Served, name: str, x: np.ndarray) -> np.ndarray:
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}]}
    r = httpx.post(f"{s.url}/v2/models/{name}/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def test_proto_is_the_wire_format_tritonclient_speaks() -> None:
    """Every message and field of mx's proto has the number, type and label that
    tritonclient's compiled grpc_service.proto gives it."""

    def fields(pool_module: str) -> str:
        code = f"""
import json, sys
from {pool_module} import DESCRIPTOR as d
def walk(m, out):
    out[m.full_name] = sorted([f.name, f.number, f.type, f.is_repeated,
                               f.message_type.full_name if f.message_type else None,
                               f.containing_oneof.name if f.containing_oneof else None]
                              for f in m.fields)
    for n in m.nested_types:
        walk(n, out)
out = {{}}
for m in d.message_types_by_name.values():
    walk(m, out)
s = d.services_by_name["GRPCInferenceService"]
out["rpcs"] = {{r.name: [r.input_type.full_name, r.output_type.full_name,
                         r.client_streaming, r.server_streaming] for r in s.methods}}
json.dump(out, sys.stdout)
"""
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout

    ours = json.loads(fields("mx.serve.grpcproto.grpc_predict_v2_pb2"))
    triton = json.loads(fields("tritonclient.grpc.service_pb2"))
    assert sorted(ours["rpcs"]) == ["ModelInfer", "ModelMetadata", "ModelReady",
                                    "ServerLive", "ServerMetadata", "ServerReady"]
    for name, rpc in ours.pop("rpcs").items():
        assert triton["rpcs"][name] == rpc, name
    assert len(ours) == 23  # 18 messages, 5 map entries
    for message, ours_fields in ours.items():
        assert ours_fields == triton[message], message


def test_live_ready_and_metadata_match_rest(server: tuple[Served, str]) -> None:
    import tritonclient.grpc as tg

    s, url = server
    client = tg.InferenceServerClient(url=url)
    assert client.is_server_live()
    assert not client.is_server_ready()  # acme/nope did not load
    assert client.is_model_ready("acme/iris")
    assert client.is_model_ready("acme/iris", "1.1.0")
    assert not client.is_model_ready("acme/nope")
    meta = client.get_server_metadata()
    assert meta.name == "mx" and "binary_tensor_data" in meta.extensions
    for name in ("acme/iris", "acme/resnet"):
        for version in ("", "1.1.0" if name == "acme/iris" else "0.1.0"):
            got = client.get_model_metadata(name, version)
            path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "")
            rest = httpx.get(s.url + path).json()
            assert {"name": got.name, "versions": list(got.versions),
                    "platform": got.platform,
                    "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
                               for t in got.inputs],
                    "outputs": [{"name": t.name, "datatype": t.datatype,
                                 "shape": list(t.shape)} for t in got.outputs]} == rest
    with pytest.raises(tg.InferenceServerException) as info:
        client.get_model_metadata("acme/unknown")
    assert info.value.status() == "StatusCode.NOT_FOUND"
    assert "unknown model 'acme/unknown'" in info.value.message()
    with pytest.raises(tg.InferenceServerException) as info:
        client.is_model_ready("acme/iris", "9.9.9")
    assert info.value.status() == "StatusCode.NOT_FOUND"


def test_infer_equals_rest_and_onnxruntime(server: tuple[Served, str], host: Host) -> None:
    import tritonclient.grpc as tg
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    s, url = server
    client = tg.InferenceServerClient(url=url)
    x = np.random.default_rng(0).random((3, 4), dtype=np.float32)
    direct = _direct("acme/iris", "1.1.0", x, host)
    inp = tg.InferInput("input", [3, 4], "FP32")
    inp.set_data_from_numpy(x)  # raw_input_contents, tritonclient's only way
    result = client.infer("acme/iris", [inp], request_id="r-7")
    assert np.array_equal(result.as_numpy("probabilities"), direct)
    assert np.array_equal(result.as_numpy("probabilities"), _rest(s, "acme/iris", x))
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == \
        ("acme/iris", "1.1.0", "r-7")
    assert len(response.raw_output_contents) == 1
    versioned = client.infer("acme/iris", [inp], model_version="1.1.0",
                             outputs=[tg.InferRequestedOutput("probabilities")])
    assert np.array_equal(versioned.as_numpy("probabilities"), direct)
    with pytest.raises(tg.InferenceServerException) as info:
        client.infer("acme/iris", [inp], outputs=[tg.InferRequestedOutput("nope")])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "unknown output 'nope'; the model gives 'probabilities'" in info.value.message()

    # typed contents in, typed contents out (with tritonclient's own protobufs)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(url))
    request = service_pb2.ModelInferRequest(model_name="acme/resnet")
    y = np.random.default_rng(1).random((2, 8), dtype=np.float32)
    tensor = request.inputs.add(name="input", datatype="FP32", shape=[2, 8])
    tensor.contents.fp32_contents.extend(y.ravel().tolist())
    answer = stub.ModelInfer(request, timeout=30)
    assert not answer.raw_output_contents
    out = answer.outputs[0]
    got = np.array(out.contents.fp32_contents, dtype=np.float32).reshape(list(out.shape))
    assert np.array_equal(got, _direct("acme/resnet", "0.1.0", y, host))
    assert np.array_equal(got, _rest(s, "acme/resnet", y))


def test_errors_are_grpc_status_codes(server: tuple[Served, str]) -> None:
    import tritonclient.grpc as tg
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    s, url = server
    client = tg.InferenceServerClient(url=url)

    def fails(name: str, inp: tg.InferInput) -> tuple[str, str]:
        with pytest.raises(tg.InferenceServerException) as info:
            client.infer(name, [inp])
        return info.value.status(), info.value.message()

    wrong = tg.InferInput("input", [1, 4], "INT64")
    wrong.set_data_from_numpy(ROW.astype(np.int64))
    assert fails("acme/iris", wrong) == (
        "StatusCode.INVALID_ARGUMENT", "input 'input': datatype INT64, the model takes FP32")
    wide = tg.InferInput("input", [1, 5], "FP32")
    wide.set_data_from_numpy(np.ones((1, 5), np.float32))
    assert fails("acme/iris", wide) == (
        "StatusCode.INVALID_ARGUMENT",
        "input 'input': dim 1 is 5, the model takes 4 (shape [-1, 4])")
    ok = tg.InferInput("input", [1, 4], "FP32")
    ok.set_data_from_numpy(ROW)
    status, message = fails("acme/unknown", ok)
    assert status == "StatusCode.NOT_FOUND" and "unknown model 'acme/unknown'" in message
    status, message = fails("acme/nope", ok)
    assert status == "StatusCode.UNAVAILABLE" and "'acme/nope' is not ready" in message
    big = tg.InferInput("input", [4000, 4], "FP32")  # 64000 bytes, over --max-body-mb 0.01
    big.set_data_from_numpy(np.ones((4000, 4), np.float32))
    status, message = fails("acme/iris", big)
    assert status == "StatusCode.RESOURCE_EXHAUSTED"

    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(url))
    request = service_pb2.ModelInferRequest(model_name="acme/iris")
    tensor = request.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    tensor.contents.int64_contents.extend([1, 2, 3, 4])
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == ("input 'input': datatype FP32 takes contents.fp32_contents, "
                                   "the request has contents.int64_contents")
    tensor.ClearField("contents")
    tensor.contents.fp32_contents.extend([1, 2, 3])
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(request, timeout=30)
    assert err.value.details() == "input 'input': shape [1, 4] holds 4 values, data has 3"

    metrics = httpx.get(f"{s.url}/metrics").text  # gRPC requests count like REST ones
    assert 'mx_requests_total{model="acme/iris",status="400",version="1.1.0"} 4.0' in metrics
    assert 'mx_requests_total{model="(unknown)",status="404",version=""} 1.0' in metrics


def _metric(s: Served, key: str) -> float:
    for line in httpx.get(f"{s.url}/metrics").text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return 0.0


def test_grpc_and_rest_share_batches_and_drain(host: Host, tmp_path: Path) -> None:
    import tritonclient.grpc as tg

    # a batch runs once it has 2 rows or after 2 s: a REST and a gRPC row sent together share
    with mx_serve("acme/iris@1.1.0", "--registry", host.url, "--grpc-port", "0",
                  "--max-batch-size", "2", "--max-queue-delay-ms", "2000",
                  log=tmp_path / "serve.log") as s:
        url = _grpc_url(s)
        rows = np.random.default_rng(2).random((16, 4), dtype=np.float32)
        expected = _direct("acme/iris", "1.1.0", rows, host)

        def by_grpc(i: int) -> np.ndarray:
            inp = tg.InferInput("input", [1, 4], "FP32")
            inp.set_data_from_numpy(rows[i:i + 1])
            out = tg.InferenceServerClient(url=url).infer("acme/iris", [inp])
            return out.as_numpy("probabilities")[0]  # type: ignore[no-any-return]

        def one(i: int) -> np.ndarray:
            return by_grpc(i) if i % 2 else _rest(s, "acme/iris", rows[i:i + 1])[0]

        start = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            first = list(pool.map(one, range(2)))
        assert time.monotonic() - start < 1.9  # did not wait out the 2 s
        key = '{model="acme/iris",version="1.1.0"}'
        assert (_metric(s, "mx_batch_rows_count" + key),
                _metric(s, "mx_batch_rows_sum" + key)) == (1, 2)
        with ThreadPoolExecutor(16) as pool:
            got = np.array(first + list(pool.map(one, range(2, 16))))
        assert np.allclose(got, expected, atol=1e-6)
        assert _metric(s, 'mx_requests_total{model="acme/iris",status="200",'
                          'version="1.1.0"}') == 16

        # SIGTERM while a gRPC request waits in the batcher: it is answered, then the exit
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(by_grpc, 0)
            time.sleep(0.5)
            s.proc.send_signal(signal.SIGTERM)
            assert np.allclose(pending.result(), expected[0], atol=1e-6)
        assert s.proc.wait(20) == -signal.SIGTERM


def test_grpc_tensor_codec() -> None:
    """Typed contents for every datatype, raw BYTES, and the refusals (in a fresh process:
    mx's protobufs and tritonclient's cannot share one)."""
    code = r'''
import numpy as np
from mx.errors import BadInput
from mx.serve.grpc_service import decode_inputs, encode_response
from mx.serve.grpcproto import grpc_predict_v2_pb2 as pb
from mx.tensorspec import Value

def refused(request, specs):
    try:
        decode_inputs(request, specs)
    except BadInput as exc:
        return exc.message
    raise AssertionError("accepted")

class Model:
    name, version = "m", "1"
    outputs = [Value("t", "string", ("b",)), Value("h", "float16", ("b",)),
               Value("k", "int8", ("b",))]

specs = [Value("t", "string", ("b",)), Value("k", "int8", ("b",)),
         Value("f", "float64", ("b",)), Value("u", "uint16", ("b",)),
         Value("z", "bool", ("b",))]
r = pb.ModelInferRequest(model_name="m")
for name, dt, field, vals in [("t", "BYTES", "bytes_contents", [b"hi", "h\u00e9".encode()]),
                              ("k", "INT8", "int_contents", [-128, 127]),
                              ("f", "FP64", "fp64_contents", [float("nan"), 1.5]),
                              ("u", "UINT16", "uint_contents", [0, 65535]),
                              ("z", "BOOL", "bool_contents", [True, False])]:
    getattr(r.inputs.add(name=name, datatype=dt, shape=[2]).contents, field).extend(vals)
feeds = decode_inputs(r, specs)
assert feeds["t"].tolist() == ["hi", "h\u00e9"] and feeds["k"].dtype == np.int8
assert np.isnan(feeds["f"][0]) and feeds["u"].tolist() == [0, 65535]  # NaN is fine in protobuf
assert feeds["z"].tolist() == [True, False]
r.inputs[1].contents.int_contents[0] = 300
assert refused(r, specs) == "input 'k': data has a number out of INT8's range"
r.inputs[1].contents.int_contents[0] = -129
assert refused(r, specs) == "input 'k': data has a number out of INT8's range"
r.inputs[1].contents.int_contents[0] = -128
r.inputs[3].contents.uint_contents[1] = 65536
assert refused(r, specs) == "input 'u': data has a number out of UINT16's range"

raw = pb.ModelInferRequest(model_name="m")
raw.inputs.add(name="t", datatype="BYTES", shape=[2])
raw.raw_input_contents.append(b"\x02\x00\x00\x00hi\x01\x00\x00\x00x")
assert decode_inputs(raw, specs[:1])["t"].tolist() == ["hi", "x"]
raw.inputs.add(name="k", datatype="INT8", shape=[2])
assert refused(raw, specs[:2]) == ("raw_input_contents has 1 entries for 2 inputs; send every "
                                   "input raw, or none")
half = pb.ModelInferRequest(model_name="m")
half.inputs.add(name="h", datatype="FP16", shape=[1]).contents.fp32_contents.append(1.0)
assert refused(half, [Value("h", "float16", ("b",))]) == (
    "input 'h': FP16 has no typed contents field; send it in raw_input_contents")
twice = pb.ModelInferRequest(model_name="m")
for _ in range(2):
    twice.inputs.add(name="t", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"a")
assert refused(twice, specs[:1]) == "input 't' is given twice"

arrays = {"t": np.array(["a", "b\u00e9"], dtype=object), "h": np.array([1.5], np.float16),
          "k": np.array([-1, 2], np.int8)}
typed = pb.ModelInferRequest(model_name="m")
typed.outputs.add(name="t")
typed.outputs.add(name="k")
out = encode_response(typed, Model, arrays)
assert list(out.outputs[0].contents.bytes_contents) == [b"a", "b\u00e9".encode()]
assert list(out.outputs[1].contents.int_contents) == [-1, 2] and not out.raw_output_contents
out = encode_response(pb.ModelInferRequest(model_name="m"), Model, arrays)  # FP16: all raw
assert [o.name for o in out.outputs] == ["t", "h", "k"]
assert out.raw_output_contents[1] == np.array([1.5], "<f2").tobytes()
assert out.raw_output_contents[2] == b"\xff\x02"
print("ok")
'''
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


def test_grpc_port_in_use_is_a_clear_error(host: Host, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "mx", "serve", "acme/iris@1.1.0",
                               "--registry", host.url, "--port", "0", "--grpc-port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert f"--grpc-port: cannot listen on 127.0.0.1:{port}" in done.stderr


def test_grpc_calls_get_the_same_safeguards(host: Host, tmp_path: Path) -> None:
    """--rate-limit and --timeout hold for gRPC as for REST: RESOURCE_EXHAUSTED over the
    client's rate, DEADLINE_EXCEEDED for a call that cannot start in time, both counted."""
    import tritonclient.grpc as tg

    with mx_serve("acme/iris@1.1.0", "--registry", host.url, "--grpc-port", "0",
                  "--rate-limit", "0.01/2", "--max-batch-size", "8",
                  "--max-queue-delay-ms", "3000", "--timeout", "0.5",
                  log=tmp_path / "serve.log") as s:
        client = tg.InferenceServerClient(url=_grpc_url(s))
        inp = tg.InferInput("input", [1, 4], "FP32")
        inp.set_data_from_numpy(ROW)
        # each call waits in a batch that holds rows for 3 s: past its 0.5 s, unrun; the
        # bucket holds two calls, the third is over the rate
        for _ in range(2):
            with pytest.raises(tg.InferenceServerException) as late:
                client.infer("acme/iris", [inp])
            assert late.value.status() == "StatusCode.DEADLINE_EXCEEDED"
            assert "not run" in late.value.message()
        with pytest.raises(tg.InferenceServerException) as over:
            client.infer("acme/iris", [inp])
        assert over.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        assert "rate limit" in over.value.message()
        metrics = httpx.get(f"{s.url}/metrics").text
        assert 'mx_shed_total{model="acme/iris",reason="rate_limited"} 1.0' in metrics
        assert 'mx_shed_total{model="acme/iris",reason="deadline_exceeded"} 2.0' in metrics
