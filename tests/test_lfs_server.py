"""Against giftless, a real Git LFS server: git-lfs pushes to it, mx reads through its
batch API (the builder to mirror, the client through lfs+ URLs)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import push_to
from tests.support.examples import make_model_repo, make_signing_key, sign_all_releases
from tests.support.servers import LfsServer, static_host


def published(tmp_path: Path, lfs_server: LfsServer, repo_name: str,
              skip_lfs_push: bool = False) -> Path:
    """A model repo whose LFS objects live only on giftless; returns the bare remote."""
    endpoint = lfs_server.endpoint("acme", repo_name)
    repo = make_model_repo(tmp_path / "work" / repo_name, f"acme/{repo_name}",
                           ["1.0.0", "1.1.0"], lfs_url=endpoint)
    private, _ = make_signing_key(tmp_path / "keys", "acme")
    sign_all_releases(repo.path, private)
    bare = tmp_path / "remotes" / f"{repo_name}.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    if skip_lfs_push:
        import os

        os.environ["GIT_LFS_SKIP_PUSH"] = "1"
        try:
            push_to(repo.path, bare)
        finally:
            del os.environ["GIT_LFS_SKIP_PUSH"]
    else:
        push_to(repo.path, bare)
    assert not (bare / "lfs").exists()  # the bare remote holds pointers only
    return bare


def registry(tmp_path: Path, bare: Path, mirror: bool) -> Path:
    path = tmp_path / f"registry-{bare.stem}-{mirror}.yaml"
    path.write_text(f"registry: 1\nname: LFS\nmirror_artifacts: {str(mirror).lower()}\n"
                    f"sources:\n  - repo: {bare}\n"
                    f"namespaces:\n  acme:\n    signers: [{{public_key: keys/acme.pub}}]\n")
    return path


def test_objects_reached_giftless(tmp_path: Path, lfs_server: LfsServer) -> None:
    published(tmp_path, lfs_server, "pushed")
    stored = [p for p in lfs_server.storage.rglob("*") if p.is_file()]
    assert len(stored) >= 2


def test_builder_mirrors_through_batch_api(mx, tmp_path: Path, lfs_server: LfsServer) -> None:  # type: ignore[no-untyped-def]
    bare = published(tmp_path, lfs_server, "mirrored")
    out = tmp_path / "out"
    res = mx("index", "build", registry(tmp_path, bare, True), "-o", out, "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["artifacts_written"] == 2
    doc = json.loads((out / "index/models/acme/mirrored.json").read_text())
    art = doc["versions"]["1.1.0"]["artifacts"][0]
    assert art["urls"] == [f"artifacts/sha256/{art['sha256']}",
                           f"lfs+{lfs_server.endpoint('acme', 'mirrored')}#{art['sha256']}"]
    assert (out / art["urls"][0]).stat().st_size == art["size"]
    with static_host(out) as host:
        res = mx("install", "acme/mirrored@^1", "--registry", host.url)
        assert res.code == 0, res.err


def test_client_installs_through_lfs_url(mx, tmp_path: Path, lfs_server: LfsServer) -> None:  # type: ignore[no-untyped-def]
    bare = published(tmp_path, lfs_server, "direct")
    out = tmp_path / "out"
    res = mx("index", "build", registry(tmp_path, bare, False), "-o", out)
    assert res.code == 0, res.err
    assert not (out / "artifacts").exists()
    doc = json.loads((out / "index/models/acme/direct.json").read_text())
    assert doc["versions"]["1.0.0"]["artifacts"][0]["urls"][0].startswith("lfs+http://")
    with static_host(out) as host:
        res = mx("install", "acme/direct@1.0.0", "--registry", host.url, "--json")
        assert res.code == 0, res.err
        path = Path(json.loads(res.out)[0]["files"]["model.onnx"])
        import onnx

        onnx.checker.check_model(str(path))
        # Only the index came from the static host; the artifact came from giftless.
        assert not any("artifacts" in p for p, _, _ in host.faults.requests)
    # A rebuild asks the LFS server nothing new (the objects are known to exist).
    res = mx("index", "build", registry(tmp_path, bare, False), "-o", out, "--json")
    assert json.loads(res.out)["documents_written"] == 0


def test_missing_object_on_server_is_refused(mx, tmp_path: Path, lfs_server: LfsServer) -> None:  # type: ignore[no-untyped-def]
    bare = published(tmp_path, lfs_server, "unpushed", skip_lfs_push=True)
    out = tmp_path / "out"
    res = mx("index", "build", registry(tmp_path, bare, False), "-o", out)
    assert res.code == 1
    first = res.err.splitlines()[0]
    assert "tag v1.0.0" in first and "model.onnx" in first and "missing on" in first
    assert "git lfs push" in res.err
    assert not out.exists()
