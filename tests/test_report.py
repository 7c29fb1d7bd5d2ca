"""`mx report`: the pull-request review report, on a real model repo's history."""

from __future__ import annotations

import json
from pathlib import Path

from mx.examples import git, make_model_repo


def test_report_on_a_branch_that_adds_a_variant(tmp_path: Path, mx) -> None:  # type: ignore[no-untyped-def]
    repo = make_model_repo(tmp_path / "repo", "acme/iris", ["1.0.0"]).path
    assert mx("validate", "--write", repo).code == 0
    assert mx("bench", repo, "--iterations", "3", "--warmup", "1").code == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "hashes and a benchmark")
    git(repo, "checkout", "-qb", "feature")
    assert mx("optimize", repo, "-t", "fp16").code == 0
    assert mx("bench", repo, "--iterations", "3", "--warmup", "1").code == 0
    card = (repo / "README.md").read_text()
    (repo / "README.md").write_text(card.replace("## Evaluation\n", "## Evaluation\n\nfp16 too.\n"))
    text = (repo / "mx.yaml").read_text().replace("version: 1.0.0", "version: 1.1.0")
    (repo / "mx.yaml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "fp16 variant")

    res = mx("report", "--base", "main", "-C", repo, "--json")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    (model,) = data["models"]
    assert (model["name"], model["base_version"], model["head_version"]) == \
        ("acme/iris", "1.0.0", "1.1.0")
    arts = {a["path"]: a for a in model["artifacts"]}
    assert arts["model.fp16.onnx"]["status"] == "added"
    assert arts["model.onnx"]["status"] == "unchanged"
    assert model["validation"]["ok"] is True
    assert model["card"]["changed"] == ["Evaluation"]
    assert "+version: 1.1.0" in model["manifest_diff"]
    (q,) = model["quality"]
    assert q["artifact"] == "model.fp16.onnx" and q["base"] is None
    rows = {b["artifact"]: b for b in model["benchmarks"]}
    assert rows["model.onnx"]["base_p50_ms"] is not None  # measured on both sides
    assert rows["model.fp16.onnx"]["base_p50_ms"] is None
    assert data["lfs"]["ok"] is True

    md = mx("report", "--base", "main", "--head", "feature", "-C", repo)
    assert md.code == 0, md.err
    out = md.out
    assert out.startswith("<!-- mx-report -->\n## mx report")
    assert "| `model.fp16.onnx` | fp16 | onnx | added | – |" in out
    assert "**Model card:** changed: Evaluation" in out
    assert "**Validation:** ✅ passed" in out
    assert "| p50 base | p50 head |" in out and "| `model.fp16.onnx` | 1 | – |" in out


def test_report_shows_problems_and_size_deltas(tmp_path: Path, mx) -> None:  # type: ignore[no-untyped-def]
    repo = make_model_repo(tmp_path / "repo", "acme/iris", ["1.0.0"]).path
    assert mx("validate", "--write", repo).code == 0
    git(repo, "commit", "-qam", "hashes")
    make_model_repo(repo, "acme/iris", ["1.1.0"], pad_to=4096)  # new, larger weights
    (repo / ".gitattributes").write_text("*.ort filter=lfs diff=lfs merge=lfs -text\n")
    git(repo, "add", "-A")
    git(repo, "rm", "-q", "--cached", "model.onnx")
    git(repo, "add", "model.onnx")
    res = mx("report", "--base", "v1.0.0", "-C", repo, "--json")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    (art,) = data["models"][0]["artifacts"]
    assert art["status"] == "changed" and art["size_delta"] > 3000
    assert data["lfs"]["ok"] is False
    assert any("no Git LFS pattern covers the artifact model.onnx" in p
               for p in data["lfs"]["problems"])
    md = mx("report", "--base", "v1.0.0", "-C", repo).out
    assert "| `model.onnx` | fp32 | onnx | changed |" in md and "▲" in md
    assert "- ❌ .gitattributes: no Git LFS pattern covers the artifact model.onnx" in md


def test_report_unknown_base(tmp_path: Path, mx) -> None:  # type: ignore[no-untyped-def]
    repo = make_model_repo(tmp_path / "repo", "acme/iris", ["1.0.0"]).path
    res = mx("report", "--base", "origin/nope", "-C", repo)
    assert res.code == 1
    assert "--base origin/nope: not a commit in" in res.err
    assert "git fetch origin" in res.err
