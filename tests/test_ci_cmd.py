"""`mx ci push` and `mx ci tag` on small repositories, without a workflow around them:
the cases the workflow tests do not reach (a monorepo, an outrun push, nothing changed,
files mx did not write)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mx.ci import Identity, push_derived, release_tag_name, tag_version
from mx.errors import MxError
from tests.conftest import push_to
from tests.support.examples import git, linear_classifier, make_model_repo

CI = "mx-ci <mx-ci@users.noreply.github.com>"


@pytest.fixture
def mono(tmp_path: Path) -> tuple[Path, Path]:
    repo = make_model_repo(tmp_path / "repo", "acme/resnet", ["0.1.0"],
                           model_dir="vision/resnet").path
    origin = tmp_path / "origin.git"
    push_to(repo, origin)
    git(repo, "checkout", "-qb", "pr")
    git(repo, "push", "-q", "origin", "pr")
    return repo, origin


def _derive(model: Path) -> None:
    """What mx optimize does, by hand: a new artifact named in mx.yaml."""
    linear_classifier(model / "model.small.onnx", seed=7)
    manifest = model / "mx.yaml"
    manifest.write_text(manifest.read_text().replace(
        "artifacts:\n", "artifacts:\n  - path: model.small.onnx\n    format: onnx\n"
        "    variant: small\n", 1))


def test_identity_is_name_and_email() -> None:
    assert str(Identity.parse(CI)) == CI
    with pytest.raises(MxError, match="not an identity"):
        Identity.parse("mx-ci")


def test_push_commits_only_what_mx_names_in_a_monorepo(mono: tuple[Path, Path], mx,  # type: ignore[no-untyped-def]
                                                       tmp_path: Path) -> None:
    repo, origin = mono
    model = repo / "vision" / "resnet"
    _derive(model)
    (model / "scratch.txt").write_text("a tool's leftovers\n")
    (repo / "elsewhere.txt").write_text("outside the model\n")
    outputs, summary = tmp_path / "out", tmp_path / "summary.md"
    res = mx("ci", "push", model, "--branch", "pr", "--outputs", outputs, "--summary", summary)
    assert res.code == 0, res.err
    tip = git(origin, "rev-parse", "refs/heads/pr").strip()
    assert outputs.read_text() == f"status=pushed\ncommit={tip}\n"
    assert git(origin, "log", "-1", "--format=%s", tip).strip() == \
        "mx ci: derived small onnx (model.small.onnx)"
    assert sorted(git(origin, "diff-tree", "--no-commit-id", "--name-only", "-r", tip)
                  .split()) == ["vision/resnet/model.small.onnx", "vision/resnet/mx.yaml"]
    assert "Left out (changed, but neither mx.yaml nor a file it names): " \
           "`vision/resnet/scratch.txt`." in summary.read_text()
    # Nothing mx wrote changed since: nothing to push, even on a commit that is not CI's.
    git(repo, "commit", "-q", "--allow-empty", "-m", "a human commit")
    assert push_derived(model, "pr").status == "unchanged"


def test_an_outrun_push_is_not_an_error(mono: tuple[Path, Path], tmp_path: Path) -> None:
    repo, origin = mono
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "-b", "pr", str(origin), str(other))
    git(other, "commit", "-q", "--allow-empty", "-m", "the author pushed again")
    git(other, "push", "-q", "origin", "pr")
    moved = git(origin, "rev-parse", "refs/heads/pr").strip()
    _derive(repo / "vision" / "resnet")
    outcome = push_derived(repo / "vision" / "resnet", "pr")
    assert outcome.status == "moved" and "moved on" in outcome.note("vision/resnet")
    assert git(origin, "rev-parse", "refs/heads/pr").strip() == moved


def test_tag_names_the_monorepo_directory_and_fetches_the_notes(mono: tuple[Path, Path], mx,  # type: ignore[no-untyped-def]
                                                                 tmp_path: Path) -> None:
    repo, origin = mono
    assert release_tag_name(".", "1.0.0") == "v1.0.0"
    model = repo / "vision" / "resnet"
    outcome = tag_version(model)
    assert (outcome.tag, outcome.created) == ("vision/resnet/v0.1.0", False)
    manifest = model / "mx.yaml"
    manifest.write_text(manifest.read_text().replace("version: 0.1.0", "version: 0.2.0"))
    git(repo, "commit", "-qam", "0.2.0")
    # A note the remote has and this clone lacks: tagging fetches it, so signing extends it.
    git(repo, "notes", "--ref", "mx-signatures", "add", "-m", json.dumps({"x": 1}),
        "vision/resnet/v0.1.0")
    git(repo, "push", "-q", "origin", "refs/notes/mx-signatures")
    git(repo, "update-ref", "-d", "refs/notes/mx-signatures")
    outputs = tmp_path / "out"
    res = mx("ci", "tag", model, "--outputs", outputs)
    assert res.code == 0, res.err
    assert outputs.read_text() == "tag=vision/resnet/v0.2.0\nversion=0.2.0\n"
    assert git(repo, "for-each-ref", "--format=%(taggername) %(taggeremail) %(contents:subject)",
               "refs/tags/vision/resnet/v0.2.0").strip() == f"{CI} acme/resnet 0.2.0"
    assert git(repo, "rev-parse", "refs/notes/mx-signatures").strip() == \
        git(origin, "rev-parse", "refs/notes/mx-signatures").strip()
    res = mx("ci", "tag", model, "--outputs", outputs)
    assert res.code == 0 and "exists already" in res.err
    assert outputs.read_text().endswith("tag=\nversion=0.2.0\n")
