from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REGISTRY_YAML
from tests.support.examples import (
    ExampleRepo,
    git,
    make_model_repo,
    manifest_text,
    sign_all_releases,
)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_documents(built: Path, repos: dict[str, ExampleRepo]) -> None:
    doc = json.loads((built / "index/models/acme/iris.json").read_text())
    assert doc["mx_index"] == "1.0" and doc["name"] == "acme/iris"
    assert doc["channels"] == {"canary": "2.0.0-rc.1", "stable": "1.1.0"}
    assert sorted(doc["versions"]) == ["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1"]
    v12 = doc["versions"]["1.2.0"]
    assert v12["yanked"] is True and v12["yanked_reason"] == "wrong weights; use 1.1.0"
    assert v12["tag"] == "v1.2.0" and len(v12["commit"]) == 40
    assert v12["created"] == "2026-01-01T00:00:00Z"
    assert v12["manifest"]["version"] == "1.2.0"
    art = v12["artifacts"][0]
    assert art["urls"][0] == f"artifacts/sha256/{art['sha256']}"
    assert art["urls"][1].startswith("lfs+file://") and art["urls"][1].endswith(art["sha256"])
    mirrored = built / art["urls"][0]
    import hashlib

    assert hashlib.sha256(mirrored.read_bytes()).hexdigest() == art["sha256"]
    assert mirrored.stat().st_size == art["size"]
    card = built / v12["card"]["url"]
    assert hashlib.sha256(card.read_bytes()).hexdigest() == v12["card"]["sha256"]
    mono = json.loads((built / "index/models/acme/resnet.json").read_text())
    assert mono["versions"]["0.1.0"]["tag"] == "vision/resnet/v0.1.0"
    search = json.loads((built / "index/search.json").read_text())
    assert [m["name"] for m in search["models"]] == ["acme/iris", "acme/resnet"]
    assert search["models"][0]["latest"] == "1.1.0"  # 1.2.0 yanked, 2.0.0-rc.1 pre-release
    config = json.loads((built / "index/config.json").read_text())
    assert config["mx_index"] == "1.0" and config["name"] == "Test registry"


def test_build_is_deterministic(mx, tmp_path: Path, registry_file: Path, built: Path) -> None:  # type: ignore[no-untyped-def]
    first, second = tmp_path / "first", tmp_path / "second"
    assert mx("index", "build", registry_file, "-o", first).code == 0
    shutil.rmtree(tmp_path / "mxhome", ignore_errors=True)  # no build state either
    assert mx("index", "build", registry_file, "-o", second).code == 0
    assert tree_bytes(first) == tree_bytes(second)
    built = first
    before = {p: p.stat().st_mtime_ns for p in built.rglob("*") if p.is_file()}
    res = mx("index", "build", registry_file, "-o", built, "--json")
    assert json.loads(res.out)["documents_written"] == 0
    assert {p: p.stat().st_mtime_ns for p in built.rglob("*") if p.is_file()} == before


def test_rebuild_reads_no_artifact_again(mx, registry_file: Path, built: Path,  # type: ignore[no-untyped-def]
                                         repos: dict[str, ExampleRepo]) -> None:
    assert mx("index", "build", registry_file, "-o", built).code == 0  # this copy's URLs
    # With the LFS objects gone from the sources, only a build that reads no artifact
    # again can succeed.
    for repo in repos.values():
        shutil.rmtree(repo.path / ".git" / "lfs" / "objects")
    res = mx("index", "build", registry_file, "-o", built, "--json")
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert summary["artifacts_written"] == 0 and summary["documents_written"] == 0


def test_new_release_is_picked_up(mx, registry_file: Path, built: Path,  # type: ignore[no-untyped-def]
                                  repos: dict[str, ExampleRepo]) -> None:
    make_model_repo(repos["iris"].path, "acme/iris", ["1.3.0"])
    sign_all_releases(repos["iris"].path, registry_file.parent / "keys" / "acme.pem")
    res = mx("index", "build", registry_file, "-o", built, "--json")
    summary = json.loads(res.out)
    assert summary["artifacts_written"] == 1
    doc = json.loads((built / "index/models/acme/iris.json").read_text())
    assert "1.3.0" in doc["versions"]


def refused(mx, registry_file: Path, out: Path, *needles: str, args: tuple[str, ...] = ()  # type: ignore[no-untyped-def]
            ) -> None:
    before = tree_bytes(out) if out.exists() else {}
    res = mx("index", "build", registry_file, "-o", out, *args)
    assert res.code == 1, res.err
    first = res.err.splitlines()[0]
    for needle in needles:
        assert needle in first, first
    assert (tree_bytes(out) if out.exists() else {}) == before  # nothing half-written


def test_manifest_version_must_equal_tag(mx, tmp_path: Path, registry_file: Path,  # type: ignore[no-untyped-def]
                                         built: Path, repos: dict[str, ExampleRepo]) -> None:
    repo = repos["iris"].path
    (repo / "mx.yaml").write_text(manifest_text("acme/iris", "1.4.0"))
    git(repo, "commit", "-qam", "bump")
    git(repo, "tag", "v1.5.0")
    refused(mx, registry_file, built, "source repos/iris", "tag v1.5.0", "mx.yaml",
            "version is 1.4.0 but the tag says 1.5.0")


def test_same_model_from_two_sources(mx, tmp_path: Path, registry_file: Path,  # type: ignore[no-untyped-def]
                                     built: Path) -> None:
    make_model_repo(registry_file.parent / "repos" / "copy", "acme/iris", ["9.0.0"])
    registry_file.write_text(registry_file.read_text().replace(
        "  - repo: repos/mono", "  - repo: repos/copy\n  - repo: repos/mono"))
    refused(mx, registry_file, built, "acme/iris comes from two sources", "repos/iris",
            "repos/copy")


def test_missing_lfs_object(mx, tmp_path: Path, registry_file: Path,  # type: ignore[no-untyped-def]
                            repos: dict[str, ExampleRepo]) -> None:
    shutil.rmtree(repos["mono"].path / ".git" / "lfs" / "objects")
    refused(mx, registry_file, tmp_path / "fresh-out", "source repos/mono",
            "tag vision/resnet/v0.1.0", "model.onnx", "LFS object", "missing")
    assert not (tmp_path / "fresh-out").exists()


def test_source_that_does_not_exist(mx, tmp_path: Path, registry_file: Path) -> None:  # type: ignore[no-untyped-def]
    registry_file.write_text(registry_file.read_text().replace("repos/mono", "repos/nope"))
    refused(mx, registry_file, tmp_path / "o", "repos/nope", "does not exist")
    registry_file.write_text(registry_file.read_text().replace(
        "repos/nope", "file:///nonexistent/remote.git"))
    refused(mx, registry_file, tmp_path / "o", "/nonexistent/remote.git")
    registry_file.write_text(registry_file.read_text().replace(
        "file:///nonexistent/remote.git", "http://127.0.0.1:9/none.git"))
    refused(mx, registry_file, tmp_path / "o", "http://127.0.0.1:9/none.git", "cannot fetch")


def test_invalid_release_is_skipped_or_strict(mx, tmp_path: Path, registry_file: Path,  # type: ignore[no-untyped-def]
                                              repos: dict[str, ExampleRepo]) -> None:
    repo = repos["iris"].path
    (repo / "mx.yaml").write_text(manifest_text("acme/iris", "1.3.0").replace(
        "license: apache-2.0", "license: [not, a, string]"))
    git(repo, "commit", "-qam", "broken")
    git(repo, "tag", "v1.3.0")
    out = tmp_path / "out"
    res = mx("index", "build", registry_file, "-o", out)
    assert res.code == 0
    assert "tag v1.3.0" in res.err and "license" in res.err and "skipped" in res.err
    assert "1.3.0" not in json.loads((out / "index/models/acme/iris.json").read_text())["versions"]
    refused(mx, registry_file, out, "tag v1.3.0", "license", args=("--strict",))


def test_channel_must_name_a_release(mx, tmp_path: Path, registry_file: Path) -> None:  # type: ignore[no-untyped-def]
    registry_file.write_text(registry_file.read_text().replace("stable: 1.1.0", "stable: 7.0.0"))
    refused(mx, registry_file, tmp_path / "o", "channels.acme/iris.stable", "7.0.0")


def test_malformed_registry_yaml(mx, tmp_path: Path, registry_file: Path) -> None:  # type: ignore[no-untyped-def]
    registry_file.write_text("registry: 1\nname: x\nsources: {repo: [\n")
    refused(mx, registry_file, tmp_path / "o", "registry.yaml:", "invalid YAML")
    registry_file.write_text(REGISTRY_YAML.format(mirror="true").replace("registry: 1",
                                                                         "registry: 2"))
    refused(mx, registry_file, tmp_path / "o", "registry.yaml:1", "registry: 2")


def test_url_source_is_mirrored(mx, tmp_path: Path, registry_file: Path,  # type: ignore[no-untyped-def]
                                repos: dict[str, ExampleRepo]) -> None:
    from tests.conftest import push_to

    bare = tmp_path / "remote" / "iris.git"
    bare.parent.mkdir()
    push_to(repos["iris"].path, bare)
    registry_file.write_text(registry_file.read_text().replace(
        "repo: repos/iris", f"repo: {bare.as_uri()}"))
    out = tmp_path / "out"
    res = mx("index", "build", registry_file, "-o", out)
    assert res.code == 0, res.err
    doc = json.loads((out / "index/models/acme/iris.json").read_text())
    assert doc["repo"]["url"] == bare.as_uri()
    assert len(doc["versions"]) == 4


def test_stale_models_are_removed(mx, registry_file: Path, built: Path) -> None:  # type: ignore[no-untyped-def]
    registry_file.write_text(registry_file.read_text().replace(
        "  - repo: repos/mono\n    models: [vision/resnet]\n", ""))
    assert mx("index", "build", registry_file, "-o", built).code == 0
    assert not (built / "index/models/acme/resnet.json").exists()
    assert not (built / "cards/acme/resnet").exists()


def release_with_card(repo: Path, version: str, card: str) -> None:
    (repo / "README.md").write_text(card)
    (repo / "mx.yaml").write_text(manifest_text("acme/iris", version))
    git(repo, "commit", "-qam", f"card of {version}")
    git(repo, "tag", f"v{version}")


def test_release_whose_card_fails_validate_is_skipped_or_strict(  # type: ignore[no-untyped-def]
        mx, tmp_path: Path, registry_file: Path, repos: dict[str, ExampleRepo]) -> None:
    from tests.support.examples import card_text

    card = card_text("acme/iris").replace("tags: [example]", "tags: [example, {a: 1}]")
    card = card.replace("## Evaluation\n", "## Notes\n")
    release_with_card(repos["iris"].path, "1.3.0", card)
    out = tmp_path / "out"
    res = mx("index", "build", registry_file, "-o", out)
    assert res.code == 0, res.err
    where = "source repos/iris, tag v1.3.0: "
    assert f"warning: {where}README.md:5: front matter tags[1]: a mapping is not a string" \
        in res.err
    assert f"warning: {where}README.md:" in res.err and \
        "section 'Evaluation' is missing" in res.err
    assert f"{where}fails `mx validate` (2 problems) (release skipped)" \
        in res.err
    doc = json.loads((out / "index/models/acme/iris.json").read_text())
    assert "1.3.0" not in doc["versions"] and "1.1.0" in doc["versions"]
    refused(mx, registry_file, out, "tag v1.3.0", "fails `mx validate`", "tags[1]",
            "section 'Evaluation' is missing", args=("--strict",))


def test_registry_card_rules_apply_to_the_build(  # type: ignore[no-untyped-def]
        mx, tmp_path: Path, registry_file: Path, repos: dict[str, ExampleRepo]) -> None:
    from tests.support.examples import card_text

    repo = repos["iris"].path
    release_with_card(repo, "1.3.0", card_text("acme/iris").replace("## Bias and risks\n",
                                                                    "## Notes\n"))
    sign_all_releases(repo, registry_file.parent / "keys" / "acme.pem")
    out = tmp_path / "out"
    res = mx("index", "build", registry_file, "-o", out)
    assert "section 'Bias and risks' is missing" in res.err
    registry_file.write_text(registry_file.read_text() + "card:\n  required_sections: "
                             "[Model details, Intended use, Evaluation]\n")
    res = mx("index", "build", registry_file, "-o", out)
    assert res.code == 0 and "skipped" not in res.err, res.err
    assert "1.3.0" in json.loads((out / "index/models/acme/iris.json").read_text())["versions"]


def test_rebuild_parses_no_card_again(mx, tmp_path: Path, registry_file: Path,  # type: ignore[no-untyped-def]
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    assert mx("index", "build", registry_file, "-o", out).code == 0
    verdicts = json.loads((tmp_path / "mxhome/build/release-checks.json").read_text())
    assert len(verdicts) == 5 and all(v == [] for v in verdicts.values())  # 4 iris + resnet

    from mx.index_builder import releasecheck

    parsed: list[str] = []
    real = releasecheck.card_problems

    def counting(text: str, shown: str, *rest: Any) -> Any:
        parsed.append(shown)
        return real(text, shown, *rest)

    monkeypatch.setattr(releasecheck, "card_problems", counting)
    res = mx("index", "build", registry_file, "-o", out, "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["documents_written"] == 0 and parsed == []
    # New rules are a new verdict: every card is judged again.
    registry_file.write_text(registry_file.read_text() + "card:\n  required_sections: "
                             "[Evaluation]\n")
    assert mx("index", "build", registry_file, "-o", out).code == 0
    assert len(parsed) == 5
