"""Rebuilds attacked from the side: inputs the memo and the site state do not read
directly (a signer's key file, an artifacts host, another output sharing the cache) must
still give what a fresh build gives."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.test_rebuild_memo import build, fresh, tree_bytes


def test_a_signer_key_replaced_in_place_is_checked_again(mx, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                        registry_file: Path) -> None:
    """registry.yaml names the key by path: the file's bytes change, registry.yaml does
    not. A fresh build refuses the releases signed with the old key; so must a rebuild."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    build(mx, registry_file, out, cache)
    keys = registry_file.parent / "keys"
    shutil.copy(keys / "intruder.pub", keys / "acme.pub")
    res = mx("index", "build", registry_file, "-o", tmp_path / "fresh", "--cache-dir",
             tmp_path / "fresh-cache")
    assert res.code == 1
    again = mx("index", "build", registry_file, "-o", out, "--cache-dir", cache)
    assert again.code == 1, "the rebuild published releases the new key does not verify"


def test_a_mirrored_object_deleted_is_mirrored_again_with_artifacts_url(  # type: ignore[no-untyped-def]
        mx, tmp_path: Path, registry_file: Path) -> None:
    registry_file.write_text(registry_file.read_text().replace(
        "mirror_artifacts: true", "mirror_artifacts: true\nartifacts_url: https://cdn.example/"))
    out, cache = tmp_path / "out", tmp_path / "cache"
    build(mx, registry_file, out, cache)
    objects = sorted((out / "artifacts/sha256").iterdir())
    assert objects
    for p in objects:
        p.unlink()
    build(mx, registry_file, out, cache)
    assert tree_bytes(out) == fresh(mx, registry_file, tmp_path, "fresh")


def test_two_outputs_sharing_one_cache_dir(mx, tmp_path: Path,  # type: ignore[no-untyped-def]
                                           registry_file: Path) -> None:
    """The default cache dir ($MX_HOME/build) serves every output built on the machine:
    what one output's build remembers must not stand for another output's files."""
    one, two, cache = tmp_path / "one", tmp_path / "two", tmp_path / "cache"
    build(mx, registry_file, one, cache)
    registry_file.write_text(registry_file.read_text().replace("stable: 1.1.0",
                                                               "stable: 1.0.0"))
    build(mx, registry_file, two, cache)
    build(mx, registry_file, one, cache)
    assert tree_bytes(one) == fresh(mx, registry_file, tmp_path, "fresh")


def test_one_output_built_from_two_cache_dirs(mx, tmp_path: Path,  # type: ignore[no-untyped-def]
                                              registry_file: Path) -> None:
    """A build with another cache dir changed the output behind the memo's back: models it
    added are not the memo's to keep."""
    out = tmp_path / "out"
    full = registry_file.read_text()
    registry_file.write_text(full.replace("  - repo: repos/mono\n    models: [vision/resnet]\n",
                                          ""))
    build(mx, registry_file, out, tmp_path / "cache-a")
    registry_file.write_text(full)
    build(mx, registry_file, out, tmp_path / "cache-b")
    registry_file.write_text(full.replace("  - repo: repos/mono\n    models: [vision/resnet]\n",
                                          ""))
    build(mx, registry_file, out, tmp_path / "cache-a")
    kept = ("tuf/", "artifacts/")
    fresh(mx, registry_file, tmp_path, "fresh")
    assert tree_bytes(out, kept) == tree_bytes(tmp_path / "fresh", kept)
