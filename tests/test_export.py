"""`mx export triton|kserve|edge`: files other engines read, checked with their own parsers."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
from google.protobuf import text_format
from ruamel.yaml import YAML
from tritonclient.grpc import model_config_pb2

from tests.support.examples import card_text, linear_classifier, manifest_text
from tests.support.servers import Host


def _config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]  # type: ignore[no-any-return]


def test_triton_repository(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import mx as mxapi

    repo = tmp_path / "models"
    res = mx("export", "triton", "acme/iris@^1.0", "--registry", host.url, "-o", repo,
             "--max-batch-size", "16", "--max-queue-delay-us", "500", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["files"] == ["1/model.onnx", "config.pbtxt"]
    config = _config(repo / "iris" / "config.pbtxt")
    assert (config.name, config.platform, config.max_batch_size) == ("iris", "onnxruntime_onnx",
                                                                      16)
    assert [(i.name, model_config_pb2.DataType.Name(i.data_type), list(i.dims))
            for i in config.input] == [("input", "TYPE_FP32", [4])]
    assert [(o.name, list(o.dims)) for o in config.output] == [("probabilities", [3])]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert config.parameters["mx_version"].string_value == "1.1.0"
    installed = mxapi.install("acme/iris@1.1.0", registry=host.url).artifact("onnx")
    assert _sha(repo / "iris/1/model.onnx") == _sha(installed)
    # a second model joins the same repository, on a GPU, under its own name
    res = mx("export", "triton", "acme/resnet@^0.1", "--registry", host.url, "-o", repo,
             "--gpu", "--instances", "2", "--model-name", "resnet-gpu")
    assert res.code == 0, res.err
    gpu = _config(repo / "resnet-gpu/config.pbtxt")
    assert gpu.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert gpu.instance_group[0].count == 2 and [list(i.dims) for i in gpu.input] == [[8]]
    assert sorted(p.name for p in repo.iterdir()) == ["iris", "resnet-gpu"]
    # an existing export is kept unless --force
    res = mx("export", "triton", "acme/iris@1.0.0", "--registry", host.url, "-o", repo)
    assert res.code == 1 and "models/iris already exists" in res.err and "--force" in res.err
    assert _config(repo / "iris/config.pbtxt").parameters["mx_version"].string_value == "1.1.0"
    res = mx("export", "triton", "acme/iris@1.0.0", "--registry", host.url, "-o", repo,
             "--force")
    assert res.code == 0
    assert _config(repo / "iris/config.pbtxt").parameters["mx_version"].string_value == "1.0.0"
    assert sorted(p.name for p in repo.iterdir()) == ["iris", "resnet-gpu"]  # no leftovers


def test_fixed_batch_model_gets_no_batching(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import onnx

    d = tmp_path / "fixed"
    d.mkdir()
    linear_classifier(d / "model.onnx")
    model = onnx.load(str(d / "model.onnx"))
    for vi in (*model.graph.input, *model.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(d / "model.onnx"))
    (d / "mx.yaml").write_text(manifest_text("acme/fixed", "1.0.0"))
    (d / "README.md").write_text(card_text("acme/fixed"))
    res = mx("export", "triton", d, "-o", tmp_path / "repo")
    assert res.code == 0 and "max_batch_size 0" in res.err
    config = _config(tmp_path / "repo/fixed/config.pbtxt")
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [1, 4]
    assert not config.HasField("dynamic_batching")


def test_kserve_inference_service(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "deploy"
    res = mx("export", "kserve", "acme/iris@^1.0", "--registry", host.url, "-o", out)
    assert res.code == 1 and "needs --storage-uri" in res.err and not out.exists()
    res = mx("export", "kserve", "acme/iris@^1.0", "--registry", host.url, "-o", out,
             "--storage-uri", "s3://models/triton", "--gpu")
    assert res.code == 0, res.err
    doc = YAML(typ="safe").load(out / "inferenceservice.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    assert doc["metadata"]["name"] == "acme-iris"
    assert doc["metadata"]["annotations"]["mx.dev/version"] == "1.1.0"
    model = doc["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "triton"} and model["protocolVersion"] == "v2"
    assert model["runtime"] == "kserve-tritonserver"
    assert model["storageUri"] == "s3://models/triton"
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # storageUri is the repository: the model's folder in it has the parsed config
    config = _config(out / "model-repository/iris/config.pbtxt")
    assert config.name == "iris"
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU


def test_edge_bundle(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from onnxruntime.tools.reduced_build_config_parser import parse_config

    import mx as mxapi

    out = tmp_path / "edge"
    res = mx("export", "edge", "acme/iris@^1.0", "--registry", host.url, "-o", out, "--json")
    assert res.code == 0, res.err
    result = json.loads(res.out)
    assert result["files"] == ["edge.json", "model.int8.ort", "model.ort",
                               "required_operators.config"]
    assert "no int8 variant: quantized here" in result["notes"][0]  # the release has none
    x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    onnx_path = mxapi.install("acme/iris@1.1.0", registry=host.url).artifact("onnx")
    assert np.allclose(_run(out / "model.ort", x), _run(onnx_path, x), atol=1e-6)
    assert np.abs(_run(out / "model.int8.ort", x) - _run(onnx_path, x)).max() < 0.05
    # the config a minimal onnxruntime build reads covers both models' operators
    ops, _ = parse_config(str(out / "required_operators.config"))
    names = set().union(*ops["ai.onnx"].values())
    assert {"Softmax", "MatMulInteger", "DynamicQuantizeLinear"} <= names
    assert "/tmp" not in (out / "required_operators.config").read_text()
    listing = json.loads((out / "edge.json").read_text())
    assert listing["version"] == "1.1.0" and listing["onnxruntime"] == ort.__version__
    for name, entry in listing["files"].items():
        assert entry["sha256"] == _sha(out / name)
    res = mx("export", "edge", "acme/iris@^1.0", "--registry", host.url, "-o", out, "--force",
             "--no-int8")
    assert res.code == 0 and not (out / "model.int8.ort").exists()


def test_edge_uses_the_releases_int8_variant(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "lin"
    d.mkdir()
    linear_classifier(d / "model.onnx", in_features=16, classes=4)
    (d / "mx.yaml").write_text(manifest_text("acme/lin", "1.0.0", in_features=16, classes=4))
    (d / "README.md").write_text(card_text("acme/lin"))
    assert mx("optimize", d, "-t", "int8-dynamic").code == 0
    res = mx("export", "edge", d, "-o", tmp_path / "edge")
    assert res.code == 0, res.err
    assert "quantized here" not in res.err
    x = np.random.default_rng(1).random((3, 16), dtype=np.float32)
    assert np.allclose(_run(tmp_path / "edge/model.int8.ort", x), _run(d / "model.int8.onnx", x),
                       atol=1e-6)


def test_failed_export_leaves_nothing(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "broken"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"not a model")
    (d / "mx.yaml").write_text(manifest_text("acme/broken", "1.0.0"))
    (d / "README.md").write_text(card_text("acme/broken"))
    for target, message in (("triton", "onnxruntime cannot load model.onnx"),
                            ("edge", "ORT format conversion failed")):
        res = mx("export", target, d, "-o", tmp_path / "out")
        assert res.code == 1 and message in res.err and "broken/model.onnx" in res.err, res.err
        assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    res = mx("export", "triton", d, "-o", tmp_path / "out", "--model-name", "a/b")
    assert res.code == 1 and "--model-name 'a/b'" in res.err
    res = mx("export", "tensorrt", d, "-o", tmp_path / "out")
    assert res.code == 2
