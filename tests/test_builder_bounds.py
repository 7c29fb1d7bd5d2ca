"""What a model repo may not make the builder do: copy another local repository's LFS
objects into the public output, publish a signature clients would refuse, or list a
plain-git artifact at a URL that is never written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.examples import git, make_model_repo, make_signing_key, sign_all_releases
from tests.support.servers import static_host

REGISTRY = """\
registry: 1
name: Bounds
mirror_artifacts: {mirror}
sources:
  - repo: {repo}
namespaces:
  acme:
    signers: [{{public_key: keys/acme.pub}}]
"""


def registry(tmp_path: Path, repo: Path, mirror: bool = True) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY.format(mirror=str(mirror).lower(), repo=repo))
    return path


def test_lfsconfig_naming_another_local_repository_is_refused(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    private_repo = make_model_repo(tmp_path / "private", "secret/weights", ["1.0.0"])
    repo = make_model_repo(tmp_path / "evil", "acme/evil", ["1.0.0"],
                           lfs_url=private_repo.path.as_uri())
    private, _ = make_signing_key(tmp_path / "keys", "acme")
    sign_all_releases(repo.path, private)
    out = tmp_path / "out"
    res = mx("index", "build", registry(tmp_path, repo.path), "-o", out)
    assert res.code == 1, res.err
    first = res.err.splitlines()[0]
    assert ".lfsconfig" in first and "neither an http(s) LFS server nor this repository" in first
    assert not (out / "artifacts").exists()


def test_signature_over_the_shared_limit_is_never_made(mx, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_model_repo(tmp_path / "iris", "acme/iris", ["1.0.0"])
    private, _ = make_signing_key(tmp_path / "keys", "acme")
    # The limit is one constant shared by signer, builder and client; a small value here
    # stands in for a release of 100,000 files.
    monkeypatch.setattr("mx.sign.release.MAX_BUNDLE_BYTES", 1000)
    res = mx("sign", repo.path, "--tag", "v1.0.0", "--key", private)
    assert res.code == 1, res.err
    assert "over the 1,000-byte limit clients accept" in res.err.splitlines()[0]
    assert git(repo.path, "notes", "--ref", "refs/notes/mx-signatures", "list").strip() == ""
    monkeypatch.undo()
    sign_all_releases(repo.path, private)
    monkeypatch.setattr("mx.index_builder.signatures.MAX_BUNDLE_BYTES", 1000)
    res = mx("index", "build", registry(tmp_path, repo.path), "-o", tmp_path / "out")
    assert res.code == 1 and "over the 1,000-byte limit clients accept" in res.err


def test_plain_git_artifact_is_published_without_mirroring(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_model_repo(tmp_path / "iris", "acme/iris", ["1.0.0"])
    (repo.path / ".gitattributes").write_text("")  # model.onnx is now a plain git blob
    git(repo.path, "rm", "-q", "--cached", "model.onnx")
    git(repo.path, "add", "-A")
    git(repo.path, "commit", "-qm", "plain")
    git(repo.path, "tag", "-d", "v1.0.0")
    git(repo.path, "tag", "-a", "-m", "release", "v1.0.0")
    private, _ = make_signing_key(tmp_path / "keys", "acme")
    sign_all_releases(repo.path, private)
    out = tmp_path / "out"
    res = mx("index", "build", registry(tmp_path, repo.path, mirror=False), "-o", out)
    assert res.code == 0, res.err
    doc = json.loads((out / "index/models/acme/iris.json").read_text())
    [url] = doc["versions"]["1.0.0"]["artifacts"][0]["urls"]
    assert (out / url).is_file()
    with static_host(out) as host:
        res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 0, res.err


def test_relative_cache_dir(mx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    repo = make_model_repo(tmp_path / "iris", "acme/iris", ["1.0.0"])
    private, _ = make_signing_key(tmp_path / "keys", "acme")
    sign_all_releases(repo.path, private)
    reg = registry(tmp_path, repo.path)
    monkeypatch.chdir(tmp_path)
    res = mx("index", "build", "registry.yaml", "-o", "out", "--cache-dir", "build-cache")
    assert res.code == 0, res.err
    assert (tmp_path / "out/tuf/timestamp.json").is_file() and reg.is_file()
    assert (tmp_path / "build-cache").is_dir()


def test_plain_git_onnx_is_checked_as_mx_validate_checks_it(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_model_repo(tmp_path / "iris", "acme/iris", ["1.0.0"])
    (repo.path / ".gitattributes").write_text("")  # model.onnx is now a plain git blob
    git(repo.path, "rm", "-q", "--cached", "model.onnx")
    manifest = repo.path / "mx.yaml"
    manifest.write_text(manifest.read_text().replace("shape: [batch, 3]", "shape: [batch, 7]"))
    git(repo.path, "add", "-A")
    git(repo.path, "commit", "-qm", "plain, and a signature the graph does not have")
    git(repo.path, "tag", "-d", "v1.0.0")
    git(repo.path, "tag", "-a", "-m", "release", "v1.0.0")
    private, _ = make_signing_key(tmp_path / "keys", "acme")
    sign_all_releases(repo.path, private)
    out = tmp_path / "out"
    res = mx("index", "build", registry(tmp_path, repo.path, mirror=False), "-o", out)
    assert res.code == 0, res.err
    where = f"source {repo.path}, tag v1.0.0: "
    assert (f"{where}mx.yaml: artifacts[0] model.onnx: output 'probabilities' axis 1 is 3 in "
            "the graph but 7 in the signature") in res.err, res.err
    assert f"{where}fails `mx validate` (1 problem) (release skipped)" in res.err
    assert not (out / "index/models/acme/iris.json").exists()
    res = mx("validate", repo.path)  # the same verdict, from the work tree
    assert "output 'probabilities' axis 1 is 3 in the graph but 7 in the signature" in res.out
