"""Real ONNX models as people ship them (tests/fixtures/models): signatures from their
graphs, scalar inputs, batch axes other than 0, and every ONNX value type."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from mx import onnxinfo
from mx.iocheck import compare_io
from mx.manifest import load_manifest
from mx.tensorspec import TensorSpec
from tests.support.examples import card_text

FIXTURES = Path(__file__).parent / "fixtures" / "models"


def copied(tmp_path: Path, fixture: str, name: str, task: str = "other") -> Path:
    """A model directory where the ONNX file was copied in by hand: no signature yet."""
    d = tmp_path / name.split("/")[1]
    d.mkdir()
    shutil.copy(FIXTURES / fixture, d / "model.onnx")
    summary = "A real model"
    (d / "mx.yaml").write_text(
        f"mx: 1\nname: {name}\nversion: 1.0.0\nsummary: {summary}\nlicense: mit\n"
        f"task: {task}\ntags: [example]\ncard: README.md\n"
        "artifacts:\n  - path: model.onnx\n    format: onnx\n    variant: fp32\n")
    (d / "README.md").write_text(card_text(name, summary=summary, license="mit", task=task))
    return d


def speech(path: Path, rows: int = 32, sr: int = 16000) -> Path:
    """A tone after silence, in 512-sample chunks at 16 kHz, the state zero, sr a scalar."""
    t = np.arange(rows * 512) / sr
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (t > 0.4)
             + 0.01 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    np.savez(path, input=audio.reshape(rows, 512), state=np.zeros((2, rows, 128), np.float32),
             sr=np.array(sr, np.int64))
    return path


def test_validate_write_fills_the_signature_of_real_graphs(mx, tmp_path):  # type: ignore[no-untyped-def]
    vad = copied(tmp_path, "silero_vad.onnx", "acme/vad")
    res = mx("validate", vad)
    assert res.code == 0, res.out
    assert "no signature: `mx validate --write` fills it from the graph" in res.err
    res = mx("validate", vad, "--write")
    assert res.code == 0, res.out + res.err
    assert "(sha256 and size, signature)" in res.err
    sig = load_manifest(vad).manifest.signature
    assert sig is not None
    shapes = {s.name: (s.dtype, s.shape) for s in sig.inputs}
    # unnamed dims become symbolic names; the sample rate is a rank-0 scalar
    assert shapes == {"input": ("float32", ["input_0", "input_1"]),
                      "state": ("float32", [2, "state_1", 128]), "sr": ("int64", [])}
    assert "no CPU kernel" not in res.out and mx("check", vad).code == 0
    # PaddleOCR's classifier: a -1 dim_value and dims named "?" are symbolic, each its own
    ocr = copied(tmp_path, "ppocr_mobile_v2_cls.onnx", "acme/ocr-cls")
    assert mx("validate", ocr, "--write").code == 0
    sig = load_manifest(ocr).manifest.signature
    assert sig is not None and sig.inputs[0].shape == ["x_0", 3, "x_2", "x_3"]
    assert sig.outputs[0].shape == ["save_infer_model/scale_0.tmp_1_0", 2]
    res = mx("check", ocr, "-t", "cpu", "-t", "ort-mobile")
    assert "cpu@" not in res.out  # 308 Constant nodes and HardSigmoid load on CPU
    assert "not in ORT Mobile's pre-built package" in res.out and "HardSigmoid" in res.out


def test_silero_optimize_and_bench_with_a_scalar_and_batch_on_axis_1(mx, tmp_path):  # type: ignore[no-untyped-def]
    vad = copied(tmp_path, "silero_vad.onnx", "acme/vad")
    assert mx("validate", vad, "--write").code == 0
    data = speech(tmp_path / "speech.npz")
    # the state's batch is axis 1: given whole, onnxruntime refuses it, in one line
    res = mx("optimize", vad, "-t", "int8-dynamic", "--data", data)
    assert res.code == 1 and "onnxruntime cannot run the model on" in res.err
    assert "Traceback" not in res.err and len(res.err.strip().splitlines()) == 2
    res = mx("optimize", vad, "-t", "int8-dynamic", "--data", data, "--batch-axis", "state=1")
    assert res.code == 0, res.err
    art = next(a for a in load_manifest(vad).manifest.artifacts if a.variant == "int8")
    assert art.quality is not None and art.quality.samples == 32
    res = mx("optimize", vad, "-t", "fp16", "--data", data, "--batch-axis", "state=9")
    assert res.code == 1 and "--batch-axis state=9" in res.err and "rank 3" in res.err
    res = mx("optimize", vad, "-t", "fp16", "--batch-axis", "nope=1")
    assert res.code == 1 and "--batch-axis nope: no such input" in res.err
    # generated inputs: sizes and the batch axis from the command line
    res = mx("bench", vad, "--variant", "fp32", "--batch", "1,4", "--iterations", "2",
             "--warmup", "0", "--batch-axis", "state=1", "--shape", "input_1=256")
    assert res.code == 0, res.err
    res = mx("bench", vad, "--variant", "fp32", "--batch", "2", "--iterations", "2",
             "--shape", "input_1=256")
    assert res.code == 1 and "--batch-axis state=1" in res.err  # the hint says how


def test_batch_axis_from_the_signature(mx, tmp_path):  # type: ignore[no-untyped-def]
    vad = copied(tmp_path, "silero_vad.onnx", "acme/vad")
    assert mx("validate", vad, "--write").code == 0
    text = (vad / "mx.yaml").read_text()
    text = text.replace("[input_0, input_1]", "[batch, samples]") \
        .replace("[2, state_1, 128]", "[2, batch, 128]")
    (vad / "mx.yaml").write_text(text)
    assert mx("validate", vad).code == 0
    res = mx("optimize", vad, "-t", "int8-dynamic", "--data", speech(tmp_path / "s.npz", 20))
    assert res.code == 0, res.err
    art = next(a for a in load_manifest(vad).manifest.artifacts if a.variant == "int8")
    assert art.quality is not None and art.quality.samples == 20


ALL_TYPES = sorted(onnxinfo.ONNX_DTYPES)


@pytest.mark.parametrize("code", ALL_TYPES)
def test_every_element_type_has_a_dtype(code: int) -> None:
    vi = helper.make_tensor_value_info("x", code, ["n", None, 3])
    info = onnxinfo.value_type("x", vi.type, name_unknown=True)
    spec = TensorSpec.model_validate(info.manifest_entry())
    assert spec.dtype == onnxinfo.ONNX_DTYPES[code] and spec.shape == ["n", "x_1", 3]
    assert compare_io("input", [spec], [vi]) == []


def test_sequence_optional_map_and_unknown_rank() -> None:
    float_tensor = helper.make_tensor_type_proto(TensorProto.FLOAT, [])
    values = [
        helper.make_value_info("probs", helper.make_sequence_type_proto(
            helper.make_map_type_proto(TensorProto.INT64, float_tensor))),
        helper.make_value_info("maybe", helper.make_optional_type_proto(
            helper.make_tensor_type_proto(TensorProto.INT4, [-1, 2]))),
        helper.make_value_info("words", helper.make_sequence_type_proto(
            helper.make_tensor_type_proto(TensorProto.STRING, ["?"]))),
        helper.make_value_info("any", helper.make_tensor_type_proto(TensorProto.BFLOAT16,
                                                                    None)),
    ]
    specs = [TensorSpec.model_validate(onnxinfo.value_type(v.name, v.type, True).manifest_entry())
             for v in values]
    assert [(s.type, s.dtype, s.shape) for s in specs] == [
        ("sequence(map(int64, tensor))", "float32", []),
        ("optional(tensor)", "int4", ["maybe_0", 2]),
        ("sequence(tensor)", "string", ["words_0"]),
        ("tensor", "bfloat16", None)]
    assert compare_io("output", specs, values) == []
    wrong = [specs[0].model_copy(update={"type": "sequence(map(string, tensor))"})]
    assert compare_io("output", wrong, values[:1]) == [
        "output 'probs' is sequence(map(int64, tensor)) in the graph but "
        "sequence(map(string, tensor)) in the signature"]
    with pytest.raises(ValueError, match="map\\(KEY, T\\)"):
        TensorSpec(name="m", dtype="float32", shape=[], type="map(float32, tensor)")


def test_sklearn_zipmap_signature_fills(mx, tmp_path):  # type: ignore[no-untyped-def]
    """A graph whose output is a sequence of maps, as skl2onnx writes with ZipMap."""
    d = tmp_path / "zipmap"
    d.mkdir()
    node = helper.make_node("ZipMap", ["scores"], ["probs"], domain="ai.onnx.ml",
                            classlabels_int64s=[0, 1, 2])
    graph = helper.make_graph(
        [node], "zipmap",
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_value_info("probs", helper.make_sequence_type_proto(
            helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(
                TensorProto.FLOAT, []))))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    onnx.save(model, str(d / "model.onnx"))
    (d / "mx.yaml").write_text(
        "mx: 1\nname: acme/zipmap\nversion: 1.0.0\nsummary: A real model\nlicense: mit\n"
        "task: other\ntags: [example]\ncard: README.md\n"
        "artifacts:\n  - path: model.onnx\n    format: onnx\n    variant: fp32\n")
    (d / "README.md").write_text(card_text("acme/zipmap", summary="A real model",
                                           license="mit", task="other"))
    res = mx("validate", d, "--write")
    assert res.code == 0, res.out + res.err
    assert "type: 'sequence(map(int64, tensor))'" in (d / "mx.yaml").read_text()
    assert mx("validate", d).code == 0
