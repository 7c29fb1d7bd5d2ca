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
