"""`mx report`: the pull-request review report, on a real model repo's history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from mx.report.render import markdown
from tests.support.examples import git, make_model_repo


def gfm_tables(text: str) -> list[list[list[str]]]:
    """Each table as GitHub renders it: rows of cells, each cell's text as shown."""
    tables: list[list[list[str]]] = []
    for tok in MarkdownIt("commonmark").enable("table").parse(text):
        if tok.type == "table_open":
            tables.append([])
        elif tok.type == "tr_open":
            tables[-1].append([])
        elif tok.type == "inline" and tables and tables[-1] and tok.level > 3:
            tables[-1][-1].append("".join(
                c.content for c in tok.children or [] if c.type in ("text", "code_inline")))
    return tables


def assert_rows_whole(text: str) -> list[list[list[str]]]:
    """No row is short of cells. (GFM drops cells beyond the header's count, so a split row
    shows as shifted contents: the callers check those.)"""
    tables = gfm_tables(text)
    assert tables
    for table in tables:
        header, *rows = table
        for r in rows:
            assert len(r) == len(header), (header, r)
    return tables


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
    # The hardware key holds '|' ("<cpu> x<cores> | no gpu | ..."): each row keeps its seven
    # cells, and the key shows whole in the first.
    bench = next(t for t in assert_rows_whole(out) if t[0][0] == "hardware")
    hardware = model["benchmarks"][0]["hardware"]  # as `mx bench` wrote it
    assert " | " in hardware and {r[0] for r in bench[1:]} == {hardware}


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


HOSTILE = "a|b `c` *d* <b>e</b> [f](g) \\| h\nnext"


def test_every_table_cell_is_escaped() -> None:
    report: dict[str, Any] = {
        "base": {"rev": "main", "commit": "a" * 40}, "head": {"rev": "pr", "commit": "b" * 40},
        "lfs": {"ok": True, "problems": []},
        "models": [{
            "name": "acme/x", "model_dir": "models/x", "status": "modified",
            "base_version": "1.0.0", "head_version": "1.1.0", "validation": None,
            "artifacts": [{"path": "``odd`|path.onnx", "variant": HOSTILE, "format": "onnx",
                           "status": "added", "base_size": None, "head_size": 10,
                           "size_delta": None}],
            "quality": [{"artifact": "m.onnx", "metric": HOSTILE, "base": 0.5, "head": 0.6,
                         "better": True}],
            "benchmarks": [{"hardware": "Xeon x8 | no gpu | onnxruntime 1.20 | CPU\nx",
                            "artifact": "m|`x`.onnx", "batch": 1, "base_p50_ms": 1.0,
                            "head_p50_ms": 2.0, "p50_change": 1.0, "head_throughput": 3.0}],
            "card": {"diff": " ```\n+x\n", "changed": ["Evaluation"], "added": [],
                     "removed": []},
            "manifest_diff": ""}]}
    out = markdown(report)
    artifacts, quality, bench = assert_rows_whole(out)
    assert artifacts[1][:2] == ["``odd`|path.onnx", HOSTILE.replace("\n", " ")]
    assert quality[1][1] == HOSTILE.replace("\n", " ")
    assert bench[1][:2] == ["Xeon x8 | no gpu | onnxruntime 1.20 | CPU x", "m|`x`.onnx"]
    # A card diff holding a fence stays inside its own, longer fence.
    fences = [t for t in MarkdownIt("commonmark").parse(out) if t.type == "fence"]
    assert [f.content for f in fences] == [" ```\n+x\n"]
