"""Weight files through the CLI: mx validate and mx check read safetensors and GGUF headers,
and mx import turns a Hugging Face folder (the real all-MiniLM-L6-v2, a sharded set) into an
mx model directory that mx validate accepts once the card's author sections are written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.conftest import mx_subprocess
from tests.support.examples import card_text
from tests.unit.test_weights import minilm_dir, rewrite_header, write_gguf, write_shards

MANIFEST = """mx: 1
name: acme/tiny
version: 1.0.0
summary: Tiny weights
license: apache-2.0
card: README.md
artifacts:
{artifacts}"""


def weights_model(d: Path, files: dict[str, str]) -> Path:
    arts = "".join(f"  - path: {p}\n    format: {f}\n" for p, f in files.items())
    (d / "mx.yaml").write_text(MANIFEST.format(artifacts=arts))
    (d / "README.md").write_text(card_text("acme/tiny"))
    return d


@pytest.fixture
def sharded(tmp_path: Path) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    write_shards(d)
    write_gguf(d / "tiny.gguf")
    return weights_model(d, {"model-00001-of-00002.safetensors": "safetensors",
                             "model-00002-of-00002.safetensors": "safetensors",
                             "model.safetensors.index.json": "other", "tiny.gguf": "gguf"})


def test_validate_and_check_read_weight_headers(mx, sharded: Path) -> None:  # type: ignore[no-untyped-def]
    res = mx("validate", sharded)
    assert res.code == 0, res.out + res.err
    res = mx("check", sharded, "--json")
    assert res.code == 0, res.out + res.err
    weights = {w["path"]: w for w in json.loads(res.out)["weights"]}
    assert weights["model.safetensors.index.json"]["parameters"] == 35
    assert weights["model.safetensors.index.json"]["dtypes"] == {"F32": 32, "F16": 3}
    assert weights["tiny.gguf"] == {"path": "tiny.gguf", "format": "gguf", "tensors": 3,
                                    "parameters": 640,
                                    "dtypes": {"F32": 256, "F16": 256, "Q8_0": 128}}
    text = mx("check", sharded).out
    assert "tiny.gguf: gguf, 3 tensors, 640 parameters (F16 256, F32 256, Q8_0 128)" in text


def test_malformed_header_fails_validate_naming_file_and_offset(mx, sharded: Path) -> None:  # type: ignore[no-untyped-def]
    shard = sharded / "model-00002-of-00002.safetensors"
    rewrite_header(shard, lambda d: d["c"].update(shape=[3, 8]))
    res = mx("validate", sharded)
    assert res.code == 1
    lines = [ln for ln in res.out.splitlines() if str(shard) in ln]
    assert lines and lines[0].startswith(f"{shard}: offset ")
    assert "needs 96" in lines[0]
    res = mx("check", sharded)
    assert res.code == 1 and "1 weight file malformed" in res.err


def test_unlisted_weight_file_is_checked_and_pointers_skipped(mx, sharded: Path) -> None:  # type: ignore[no-untyped-def]
    (sharded / "extra.gguf").write_bytes(b"GGUX" + b"\0" * 60)
    res = mx("validate", sharded)
    assert res.code == 1
    assert f"{sharded / 'extra.gguf'}: offset 0: not a GGUF file" in res.out
    (sharded / "extra.gguf").write_text("version https://git-lfs.github.com/spec/v1\n"
                                        f"oid sha256:{'a' * 64}\nsize 1234\n")
    assert mx("validate", sharded).code == 0


def test_index_naming_a_missing_shard_fails_validate(mx, sharded: Path) -> None:  # type: ignore[no-untyped-def]
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "../x.safetensors"}}))
    res = mx("validate", sharded)
    assert res.code == 1 and "shard '../x.safetensors' contains '..'" in res.out


def fill_card_sections(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    assert text.count("[More Information Needed]") == 3
    readme.write_text(text.replace("[More Information Needed]",
                                   "Written by the model's maintainers."), encoding="utf-8")


def test_import_real_minilm(tmp_path: Path) -> None:
    src = tmp_path / "hf"
    shutil.copytree(minilm_dir(), src)
    out = tmp_path / "mx-minilm"
    res = mx_subprocess("import", src, "-o", out, "--name", "sentence-transformers/minilm")
    assert res.returncode == 0, res.stderr
    assert "22,713,728 parameters" in res.stderr
    assert not [p for p in tmp_path.iterdir() if "mx-import" in p.name]  # stage renamed
    m = (out / "mx.yaml").read_text()
    assert "task: sentence-similarity" in m and "license: apache-2.0" in m
    assert "summary: 'This is a sentence-transformers model: It maps sentences" in m
    for f in ("model.safetensors", "tokenizer.json", "vocab.txt", "1_Pooling/config.json"):
        assert (out / f).read_bytes() == (src / f).read_bytes()
        assert f"path: {f}" in m
    assert "*.safetensors filter=lfs" in (out / ".gitattributes").read_text()
    assert "model.safetensors filter=lfs" in (out / ".gitattributes").read_text()  # Hub's kept
    card = (out / "README.md").read_text()
    assert card.startswith((src / "README.md").read_text())  # the card kept, sections added
    assert "- Weights: `model.safetensors`, 22,713,728 parameters (F32, I64)" in card
    # the card says nothing of limitations, bias or evaluation: only its author can
    res = mx_subprocess("validate", out)
    assert res.returncode == 1
    assert [ln.split(": ", 1)[1] for ln in res.stdout.splitlines()] == [
        f"section '{s}' is empty (heading '{s}' has only comments or placeholders under it)"
        for s in ("Limitations", "Bias and risks", "Evaluation")]
    fill_card_sections(out / "README.md")
    res = mx_subprocess("validate", out)
    assert res.returncode == 0, res.stdout + res.stderr
    # never over an existing mx.yaml without --force; nothing changes
    before = (out / "mx.yaml").read_bytes()
    res = mx_subprocess("import", out, "--name", "acme/other")
    assert res.returncode == 1 and "already exists" in res.stderr
    assert (out / "mx.yaml").read_bytes() == before


def test_import_sharded_in_place(tmp_path: Path) -> None:
    d = tmp_path / "hf"
    d.mkdir()
    write_shards(d)
    (d / "config.json").write_text(json.dumps({"architectures": ["TinyModel"],
                                               "model_type": "tiny"}))
    (d / "README.md").write_text("---\nlicense: mit\npipeline_tag: fill-mask\ndatasets: "
                                 "[wikitext]\n---\n# Tiny\n\nA tiny masked model.\n\n"
                                 "## Uses\n\nFor tests.\n")
    res = mx_subprocess("import", d, "--name", "acme/tiny", "--version", "2.0.0")
    assert res.returncode == 0, res.stderr
    m = (d / "mx.yaml").read_text()
    assert "version: 2.0.0" in m and "license: mit" in m and "summary: A tiny masked model." in m
    assert m.count("format: safetensors") == 2 and "variant: fp32" in m
    card = (d / "README.md").read_text()
    assert "- Weights: `model.safetensors.index.json`, 35 parameters (F16, F32)" in card
    assert "lists these datasets: wikitext." in card
    fill_card_sections(d / "README.md")
    res = mx_subprocess("validate", d)
    assert res.returncode == 0, res.stdout + res.stderr


def test_import_refuses_links_out_and_writes_nothing(tmp_path: Path) -> None:
    d = tmp_path / "hf"
    d.mkdir()
    save_file({"w": np.ones(4, np.float16)}, str(tmp_path / "outside.safetensors"))
    (d / "model.safetensors").symlink_to(tmp_path / "outside.safetensors")
    (d / "README.md").write_text("---\nlicense: mit\n---\n# x\n")
    res = mx_subprocess("import", d, "-o", tmp_path / "out", "--name", "acme/x")
    assert res.returncode == 1
    assert "a link that leaves" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists() and not (d / "mx.yaml").exists()
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "mxhome")
    assert left == ["hf", "home", "outside.safetensors"]


def test_import_refuses_malformed_weights(tmp_path: Path) -> None:
    d = tmp_path / "hf"
    d.mkdir()
    save_file({"w": np.ones(4, np.float16)}, str(d / "model.safetensors"))
    rewrite_header(d / "model.safetensors", lambda doc: doc["w"].update(dtype="F17"))
    (d / "README.md").write_text("---\nlicense: mit\n---\n# x\n")
    res = mx_subprocess("import", d, "--name", "acme/x")
    assert res.returncode == 1
    assert f"{d / 'model.safetensors'}: offset 8: tensor 'w': unknown dtype 'F17'" in res.stderr
    assert not (d / "mx.yaml").exists()
