"""mx convert with the real converters: PyTorch (dynamo and TorchScript), Keras, JAX,
scikit-learn; parity numbers, manifest updates, and the refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mx.manifest import load_manifest

MODELS = Path(__file__).parent / "models"


def model_repo(tmp_path: Path, mx, *sources: str, task: str = "other") -> Path:  # type: ignore[no-untyped-def]
    d = tmp_path / "model"
    assert mx("init", d, "--name", "acme/pipeline", "--task", task).code == 0
    for src in sources:
        shutil.copy(MODELS / src, d / src)
    return d


def test_pytorch_mlp_to_onnx_writes_artifact_signature_and_source(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = model_repo(tmp_path, mx, "torch_models.py")
    r = mx("convert", d, "torch_models:mlp", "--from", "pytorch", "--json")
    assert r.code == 0, r.err
    m = load_manifest(d).manifest
    art = next(a for a in m.artifacts if a.path == "model.onnx")
    assert art.opset and art.opset >= 18 and art.size == (d / "model.onnx").stat().st_size
    assert m.signature is not None
    assert m.signature.inputs[0].shape == ["batch", 4]  # the symbolic dim is kept
    assert m.signature.outputs[0].shape == ["batch", 3]
    assert m.source is not None and m.source.framework == "pytorch"
    assert m.source.entry == "torch_models:mlp" and "dynamo" in (m.source.converter or "")
    import json

    out = json.loads(r.out)
    assert out["parity"]["ok"] and out["parity"]["input_sets"] == 4
    assert out["parity"]["max_abs_error"] < 1e-5
    # What convert wrote validates (hashes, ONNX checker, I/O against the signature);
    # the scaffolded card's empty sections are the only problems left.
    r = mx("validate", d, "--json")
    problems = json.loads(r.out)["problems"]
    assert problems and all("README.md" in p["path"] for p in problems), problems


def test_cnn_to_onnx_and_torchscript(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = model_repo(tmp_path, mx, "torch_models.py", task="image-classification")
    assert mx("convert", d, "torch_models:cnn", "--from", "pytorch").code == 0
    r = mx("convert", d, "torch_models:cnn", "--from", "pytorch", "--to", "torchscript")
    assert r.code == 0, r.err
    m = load_manifest(d).manifest
    assert [(a.path, a.format) for a in m.artifacts] == [("model.onnx", "onnx"),
                                                         ("model.pt", "torchscript")]
    assert m.signature is not None and m.signature.inputs[0].name == "image"
    assert m.signature.outputs[0].name == "logits"
    # A TorchScript file is itself a source: convert it to ONNX (legacy exporter).
    r = mx("convert", d, "model.pt", "-o", "from_ts.onnx", "--variant", "ts")
    assert r.code == 0, r.err
    assert "legacy" in load_manifest(d).manifest.source.converter  # type: ignore[union-attr]


def test_keras_to_onnx_savedmodel_and_tflite(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = model_repo(tmp_path, mx, "keras_model.py")
    for target in ("onnx", "savedmodel", "tflite"):
        r = mx("convert", d, "keras_model:build", "--from", "tensorflow", "--to", target)
        assert r.code == 0, (target, r.err)
        assert "parity: ok" in r.out
    m = load_manifest(d).manifest
    assert {a.path for a in m.artifacts} == {"model.onnx", "model.savedmodel.tar",
                                             "model.tflite"}
    assert m.signature is not None and m.signature.inputs[0].name == "features"
    assert m.signature.outputs[0].name == "output"
    # a TensorFlow-sourced model's edge bundle carries its TFLite file beside the ORT ones
    r = mx("export", "edge", d, "-o", tmp_path / "edge")
    assert r.code == 0, r.err
    assert {p.name for p in (tmp_path / "edge").iterdir()} == {
        "edge.json", "model.ort", "model.int8.ort", "required_operators.config", "model.tflite"}
    assert (tmp_path / "edge/model.tflite").read_bytes() == (d / "model.tflite").read_bytes()
    import tarfile

    with tarfile.open(d / "model.savedmodel.tar") as tar:
        assert "saved_model.pb" in tar.getnames()
        tar.extractall(d / "saved", filter="data")
    # A SavedModel directory is a source too (its serving_default signature).
    r = mx("convert", d, "saved", "-o", "from_saved.onnx", "--variant", "saved")
    assert r.code == 0, r.err
    assert "tf2onnx" in (load_manifest(d).manifest.source.converter or "")  # type: ignore[union-attr]


def test_jax_function_to_onnx(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = model_repo(tmp_path, mx, "jax_model.py")
    r = mx("convert", d, "jax_model:build", "--from", "jax", "--input-names", "x")
    assert r.code == 0, r.err
    m = load_manifest(d).manifest
    assert m.signature is not None and m.signature.inputs[0].name == "x"
    assert m.signature.inputs[0].shape == ["batch", 4]
    assert "jax2onnx" in (m.source.converter or "")  # type: ignore[union-attr]


def test_sklearn_iris_to_onnx(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = model_repo(tmp_path, mx, "sklearn_iris.py", task="tabular-classification")
    r = mx("convert", d, "sklearn_iris:build", "--from", "sklearn")
    assert r.code == 0, r.err
    m = load_manifest(d).manifest
    assert m.signature is not None
    assert [o.name for o in m.signature.outputs] == ["label", "probabilities"]
    assert m.signature.outputs[0].dtype == "int64"


def _unchanged(d: Path, before: dict[str, bytes]) -> None:
    after = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    assert after == before, set(after) ^ set(before)


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


def test_unsupported_operator_is_named_and_nothing_written(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = model_repo(tmp_path, mx, "torch_custom_op.py")
    before = _snapshot(d)
    r = mx("convert", d, "torch_custom_op:wobbly", "--from", "pytorch")
    assert r.code == 1
    assert "mxtest" in r.err and "wobble" in r.err and "not supported" in r.err
    _unchanged(d, before)


def test_parity_over_tolerance_exits_1_with_the_numbers(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = model_repo(tmp_path, mx, "jax_model.py")
    before = _snapshot(d)
    # jax and onnxruntime differ in the last bits; a zero tolerance must catch that.
    r = mx("convert", d, "jax_model:build", "--from", "jax", "--atol", "0", "--rtol", "0")
    assert r.code == 1
    assert "parity check failed" in r.err and "max abs error" in r.err and "atol 0" in r.err
    _unchanged(d, before)


def test_pickles_are_refused(tmp_path, mx):  # type: ignore[no-untyped-def]
    import torch

    d = model_repo(tmp_path, mx, "torch_models.py")
    torch.save({"w": torch.zeros(2)}, d / "weights.pt")
    r = mx("convert", d, "weights.pt")
    assert r.code == 1 and "torch.save archive" in r.err and "arbitrary code" in r.err
    (d / "model.pkl").write_bytes(b"\x80\x04\x95\x00")
    r = mx("convert", d, "model.pkl", "--from", "sklearn")
    assert r.code == 1 and "pickle" in r.err


def test_entry_point_that_does_not_import(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = model_repo(tmp_path, mx)
    (d / "broken.py").write_text("import not_a_module_anywhere\n")
    r = mx("convert", d, "broken:build", "--from", "pytorch")
    assert r.code == 1
    assert "does not import" in r.err and "not_a_module_anywhere" in r.err
    r = mx("convert", d, "nothing_here:build", "--from", "pytorch")
    assert r.code == 1 and "nothing_here" in r.err


def test_example_data_of_the_wrong_dtype(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = model_repo(tmp_path, mx, "torch_models.py")
    assert mx("convert", d, "torch_models:mlp", "--from", "pytorch").code == 0
    np.savez(tmp_path / "bad.npz", input=np.zeros((2, 4), np.int32))
    r = mx("convert", d, "torch_models:mlp", "--data", tmp_path / "bad.npz")
    assert r.code == 1 and "bad.npz" in r.err and "int32" in r.err and "float32" in r.err


def test_missing_framework_names_the_extra(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import sys

    from mx.errors import MissingFramework
    from mx.frameworks import require

    # The seam: make the import fail as it would where the extra is not installed.
    monkeypatch.setitem(sys.modules, "jax2onnx", None)
    with pytest.raises(MissingFramework) as err:
        require("jax2onnx")
    assert "mx[jax]" in (err.value.hint or "")


def test_convert_without_source_uses_source_export(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = model_repo(tmp_path, mx, "sklearn_iris.py", task="tabular-classification")
    r = mx("convert", d)
    assert r.code == 0 and "sets no source.export: nothing to convert" in r.err
    text = (d / "mx.yaml").read_text()
    (d / "mx.yaml").write_text(text.replace("card: README.md",
                                            "card: README.md\nsource:\n  framework: sklearn\n"
                                            "  export: sklearn_iris.py:build"))
    r = mx("convert", d)
    assert r.code == 0, r.err
    m = load_manifest(d).manifest
    assert m.source is not None and m.source.entry == "sklearn_iris.py:build"
    assert (d / "model.onnx").stat().st_size > 0
