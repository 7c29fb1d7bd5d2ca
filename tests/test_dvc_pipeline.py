"""DVC pipeline outputs: an artifact that `dvc repro` made, recorded only in dvc.lock, through
`mx validate`, `mx sign`, `mx index build` and `mx install`.

The repositories are made with the real `dvc` (`dvc stage add`, `dvc repro`, a local remote,
`dvc push`: DVC 3's layout), and by hand in DVC 2's layout (no `hash: md5`, objects at
`<2>/<30>`), which the installed DVC 3 is then asked to read back (`dvc checkout`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.support.examples import (
    card_text,
    git,
    linear_classifier,
    make_signing_key,
    manifest_text,
    sign_all_releases,
)
from tests.support.servers import static_host
from tests.test_dvc import DVC, NAME, REGISTRY, artifact_record, build, dvc, dvc_repo

STAGE_CMD = "cp ../seed.onnx model.onnx"


def release(mx, repo: Path, model_dir: str, version: str, key: Path) -> None:  # type: ignore[no-untyped-def]
    model = repo / model_dir
    (model / "mx.yaml").write_text(manifest_text(NAME, version))
    (model / "README.md").write_text(card_text(NAME))
    res = mx("validate", "--write", model)
    assert res.code == 0, res.out + res.err
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"release {version}")
    prefix = "" if model_dir == "." else f"{model_dir}/"
    git(repo, "tag", "-a", f"{prefix}v{version}", "-m", f"release {version}")
    sign_all_releases(repo, key, model_dir)


def by_hand_dvc2(repo: Path, model_dir: str, remote: str) -> None:
    """What DVC 2's `dvc init`, `dvc stage add -n convert -o model.onnx`, `dvc repro`,
    `dvc remote add -d` and `dvc push` leave: dvc.yaml and dvc.lock at the repository's root,
    the lock without `hash: md5`, objects at `<md5[:2]>/<md5[2:]>`."""
    out = (model_dir + "/model.onnx").removeprefix("./")
    data = (repo / out).read_bytes()
    assert b"\0" in data[:512]  # binary: DVC 2's md5-dos2unix is the plain md5
    md5 = hashlib.md5(data).hexdigest()
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    (repo / ".dvc" / "config").write_text(
        f"[core]\n    remote = store\n['remote \"store\"']\n    url = {remote}\n")
    (repo / "dvc.yaml").write_text(f"stages:\n  convert:\n    cmd: {STAGE_CMD}\n"
                                   f"    outs:\n    - {out}\n")
    (repo / "dvc.lock").write_text(
        f"schema: '2.0'\nstages:\n  convert:\n    cmd: {STAGE_CMD}\n    outs:\n"
        f"    - path: {out}\n      md5: {md5}\n      size: {len(data)}\n")
    (repo / ".gitignore").write_text(f"/{out}\n")
    for store in (repo / ".dvc" / "cache", repo / ".dvc" / remote):
        (store / md5[:2] / md5[2:]).parent.mkdir(parents=True, exist_ok=True)
        (store / md5[:2] / md5[2:]).write_bytes(data)


def with_dvc(repo: Path, model_dir: str) -> None:
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    if model_dir == ".":
        dvc(repo, "stage", "add", "-q", "-n", "convert", "-o", "model.onnx", STAGE_CMD)
    else:  # dvc.yaml at the root, its output in the model's folder
        dvc(repo, "stage", "add", "-q", "-n", "convert", "-o", f"{model_dir}/model.onnx",
            f"cp ../seed.onnx {model_dir}/model.onnx")
    dvc(repo, "repro", "-q")
    dvc(repo, "remote", "add", "-d", "store", "../dvc-remote")
    dvc(repo, "push", "-q")


@pytest.fixture(params=["dvc", "dvc-subdir", "by-hand-dvc2"])
def world(request: pytest.FixtureRequest, tmp_path: Path, mx) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    """(tmp/world, model dir): repo/ with model.onnx an output of stage `convert` in
    dvc.lock (no .dvc file), tagged and signed; dvc-remote/ holding the object."""
    return make_world(request.param, tmp_path, mx)


@pytest.fixture(params=["dvc", "by-hand-dvc2"])
def flat(request: pytest.FixtureRequest, tmp_path: Path, mx) -> Path:  # type: ignore[no-untyped-def]
    """tmp/world as `world` makes it, with the model at the repository's root."""
    return make_world(request.param, tmp_path, mx)[0]


def make_world(kind: str, tmp_path: Path, mx) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    if kind != "by-hand-dvc2" and DVC is None:
        pytest.fail("dvc is not installed: pip install -e '.[test]' (or set MX_TEST_DVC)")
    root = tmp_path / "world"
    repo = root / "repo"
    model_dir = "models/net" if kind == "dvc-subdir" else "."
    (repo / model_dir).mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    linear_classifier(root / "seed.onnx", seed=11)
    if kind == "by-hand-dvc2":
        shutil.copyfile(root / "seed.onnx", repo / "model.onnx")
        by_hand_dvc2(repo, model_dir, "../../dvc-remote")
        if DVC is not None:  # DVC itself reads the lock and the cache as written
            (repo / "model.onnx").unlink()
            dvc(repo, "checkout", "-q")
            assert (repo / "model.onnx").read_bytes() == (root / "seed.onnx").read_bytes()
    else:
        with_dvc(repo, model_dir)
    private, _ = make_signing_key(root / "keys", "acme")
    release(mx, repo, model_dir, "1.0.0", private)
    (root / "registry.yaml").write_text(REGISTRY.format(mirror="true"))
    return root, model_dir


def test_output_is_only_in_dvc_lock_and_signed(world: tuple[Path, str]) -> None:
    from mx.gitrepo import open_repo
    from mx.sign.notes import read_signatures, tree_digests

    root, model_dir = world
    repo = root / "repo"
    tracked = git(repo, "ls-files").split()
    out = f"{model_dir}/model.onnx".removeprefix("./")
    assert "dvc.lock" in tracked and out not in tracked and f"{out}.dvc" not in tracked
    assert f"path: {out}" in (repo / "dvc.lock").read_text()
    # `mx sign` signed the output with the sha256 of its content, from the DVC cache
    git_repo = open_repo(repo)
    commit = str(git_repo.revparse_single("HEAD").id)
    sha = hashlib.sha256((root / "seed.onnx").read_bytes()).hexdigest()
    assert tree_digests(git_repo, commit, model_dir)["model.onnx"] == sha
    assert model_dir in read_signatures(git_repo, commit)


def test_validate_build_install(mx, world: tuple[Path, str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, model_dir = world
    repo, model = root / "repo", root / "repo" / model_dir
    data = (root / "seed.onnx").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert f"sha256: {sha}" in (model / "mx.yaml").read_text()  # validate --write read it
    # Only in the DVC cache: its object is checked there.
    (model / "model.onnx").unlink()
    res = mx("validate", model)
    assert res.code == 0, res.out + res.err
    # Nowhere here: the lock's pointer is checked, a warning says the bytes were not; and
    # the builder reads the object from the local remote (.dvc/config at the tag).
    shutil.rmtree(repo / ".dvc" / "cache")
    res = mx("validate", model)
    assert res.code == 0 and "dvc pull" in res.out + res.err, res.out + res.err
    out = tmp_path / "site"
    summary = build(mx, root, out)
    assert summary["artifacts_written"] == 1 and not summary["warnings"], summary
    art = artifact_record(out)
    assert (art["sha256"], art["size"]) == (sha, len(data))
    assert (out / "artifacts" / "sha256" / sha).read_bytes() == data
    with static_host(out) as host:
        res = mx("install", f"{NAME}@^1", "--registry", host.url, "--json")
    assert res.code == 0, res.out + res.err
    [got] = json.loads(res.out)
    assert got["signed"] is True
    assert Path(got["files"]["model.onnx"]).read_bytes() == data


def tamper(root: Path, old: str, new: str) -> None:
    lock = root / "repo" / "dvc.lock"
    text = lock.read_text()
    assert old in text, text
    lock.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(("old", "new", "says"), [
    ("md5: ", "md5: 0", "is not 32 lower-case hex digits"),
    ("path: ", "path: ../", "contains '..'"),
    ("path: ", "path: /", "is absolute"),
    ("path: ", "path: s3://bucket/", "is a URL (an external output)"),
    ("schema: '2.0'", "schema: '9.0'", "mx reads dvc.lock schema '2.0'"),
    ("stages:", "stages: [", "invalid YAML"),
], ids=["bad-md5", "traversal", "absolute", "url", "schema", "not-yaml"])
def test_hostile_lock_fails_validate_with_one_line(mx, flat: Path, old: str,  # type: ignore[no-untyped-def]
                                                  new: str, says: str) -> None:
    root = flat
    tamper(root, old, new)
    res = mx("validate", root / "repo")
    assert res.code == 1
    lines = [ln for ln in (res.out + res.err).splitlines() if "dvc.lock" in ln]
    assert len(lines) == 1, res.out + res.err
    assert says in lines[0], lines[0]


def test_changed_output_fails_validate(mx, flat: Path) -> None:  # type: ignore[no-untyped-def]
    model = flat / "repo"
    (model / "model.onnx").unlink()  # DVC links from its cache: never write through it
    (model / "model.onnx").write_bytes(b"retrained, not committed")
    res = mx("validate", model)
    assert res.code == 1 and "`dvc commit` (or `dvc repro`)" in res.out + res.err, res.out


def test_directory_output_whose_listing_is_nowhere(mx, flat: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A folder output whose listing object is neither in the cache nor on the remote: its
    files cannot be named, so validate warns and the build skips the release. (Folders
    that DVC wrote: tests/test_dvc_folder.py.)"""
    root = flat
    repo = root / "repo"
    (repo / "dvc.lock").write_text(
        f"schema: '2.0'\nstages:\n  convert:\n    cmd: {STAGE_CMD}\n    outs:\n"
        f"    - path: out/\n      hash: md5\n      md5: {'a' * 32}.dir\n      size: 1\n"
        "      nfiles: 1\n")
    manifest = repo / "mx.yaml"
    manifest.write_text(manifest.read_text().replace("path: model.onnx", "path: out/model.onnx")
                        .replace("version: 1.0.0", "version: 1.0.1"))
    res = mx("validate", repo)
    assert res.code == 0  # as for a file not pulled yet: a warning, nothing to check
    assert f"the folder's listing {'a' * 32}.dir is not in the DVC cache" in res.out + res.err, \
        res.out + res.err
    git(repo, "commit", "-qam", "a directory output")
    git(repo, "tag", "-a", "v1.0.1", "-m", "1.0.1")
    res = mx("index", "build", root / "registry.yaml", "-o", tmp_path / "a", "--no-site",
             "--allow-unsigned")
    assert res.code == 0
    assert "dvc.lock stages.convert.outs[0]: the folder's listing" in res.err, res.err
    assert "release skipped" in res.err


def test_bad_lock_at_the_tag_skips_the_release(mx, flat: Path,  # type: ignore[no-untyped-def]
                                               tmp_path: Path) -> None:
    root = flat
    repo = root / "repo"
    tamper(root, "path: ", "path: ../")
    git(repo, "commit", "-qam", "traversal")
    git(repo, "tag", "-a", "-f", "v1.0.0", "-m", "retagged")
    sign_all_releases(repo, root / "keys" / "acme.pem")
    res = mx("index", "build", root / "registry.yaml", "-o", tmp_path / "a", "--no-site")
    assert res.code == 0
    assert "dvc.lock: stages.convert.outs[0].path '../model.onnx' contains '..'" in res.err
    assert "release skipped" in res.err
    res = mx("index", "build", root / "registry.yaml", "-o", tmp_path / "b", "--no-site",
             "--strict")
    assert res.code == 1 and "dvc.lock" in res.err


def test_an_outputs_own_remote_in_dvc_yaml(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`outs: [{model.onnx: {remote: other}}]` makes `dvc push` send that output to `other`,
    not the default remote; dvc.lock does not say so, dvc.yaml does."""
    if DVC is None:
        pytest.fail("dvc is not installed: pip install -e '.[test]' (or set MX_TEST_DVC)")
    root = tmp_path / "world"
    repo = root / "repo"
    dvc_repo(repo)
    linear_classifier(root / "seed.onnx", seed=3)
    (repo / "dvc.yaml").write_text(f"stages:\n  convert:\n    cmd: {STAGE_CMD}\n    outs:\n"
                                   "    - model.onnx:\n        remote: other\n")
    dvc(repo, "repro", "-q")
    dvc(repo, "remote", "add", "-d", "store", "../dvc-remote")
    dvc(repo, "remote", "add", "other", "../other-remote")
    dvc(repo, "push", "-q")
    data = (root / "seed.onnx").read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    assert (root / "other-remote" / "files" / "md5" / md5[:2] / md5[2:]).is_file()
    assert not (root / "dvc-remote").exists()  # DVC sent it to the output's own remote
    private, _ = make_signing_key(root / "keys", "acme")
    release(mx, repo, ".", "1.0.0", private)
    (root / "registry.yaml").write_text(REGISTRY.format(mirror="false"))
    shutil.rmtree(repo / ".dvc" / "cache")  # only the remote has it
    out = tmp_path / "site"
    summary = build(mx, root, out)
    assert not summary["warnings"], summary["warnings"]
    assert artifact_record(out)["sha256"] == hashlib.sha256(data).hexdigest()
    assert (out / "artifacts" / "sha256" / hashlib.sha256(data).hexdigest()).read_bytes() == data
