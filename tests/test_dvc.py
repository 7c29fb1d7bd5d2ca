"""DVC as an artifact store: `.dvc` pointers in `mx validate`, `mx index build`, `mx install`.

The model repositories are made with the real `dvc` command when one is found
(MX_TEST_DVC, else `dvc` on PATH: `dvc init`, `dvc add`, `dvc remote add` of a local
folder, `dvc push`), and by hand in DVC 3's documented layout always, so the tests run
without dvc too (mx reads DVC's formats itself and never imports dvc).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
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

# The real dvc (a test dependency: `make test` installs it), beside this interpreter.
DVC = (os.environ.get("MX_TEST_DVC") or shutil.which("dvc")
       or next((str(p) for p in [Path(sys.executable).parent / "dvc"] if p.exists()), None))
NAME = "acme/dvcnet"
REGISTRY = """\
registry: 1
name: DVC registry
base_url: http://127.0.0.1/
mirror_artifacts: {mirror}
sources:
  - repo: repo
namespaces:
  acme:
    signers:
      - {{public_key: keys/acme.pub}}
"""


def dvc(repo: Path, *args: str) -> None:
    assert DVC is not None
    subprocess.run([DVC, *args], cwd=repo, check=True, capture_output=True, text=True,
                   env={**os.environ, "DVC_NO_ANALYTICS": "1"})


def dvc_by_hand(repo: Path, remote: str) -> None:
    """What `dvc init`, `dvc add model.onnx`, `dvc remote add -d` and `dvc push` leave,
    written from DVC 3's documented formats."""
    data = (repo / "model.onnx").read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    (repo / ".dvc" / "config").write_text(
        f"[core]\n    remote = store\n['remote \"store\"']\n    url = {remote}\n")
    (repo / "model.onnx.dvc").write_text(
        f"outs:\n- md5: {md5}\n  size: {len(data)}\n  hash: md5\n  path: model.onnx\n")
    (repo / ".gitignore").write_text("/model.onnx\n")
    rel = f"files/md5/{md5[:2]}/{md5[2:]}"
    for store in (repo / ".dvc" / "cache", repo / ".dvc" / remote):
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        (store / rel).write_bytes(data)


def dvc_repo(repo: Path) -> None:
    """A new git repository with DVC initialised in it (analytics off)."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")


def release(mx, repo: Path, version: str, key: Path, seed: int | None = None,  # type: ignore[no-untyped-def]
            manifest: str | None = None) -> None:
    """Write mx.yaml (`manifest`, else the example's) and the card, validate --write,
    commit, tag v`version`, sign."""
    (repo / "mx.yaml").write_text(manifest or manifest_text(NAME, version))
    (repo / "README.md").write_text(card_text(NAME))
    res = mx("validate", "--write", repo)
    assert res.code == 0, res.out + res.err
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"release {version}")
    git(repo, "tag", "-a", f"v{version}", "-m", f"release {version}")
    sign_all_releases(repo, key)


@pytest.fixture(params=["by-hand", "dvc"])
def world(request: pytest.FixtureRequest, tmp_path: Path, mx) -> Path:  # type: ignore[no-untyped-def]
    """tmp/world: repo/ (git + DVC, model.onnx tracked by model.onnx.dvc, tagged v1.0.0
    and signed), dvc-remote/ (a local DVC remote holding the object), registry.yaml."""
    if request.param == "dvc" and DVC is None:
        pytest.fail("dvc is not installed: pip install -e '.[test]' (or set MX_TEST_DVC)")
    root = tmp_path / "world"
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    linear_classifier(repo / "model.onnx", seed=7)
    if request.param == "dvc":
        dvc(repo, "init", "-q")
        dvc(repo, "config", "core.analytics", "false")
        dvc(repo, "add", "-q", "model.onnx")
        dvc(repo, "remote", "add", "-d", "store", "../dvc-remote")
        dvc(repo, "push", "-q")
    else:
        dvc_by_hand(repo, "../../dvc-remote")
    private, _ = make_signing_key(root / "keys", "acme")
    release(mx, repo, "1.0.0", private)
    (root / "registry.yaml").write_text(REGISTRY.format(mirror="true"))
    return root


def pointer(world: Path) -> Path:
    return world / "repo" / "model.onnx.dvc"


def object_files(world: Path) -> list[Path]:
    return [p for d in (world / "dvc-remote", world / "repo" / ".dvc" / "cache")
            for p in d.rglob("*") if p.is_file()]


def test_layout_is_dvcs(world: Path) -> None:
    data = (world / "repo" / "model.onnx").read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    assert f"md5: {md5}" in pointer(world).read_text()
    assert (world / "dvc-remote" / "files" / "md5" / md5[:2] / md5[2:]).read_bytes() == data
    tracked = git(world / "repo", "ls-files").split()
    assert "model.onnx.dvc" in tracked and "model.onnx" not in tracked


def test_validate_passes(mx, world: Path) -> None:  # type: ignore[no-untyped-def]
    repo = world / "repo"
    res = mx("validate", repo)
    assert res.code == 0, res.out + res.err
    # Only in the DVC cache (after `git clone` + `dvc fetch`): checked there.
    (repo / "model.onnx").unlink()
    res = mx("validate", repo)
    assert res.code == 0, res.out + res.err
    # Nowhere on this machine: the pointer is checked; a warning says the bytes were not.
    shutil.rmtree(repo / ".dvc" / "cache")
    res = mx("validate", repo)
    assert res.code == 0, res.out + res.err
    assert "warning" in res.out + res.err and "dvc pull" in res.out + res.err


@pytest.mark.parametrize(("edit", "says"), [
    (lambda t: re.sub(r"md5: [0-9a-f]{32}", "md5: " + "0" * 32, t), "has md5"),
    (lambda t: t.replace("path: model.onnx", "path: ../x"), "contains '..'"),
    (lambda t: t.replace("size: ", "size: 99999999999999999", 1), "is not a byte count"),
    (lambda t: "outs: [\n  - {md5: [", "invalid YAML"),
    (lambda t: t.replace("md5: ", "md5: X", 1), "is not 32 lower-case hex digits"),
], ids=["wrong-md5", "traversal", "absurd-size", "not-yaml", "not-hex"])
def test_tampered_pointer_fails_with_one_line(mx, world: Path, edit, says) -> None:  # type: ignore[no-untyped-def]
    pointer(world).write_text(edit(pointer(world).read_text()))
    res = mx("validate", world / "repo")
    assert res.code == 1
    lines = [ln for ln in (res.out + res.err).splitlines() if "model.onnx.dvc" in ln]
    assert len(lines) == 1, res.out + res.err
    assert says in lines[0], lines[0]


def test_manifest_size_must_agree(mx, world: Path) -> None:  # type: ignore[no-untyped-def]
    repo = world / "repo"
    text = (repo / "mx.yaml").read_text()
    size = (repo / "model.onnx").stat().st_size
    (repo / "mx.yaml").write_text(text.replace(f"size: {size}", f"size: {size + 1}"))
    res = mx("validate", repo)
    assert res.code == 1 and "model.onnx.dvc says" in res.out + res.err


def build(mx, world: Path, out: Path, *args: str) -> dict:  # type: ignore[no-untyped-def]
    res = mx("index", "build", world / "registry.yaml", "-o", out, "--no-site", "--json",
             *args)
    assert res.code == 0, res.out + res.err
    return json.loads(res.out)  # type: ignore[no-any-return]


def artifact_record(out: Path, version: str = "1.0.0") -> dict:  # type: ignore[type-arg]
    doc = json.loads((out / "index" / "models" / "acme" / "dvcnet.json").read_text())
    [art] = doc["versions"][version]["artifacts"]
    return art  # type: ignore[no-any-return]


def test_build_mirrors_and_install_verifies(mx, world: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = (world / "repo" / "model.onnx").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    out = tmp_path / "site"
    summary = build(mx, world, out)
    assert summary["artifacts_written"] == 1 and not summary["warnings"]
    art = artifact_record(out)
    assert (art["sha256"], art["size"]) == (sha, len(data))
    assert art["urls"] == [f"artifacts/sha256/{sha}"]
    assert (out / "artifacts" / "sha256" / sha).read_bytes() == data
    with static_host(out) as host:
        res = mx("install", f"{NAME}@1.0.0", "--registry", host.url, "--json")
    assert res.code == 0, res.out + res.err
    [got] = json.loads(res.out)
    assert Path(got["files"]["model.onnx"]).read_bytes() == data

    # A rebuild reads no object again: with every copy gone, a new release of the same
    # object gets its sha256 from the build cache (by DVC's md5).
    release(mx, world / "repo", "1.0.1", world / "keys" / "acme.pem")
    for p in object_files(world):
        p.unlink()
    summary = build(mx, world, out)
    assert not summary["warnings"], summary["warnings"]
    assert artifact_record(out, "1.0.1")["sha256"] == sha


def test_local_remote_is_mirrored_even_without_mirroring(mx, world: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (world / "registry.yaml").write_text(REGISTRY.format(mirror="false"))
    shutil.rmtree(world / "repo" / ".dvc" / "cache")  # read from the local remote
    out = tmp_path / "site"
    build(mx, world, out)
    art = artifact_record(out)
    assert art["urls"] == [f"artifacts/sha256/{art['sha256']}"]
    assert (out / "artifacts" / "sha256" / art["sha256"]).is_file()


def test_http_remote_url_is_published(mx, world: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = world / "repo"
    data = (repo / "model.onnx").read_bytes()
    md5, sha = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
    (world / "registry.yaml").write_text(REGISTRY.format(mirror="false"))
    with static_host(world / "dvc-remote") as remote:
        config = repo / ".dvc" / "config"
        config.write_text(config.read_text().replace(
            config.read_text().split("url = ")[1].strip(), remote.url.rstrip("/")))
        git(repo, "commit", "-qam", "remote on http")
        release(mx, repo, "1.1.0", world / "keys" / "acme.pem")
        shutil.rmtree(repo / ".dvc" / "cache")  # the builder must read the object over HTTP
        out = tmp_path / "site"
        summary = build(mx, world, out)
        assert not summary["warnings"], summary["warnings"]
        art = artifact_record(out, "1.1.0")
        assert art["sha256"] == sha
        assert art["urls"] == [f"{remote.url.rstrip('/')}/files/md5/{md5[:2]}/{md5[2:]}"]
        # 1.0.0's config names the local folder: that object is mirrored all the same
        assert artifact_record(out, "1.0.0")["urls"] == [f"artifacts/sha256/{sha}"]
        with static_host(out) as host:
            res = mx("install", f"{NAME}@1.1.0", "--registry", host.url, "--json")
        assert res.code == 0, res.out + res.err
        assert Path(json.loads(res.out)[0]["files"]["model.onnx"]).read_bytes() == data


def test_bad_object_skips_the_release(mx, world: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Both copies of the object altered: its md5 no longer matches the pointer.
    for p in object_files(world):
        p.chmod(0o644)
        p.write_bytes(b"not the model")
    res = mx("index", "build", world / "registry.yaml", "-o", tmp_path / "a", "--no-site")
    assert res.code == 0
    assert "model.onnx.dvc: the object at" in res.err and "release skipped" in res.err
    res = mx("index", "build", world / "registry.yaml", "-o", tmp_path / "b", "--no-site",
             "--strict")
    assert res.code == 1 and "model.onnx.dvc" in res.err


def test_manifest_sha256_must_agree_at_the_tag(mx, world: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = world / "repo"
    sha = hashlib.sha256((repo / "model.onnx").read_bytes()).hexdigest()
    (repo / "mx.yaml").write_text((repo / "mx.yaml").read_text().replace(sha, "f" * 64))
    git(repo, "commit", "-qam", "wrong sha256")
    git(repo, "tag", "-a", "v1.0.0", "-f", "-m", "retagged")
    sign_all_releases(repo, world / "keys" / "acme.pem")
    res = mx("index", "build", world / "registry.yaml", "-o", tmp_path / "a", "--no-site",
             "--strict")
    assert res.code == 1 and "but its DVC object" in res.err, res.err


def test_init_dvc_pipeline(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    model = tmp_path / "m"
    res = mx("init", model, "--name", NAME, "--dvc")
    assert res.code == 0, res.err
    stages = yaml.safe_load((model / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((model / "params.yaml").read_text())
    assert list(stages) == ["convert", "optimize", "bench"]
    for name, stage in stages.items():
        # DVC's stage schema: cmd, deps, params (top-level keys of params.yaml), outs
        assert set(stage) <= {"cmd", "deps", "params", "outs"}, name
        assert stage["cmd"].startswith(f"mx {name} . ")
        assert all(p in params for p in stage["params"])
    # every ${section.key} resolves from params.yaml, as DVC's templating requires
    text = (model / "dvc.yaml").read_text()
    for ref in re.findall(r"\$\{([a-z_.]+)\}", text):
        section, key = ref.split(".")
        assert key in params[section], ref
    assert "model.onnx" in stages["convert"]["outs"]
    assert stages["bench"]["outs"] == [{"bench/results.json": {"cache": False}}]
    if DVC is None:
        return
    # DVC itself parses it: the graph, and the commands it would run
    git(model, "init", "-q")
    dvc(model, "init", "-q")
    (model / "train.py").write_text("def build(): ...\n")
    proc = subprocess.run([DVC, "dag"], cwd=model, capture_output=True, text=True, check=True)
    assert all(s in proc.stdout for s in ("convert", "optimize", "bench"))
    proc = subprocess.run([DVC, "repro", "--dry", "convert"], cwd=model, capture_output=True,
                          text=True, check=True)
    assert "mx convert . train.py:build --from pytorch --opset 17" in proc.stdout
