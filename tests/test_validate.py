from __future__ import annotations

import json
import os
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.support.examples import card_text, git, linear_classifier, make_model_repo, manifest_text

PATH_LINE = manifest_text("acme/iris", "1.0.0").splitlines().index("  - path: model.onnx") + 1


@pytest.fixture
def model(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    linear_classifier(d / "model.onnx")
    (d / "mx.yaml").write_text(manifest_text("acme/iris", "1.0.0"))
    (d / "README.md").write_text(card_text("acme/iris"))
    return d


def test_valid_model_passes(mx, model: Path) -> None:  # type: ignore[no-untyped-def]
    res = mx("validate", model)
    assert res.code == 0, res.out + res.err
    assert "ok" in res.err


def test_write_fills_hashes_then_detects_change(mx, model: Path) -> None:  # type: ignore[no-untyped-def]
    assert mx("validate", model, "--write").code == 0
    text = (model / "mx.yaml").read_text()
    assert "sha256: " in text and "size: " in text
    assert mx("validate", model, "--write").code == 0
    assert (model / "mx.yaml").read_text() == text  # idempotent
    linear_classifier(model / "model.onnx", seed=99)
    res = mx("validate", model)
    assert res.code == 1
    line = text.splitlines().index(next(ln for ln in text.splitlines() if "sha256:" in ln)) + 1
    assert f"{model / 'mx.yaml'}:{line}: artifacts[0] model.onnx: sha256 is " in res.out


def test_missing_artifact(mx, model: Path) -> None:  # type: ignore[no-untyped-def]
    (model / "model.onnx").unlink()
    res = mx("validate", model)
    assert res.code == 1
    assert f"{model / 'mx.yaml'}:{PATH_LINE}: artifacts[0] model.onnx: file does not exist" \
        in res.out
    assert "error: " in res.err and "1 problem found" in res.err


def test_lfs_pointer_instead_of_content(mx, model: Path) -> None:  # type: ignore[no-untyped-def]
    (model / "model.onnx").write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        f"oid sha256:{'a' * 64}\nsize 1234\n")
    res = mx("validate", model)
    assert res.code == 1 and "is a Git LFS pointer" in res.out and "git lfs pull" in res.out


def test_symlink_leaving_directory(mx, model: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outside = linear_classifier(tmp_path / "elsewhere.onnx")
    (model / "model.onnx").unlink()
    os.symlink(outside, model / "model.onnx")
    res = mx("validate", model)
    assert res.code == 1 and "resolves outside the model directory" in res.out


def test_card_problems(mx, model: Path) -> None:  # type: ignore[no-untyped-def]
    card = card_text("acme/iris", license="mit")
    card = card.replace("## Evaluation\n\nChecked by onnx.checker and run in onnxruntime by "
                        "the tests.\n", "## Evaluation\n\n<!-- todo -->\n")
    card = card.replace("## Bias and risks", "## Notes")  # "Risks" would count
    (model / "README.md").write_text(card)
    res = mx("validate", model)
    assert res.code == 1
    assert "section 'Evaluation' is empty" in res.out
    assert "section 'Bias and risks' is missing" in res.out
    assert "license 'mit' disagrees with mx.yaml license 'apache-2.0'" in res.out


def test_card_front_matter_malformed(mx, model: Path) -> None:  # type: ignore[no-untyped-def]
    (model / "README.md").write_text("---\nlicense: [unclosed\n---\n# x\n")
    res = mx("validate", model)
    assert res.code == 1 and "README.md" in res.out and "invalid YAML" in res.out


def test_onnx_checker_failure(mx, model: Path) -> None:  # type: ignore[no-untyped-def]
    (model / "model.onnx").write_bytes(b"\x08\x07garbage that is not protobuf")
    res = mx("validate", model)
    assert res.code == 1 and "model.onnx" in res.out and ("ONNX" in res.out or "onnx" in res.out)


def test_signature_mismatch(mx, model: Path) -> None:  # type: ignore[no-untyped-def]
    text = manifest_text("acme/iris", "1.0.0").replace("{name: input, dtype: float32, "
                                                       "shape: [batch, 4]}",
                                                       "{name: features, dtype: int64, "
                                                       "shape: [batch, 5]}")
    (model / "mx.yaml").write_text(text)
    res = mx("validate", model)
    assert res.code == 1
    assert "signature input 'features' is not a graph input (graph has: input)" in res.out
    assert "graph input 'input' is not in signature.inputs" in res.out
    text = manifest_text("acme/iris", "1.0.0").replace("shape: [batch, 3]", "shape: [batch, 7]")
    (model / "mx.yaml").write_text(text)
    res = mx("validate", model)
    assert "output 'probabilities' axis 1 is 3 in the graph but 7 in the signature" in res.out


def test_external_data_outside_directory(mx, model: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../secret.bin"
    w.ClearField("raw_data")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["probabilities"])], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])], [w])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (model / "model.onnx").write_bytes(m.SerializeToString())
    res = mx("validate", model)
    assert res.code == 1 and "outside the model directory" in res.out
    assert "'../secret.bin'" in res.out


def test_schema_error_is_reported_with_line(mx, model: Path) -> None:  # type: ignore[no-untyped-def]
    (model / "mx.yaml").write_text(manifest_text("acme/iris", "1.0.0").replace(
        "format: onnx", "format: pickle"))
    res = mx("validate", model)
    assert res.code == 1 and f"{model / 'mx.yaml'}:18: artifacts[0].format:" in res.out


def test_json_report(mx, model: Path) -> None:  # type: ignore[no-untyped-def]
    (model / "model.onnx").unlink()
    res = mx("validate", model, "--json")
    assert res.code == 1
    report = json.loads(res.out)
    assert report["ok"] is False
    assert report["problems"][0]["line"] == PATH_LINE


def test_lfs_pattern_committed_as_plain_blob(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_model_repo(tmp_path / "repo", "acme/iris", ["1.0.0"])
    res = mx("validate", repo.path)
    assert res.code == 0, res.out  # committed through LFS: fine
    plain = tmp_path / "plain"
    plain.mkdir()
    git(plain, "init", "-q")
    for name in ("model.onnx", "mx.yaml", "README.md"):
        (plain / name).write_bytes((repo.path / name).read_bytes())
    git(plain, "add", ".")
    res = mx("validate", plain)
    assert res.code == 1
    assert "matches the LFS patterns but is committed as a plain git blob" in res.out


def test_init_scaffold(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "new"
    res = mx("init", d, "--name", "acme/new-model", "--task", "image-classification")
    assert res.code == 0, res.err
    assert "filter=lfs" in (d / ".gitattributes").read_text()
    assert "name: acme/new-model" in (d / "mx.yaml").read_text()
    card = (d / "README.md").read_text()
    for section in ("Model details", "Intended use", "Limitations", "Bias and risks",
                    "Training data", "Evaluation"):
        assert f"## {section}" in card
    # Before the author fills it in, validate says what is missing.
    res = mx("validate", d)
    assert res.code == 1
    assert "model.onnx: file does not exist" in res.out
    assert "section 'Training data' is empty" in res.out
    # Filling it in makes it pass.
    linear_classifier(d / "model.onnx")
    (d / "README.md").write_text(card_text("acme/new-model", task="image-classification"))
    assert mx("validate", d).code == 0
    # init refuses to overwrite, writes nothing.
    before = (d / "mx.yaml").read_text()
    res = mx("init", d, "--name", "acme/other")
    assert res.code == 1 and "already exists" in res.err
    assert (d / "mx.yaml").read_text() == before


def test_init_rejects_bad_name(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = mx("init", tmp_path / "x" / "y", "--name", "Acme/Bad")
    assert res.code == 1 and "--name" in res.err and "not a model name" in res.err
    assert not (tmp_path / "x").exists()  # neither x/ nor x/y/ is left behind


@pytest.mark.parametrize("summary", ["VAD v6: speech", "Says hi # note", "yes", "1.0",
                                     "'quoted' and \"double\"", "- starts like a list",
                                     "1:20"])
def test_init_summary_round_trips(mx, tmp_path: Path, summary: str) -> None:  # type: ignore[no-untyped-def]
    import yaml  # PyYAML: a second parser, not the one mx writes with

    from mx.card import parse_card
    from mx.manifest import load_manifest

    d = tmp_path / "m"
    res = mx("init", d, "--name", "acme/vad", "--summary", summary, "--license", "mit")
    assert res.code == 0, res.err
    doc = yaml.safe_load((d / "mx.yaml").read_text())
    assert doc["summary"] == summary and doc["name"] == "acme/vad" and doc["license"] == "mit"
    assert load_manifest(d).manifest.summary == summary
    text = (d / "mx.yaml").read_text()
    assert "# The I/O contract" in text  # the skeleton's comments survive
    card = parse_card((d / "README.md").read_text(), "README.md")
    assert card.meta.license == "mit" and summary in card.body


def test_onnx_model_is_real(model: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": np.ones((2, 4), np.float32)})[0]
    assert out.shape == (2, 3)
    assert np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
    onnx.checker.check_model(str(model / "model.onnx"), full_check=True)
