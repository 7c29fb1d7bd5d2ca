"""Rebuilds that take unchanged sources from the build memo publish what a fresh build
publishes, notice what changed behind their back, and clean up after a killed build."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.examples import ExampleRepo, git, make_model_repo, sign_all_releases


def tree_bytes(root: Path, skip: tuple[str, ...] = ("tuf/",)) -> dict[str, bytes]:
    """Every published file but the TUF metadata (whose versions count the builds)."""
    return {rel: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and not (rel := p.relative_to(root).as_posix()).startswith(skip)}


def build(mx, registry_file: Path, out: Path, cache: Path) -> dict:  # type: ignore[no-untyped-def,type-arg]
    res = mx("index", "build", registry_file, "-o", out, "--cache-dir", cache, "--json")
    assert res.code == 0, res.err
    return json.loads(res.out)  # type: ignore[no-any-return]


def fresh(mx, registry_file: Path, tmp_path: Path, name: str) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    out = tmp_path / name
    build(mx, registry_file, out, tmp_path / f"{name}-cache")
    return tree_bytes(out)


def test_rebuilds_publish_what_a_fresh_build_does(mx, tmp_path: Path, registry_file: Path,  # type: ignore[no-untyped-def]
                                                  repos: dict[str, ExampleRepo]) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    build(mx, registry_file, out, cache)
    assert list(cache.glob("state/out-*.memo/*.bin"))  # the memo is there
    again = build(mx, registry_file, out, cache)
    assert again["documents_written"] == 0 and again["pages_rendered"] == 0
    assert tree_bytes(out) == fresh(mx, registry_file, tmp_path, "fresh0")

    # a new release in one source, a promotion and a yank in registry.yaml
    make_model_repo(repos["iris"].path, "acme/iris", ["1.3.0"])
    sign_all_releases(repos["iris"].path, registry_file.parent / "keys" / "acme.pem")
    text = registry_file.read_text()
    registry_file.write_text(text.replace("stable: 1.1.0", "stable: 1.3.0").replace(
        '1.2.0: "wrong weights; use 1.1.0"', '1.2.0: "wrong weights", 1.0.0: "old"'))
    changed = build(mx, registry_file, out, cache)
    assert changed["pages_rendered"] == 1  # acme/iris only: acme/resnet came from the memo
    doc = json.loads((out / "index/models/acme/iris.json").read_text())
    assert doc["channels"]["stable"] == "1.3.0" and doc["versions"]["1.0.0"]["yanked"]
    assert tree_bytes(out) == fresh(mx, registry_file, tmp_path, "fresh1")

    # a source leaves the registry: its files go, found from the memo
    registry_file.write_text(registry_file.read_text().replace(
        "  - repo: repos/mono\n    models: [vision/resnet]\n", ""))
    build(mx, registry_file, out, cache)
    assert not (out / "index/models/acme/resnet.json").exists()
    assert not (out / "cards/acme/resnet").exists()
    kept = ("tuf/", "artifacts/")  # mirrored blobs stay (content-addressed, maybe shared)
    fresh(mx, registry_file, tmp_path, "fresh2")
    assert tree_bytes(out, kept) == tree_bytes(tmp_path / "fresh2", kept)


def test_a_file_changed_by_hand_is_published_again(mx, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                   registry_file: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    build(mx, registry_file, out, cache)
    want = tree_bytes(out)
    (out / "cards/acme/iris/1.0.0.md").unlink()
    doc = out / "index/models/acme/resnet.json"
    doc.write_bytes(doc.read_bytes().replace(b"acme/resnet", b"acme/resneT"))
    build(mx, registry_file, out, cache)
    assert tree_bytes(out) == want


def test_a_moved_tag_is_read_again(mx, tmp_path: Path, registry_file: Path,  # type: ignore[no-untyped-def]
                                   repos: dict[str, ExampleRepo]) -> None:
    """The memo never hides a changed source: a release tag moved to a commit whose
    manifest says another version is refused, as a fresh build refuses it."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    build(mx, registry_file, out, cache)
    repo = repos["iris"].path
    git(repo, "commit", "-q", "--allow-empty", "-m", "after the release")
    git(repo, "tag", "-f", "v1.0.0", "HEAD")
    res = mx("index", "build", registry_file, "-o", out, "--cache-dir", cache)
    assert res.code == 1 and "tag v1.0.0" in res.err and "the tag says 1.0.0" in res.err


def test_a_killed_build_is_cleaned_up_by_the_next(mx, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                  registry_file: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    build(mx, registry_file, out, cache)
    left = out / "cards/acme/iris/.1.0.0.md.1a2b3c4d.tmp"  # what a killed writer leaves
    left.write_bytes(b"half")
    (next(cache.glob("state/out-*.memo")) / "building").touch()  # it never finished
    build(mx, registry_file, out, cache)
    assert not left.exists()
    assert not list(cache.glob("state/out-*.memo/building"))
