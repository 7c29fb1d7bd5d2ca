"""mx optimize, mx check and mx bench on real converted models, MiniLM included."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from mx.manifest import load_manifest
from tests.models import minilm

MODELS = Path(__file__).parent / "models"


def converted(tmp_path: Path, mx, module: str, entry: str, framework: str,  # type: ignore[no-untyped-def]
              task: str) -> Path:
    d = tmp_path / "model"
    assert mx("init", d, "--name", "acme/pipeline", "--task", task).code == 0
    shutil.copy(MODELS / module, d / module)
    r = mx("convert", d, entry, "--from", framework)
    assert r.code == 0, r.err
    return d


def test_every_transform_adds_a_measured_variant(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = converted(tmp_path, mx, "torch_models.py", "torch_models:cnn", "pytorch",
                  "image-classification")
    r = mx("optimize", d, "-t", "int8-dynamic", "-t", "int8-static", "-t", "fp16", "-t",
           "graph", "-t", "prune:0.3", "-t", "ort", "--json")
    assert r.code == 0, r.err
    assert "int8-static calibrates on generated inputs" in r.err  # said, not silent
    m = load_manifest(d).manifest
    by_path = {a.path: a for a in m.artifacts}
    expected = {"model.int8.onnx": "int8", "model.int8-static.onnx": "int8-static",
                "model.fp16.onnx": "fp16", "model.opt.onnx": "opt",
                "model.pruned30.onnx": "pruned30", "model.ort": "fp32"}
    for path, variant in expected.items():
        art = by_path[path]
        assert art.variant == variant and art.derived_from == "model.onnx"
        assert art.quality is not None and art.quality.metric == "agreement_top1"
        assert art.quality.against == "model.onnx" and art.quality.samples == 32
        assert art.transform and art.transform["kind"]
        assert (d / path).stat().st_size == art.size
    assert by_path["model.ort"].format == "ort"
    assert by_path["model.pruned30.onnx"].transform["achieved_sparsity"] >= 0.29  # type: ignore[index]
    assert by_path["model.opt.onnx"].quality.value == 1.0  # type: ignore[union-attr]
    # The new artifacts validate (hashes, ONNX checker, signature).
    problems = json.loads(mx("validate", d, "--json").out)["problems"]
    assert [p for p in problems if "README.md" not in p["path"]] == []


def test_min_quality_refuses_and_writes_nothing(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = converted(tmp_path, mx, "torch_models.py", "torch_models:mlp", "pytorch",
                  "tabular-classification")
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    # Pruning 95% of the weights cannot keep a perfect agreement.
    r = mx("optimize", d, "-t", "int8-dynamic", "-t", "prune:0.95", "--min-quality", "0.999")
    assert r.code == 1
    assert "pruned95" in r.err and "agreement_top1" in r.err and "--min-quality" in r.err
    after = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    assert after == before  # not even the int8 variant that passed


def test_calibration_data_is_checked(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = converted(tmp_path, mx, "torch_models.py", "torch_models:mlp", "pytorch", "other")
    np.savez(tmp_path / "wrong_shape.npz", input=np.zeros((8, 5), np.float32))
    r = mx("optimize", d, "-t", "int8-static", "--calibration", tmp_path / "wrong_shape.npz")
    assert r.code == 1 and "wrong_shape.npz" in r.err and "axis 1 is 5" in r.err
    np.savez(tmp_path / "wrong_dtype.npz", input=np.zeros((8, 4), np.float64))
    r = mx("optimize", d, "-t", "int8-static", "--calibration", tmp_path / "wrong_dtype.npz")
    assert r.code == 1 and "float64" in r.err
    np.savez(tmp_path / "good.npz", input=np.random.default_rng(0)
             .standard_normal((64, 4)).astype(np.float32))
    r = mx("optimize", d, "-t", "int8-static", "--calibration", tmp_path / "good.npz")
    assert r.code == 0, r.err
    art = next(a for a in load_manifest(d).manifest.artifacts if a.variant == "int8-static")
    assert art.transform["calibration"] == "good.npz"  # type: ignore[index]
    assert art.quality is not None and art.quality.metric == "max_abs_error"


def test_minilm_int8_keeps_real_sentence_embeddings(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = converted(tmp_path, mx, "minilm.py", "minilm:build", "pytorch", "feature-extraction")
    m = load_manifest(d).manifest
    assert m.signature is not None
    assert m.signature.inputs[0].shape == ["batch", "seq"]
    data = minilm.save_sentences(tmp_path / "sentences.npz", length=64)
    r = mx("optimize", d, "-t", "int8-dynamic", "--data", data, "--min-quality", "0.99")
    assert r.code == 0, r.err
    arts = {a.variant: a for a in load_manifest(d).manifest.artifacts}
    q = arts["int8"].quality
    assert q is not None and q.metric == "cosine_similarity" and q.value >= 0.99
    assert q.samples == len(minilm.SENTENCES)
    assert arts["int8"].size is not None and arts["fp32"].size is not None
    assert arts["int8"].size <= 0.3 * arts["fp32"].size
    # Paraphrases stay closer than unrelated sentences in the int8 model too.
    from mx.runtimes import onnx_runner

    emb = onnx_runner(d / "model.int8.onnx")(dict(np.load(data)))[0]
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


def test_check_targets_and_op_table(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = converted(tmp_path, mx, "sklearn_iris.py", "sklearn_iris:build", "sklearn",
                  "tabular-classification")
    r = mx("check", d, "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)["artifacts"][0]
    ops = {o["op_type"] for o in report["operators"]}
    assert "LinearClassifier" in ops and report["parameters"] > 0
    # ORT Mobile's reduced build has no ai.onnx.ml operators; onnxruntime 1.10 stops at
    # opset 15.
    r = mx("check", d, "-t", "mobile", "-t", "cpu@1.10")
    assert r.code == 1
    assert "mobile@" in r.out and "ai.onnx.ml::LinearClassifier" in r.out
    assert "cpu@1.10: opset 17 is newer" in r.out and "--opset 15" in r.out
    r = mx("check", d, "-t", "cuda")
    assert r.code == 0 and "operators not checked for CUDA" in r.out
    assert mx("check", d, "-t", "tpu").code == 1


def test_validate_refuses_a_model_over_2_gib_in_one_file(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = converted(tmp_path, mx, "torch_models.py", "torch_models:mlp", "pytorch", "other")
    with (d / "model.onnx").open("r+b") as f:
        f.truncate(2 * 1024**3 + 1)  # sparse: no disk used
    r = mx("check", d)
    assert r.code == 1 and "2 GiB" in r.out and "external data" in r.out


def test_bench_writes_results_keyed_by_hardware(tmp_path, mx):  # type: ignore[no-untyped-def]
    d = converted(tmp_path, mx, "torch_models.py", "torch_models:mlp", "pytorch", "other")
    assert mx("convert", d, "torch_models:mlp", "--to", "torchscript").code == 0
    assert mx("optimize", d, "-t", "int8-dynamic").code == 0
    r = mx("bench", d, "--batch", "1,4", "--iterations", "5", "--warmup", "1", "--json")
    assert r.code == 0, r.err
    measured = json.loads(r.out)["results"]
    assert {(x["artifact"], x["batch"]) for x in measured} == {
        (p, b) for p in ("model.onnx", "model.pt", "model.int8.onnx") for b in (1, 4)}
    m = load_manifest(d).manifest
    assert m.benchmarks == "bench/results.json"
    doc = json.loads((d / "bench/results.json").read_text())
    backends = {hw["backend"] for hw in doc["hardware"].values()}
    assert backends == {"onnxruntime", "pytorch"}
    for hw in doc["hardware"].values():
        for res in hw["results"]:
            lat = res["latency_ms"]
            assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
            assert res["throughput"] > 0 and res["load_time_ms"] > 0
            assert res["peak_memory_mb"] > 10 and res["iterations"] >= 5
    # A second run adds to the file (replacing the same measurement, keeping the rest).
    assert mx("bench", d, "--variant", "int8", "--batch", "8", "--iterations", "5").code == 0
    doc2 = json.loads((d / "bench/results.json").read_text())
    n = sum(len(hw["results"]) for hw in doc2["hardware"].values())
    assert n == 7
    r = mx("bench", d, "--compare")
    assert r.code == 0 and "int8" in r.out and "p50 x" in r.out
    # CUDA asked for where there is none: an error, never a quiet CPU run.
    r = mx("bench", d, "--device", "cuda", "--variant", "fp32")
    assert r.code == 1 and "CUDA" in r.err
    assert json.loads((d / "bench/results.json").read_text()) == doc2


def test_bench_results_follow_the_shipped_schema(tmp_path, mx):  # type: ignore[no-untyped-def]
    from mx.bench import results

    schema = results.schema()
    assert schema["properties"]["mx_bench"] == {"const": 1}
    d = converted(tmp_path, mx, "torch_models.py", "torch_models:mlp", "pytorch", "other")
    assert mx("bench", d, "--iterations", "3", "--warmup", "0").code == 0
    doc = json.loads((d / "bench/results.json").read_text())
    entry = next(iter(doc["hardware"].values()))
    hw_schema = schema["properties"]["hardware"]["additionalProperties"]
    assert set(hw_schema["required"]) <= set(entry)
    assert set(hw_schema["properties"]["results"]["items"]["required"]) <= \
        set(entry["results"][0])


def test_quality_records_the_cpu_and_flags_large_errors(tmp_path, mx):  # type: ignore[no-untyped-def]
    from mx.cpufeatures import cpu_features, int8_kind

    d = converted(tmp_path, mx, "torch_models.py", "torch_models:mlp", "pytorch", "other")
    # max_abs_error has no bound unless --max-error: a large one is said, not silent
    r = mx("optimize", d, "-t", "prune:0.95", "-t", "int8-dynamic")
    assert r.code == 0, r.err
    assert "variant pruned95 (prune)" in r.err and "of the range of the parent's output" in r.err
    assert "variant int8 " not in r.err  # u8u8 keeps the MLP within 5% on every CPU
    arts = {a.variant: a for a in load_manifest(d).manifest.artifacts}
    q = arts["int8"].quality
    assert q is not None and q.measured_on is not None
    assert q.measured_on.features == list(cpu_features()) and q.measured_on.int8 == int8_kind()
    assert arts["int8"].transform == {"kind": "quantize", "method": "dynamic", "scheme": "u8u8",
                                      "weight_type": "uint8", "activation_type": "uint8",
                                      "per_channel": True, "reduce_range": False}
    # under --min-quality the large error refuses the run
    r = mx("optimize", d, "-t", "prune:0.9", "--min-quality", "0.99")
    assert r.code == 1 and "pruned90" in r.err and "refuses a large error" in r.err
    assert "pruned90" not in (d / "mx.yaml").read_text()
    # a saturating scheme is named as such, with what this CPU is
    r = mx("optimize", d, "-t", "int8-dynamic:u8s8")
    assert r.code == 0 and "saturates on x86 CPUs without VNNI" in r.err
    assert mx("optimize", d, "-t", "int8-dynamic:s4").code == 1
