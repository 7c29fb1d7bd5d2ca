"""DVC folders: a model whose files one directory output tracks, through `mx validate`,
`mx sign`, `mx index build` and `mx install`.

Made with the real `dvc` (3.x): `dvc add weights` (weights.dvc, `md5: <hex>.dir` naming the
folder's JSON listing), or a stage whose output is the folder `out/` (dvc.lock), a local
remote and `dvc push`. The folder holds the ONNX model and a text vocabulary (artifacts)
and notes that mx.yaml does not list.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.support.examples import (
    git,
    linear_classifier,
    make_signing_key,
    manifest_text,
)
from tests.support.servers import static_host
from tests.test_dvc import DVC, NAME, REGISTRY, build, dvc, dvc_repo
from tests.test_dvc import release as dvc_release

VOCAB = b"[PAD]\r\n[UNK]\r\nhello\r\n"  # CRLF: DVC 3 hashes it as is
MAKE_OUT = ("mkdir -p out/extra && cp ../seed.onnx out/model.onnx && "
            "printf '[PAD]\\r\\n[UNK]\\r\\nhello\\r\\n' > out/vocab.txt && "
            "echo draft > out/extra/notes.txt")


def release(mx, repo: Path, folder: str, version: str, key: Path) -> None:  # type: ignore[no-untyped-def]
    """A release whose artifacts are the folder's model and vocabulary."""
    extra = f"  - path: {folder}/vocab.txt\n    format: other\n    variant: fp32\n"
    manifest = (manifest_text(NAME, version, extra_artifacts=extra)
                .replace("path: model.onnx", f"path: {folder}/model.onnx"))
    dvc_release(mx, repo, version, key, manifest=manifest)


@pytest.fixture(params=["add", "stage"])
def world(request: pytest.FixtureRequest, tmp_path: Path, mx) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    """(tmp/world, the folder): repo/ tagged v1.0.0 and signed, dvc-remote/ holding the
    folder's objects and listing, registry.yaml."""
    if DVC is None:
        pytest.fail("dvc is not installed: pip install -e '.[test]' (or set MX_TEST_DVC)")
    root = tmp_path / "world"
    repo = root / "repo"
    dvc_repo(repo)
    linear_classifier(root / "seed.onnx", seed=5)
    if request.param == "add":
        folder = "weights"
        (repo / folder / "extra").mkdir(parents=True)
        shutil.copyfile(root / "seed.onnx", repo / folder / "model.onnx")
        (repo / folder / "vocab.txt").write_bytes(VOCAB)
        (repo / folder / "extra" / "notes.txt").write_text("draft\n")
        dvc(repo, "add", "-q", folder)
    else:
        folder = "out"
        dvc(repo, "stage", "add", "-q", "-n", "convert", "-o", folder, MAKE_OUT)
        dvc(repo, "repro", "-q")
    dvc(repo, "remote", "add", "-d", "store", "../dvc-remote")
    dvc(repo, "push", "-q")
    private, _ = make_signing_key(root / "keys", "acme")
    release(mx, repo, folder, "1.0.0", private)
    (root / "registry.yaml").write_text(REGISTRY.format(mirror="true"))
    return root, folder


def records(out: Path, version: str = "1.0.0") -> dict[str, dict]:  # type: ignore[type-arg]
    doc = json.loads((out / "index" / "models" / "acme" / "dvcnet.json").read_text())
    return {a["path"]: a for a in doc["versions"][version]["artifacts"]}


def listing_files(root: Path) -> list[Path]:
    return [p for d in (root / "dvc-remote", root / "repo" / ".dvc" / "cache")
            for p in d.rglob("*.dir")]


def test_folder_is_what_dvc_wrote(world: tuple[Path, str]) -> None:
    root, folder = world
    repo = root / "repo"
    assert not git(repo, "ls-files", folder)  # git holds none of the folder's files
    [remote_listing] = [p for p in listing_files(root) if "dvc-remote" in p.parts]
    listed = {e["relpath"]: e["md5"] for e in json.loads(remote_listing.read_bytes())}
    assert listed == {rel: hashlib.md5((repo / folder / rel).read_bytes()).hexdigest()
                      for rel in ("model.onnx", "vocab.txt", "extra/notes.txt")}


def test_build_verifies_the_signature_and_install_gets_the_files(  # type: ignore[no-untyped-def]
        mx, world: tuple[Path, str], tmp_path: Path) -> None:
    root, folder = world
    repo = root / "repo"
    out = tmp_path / "site"
    summary = build(mx, root, out)  # signed: the build checks every file against the note
    assert summary["artifacts_written"] == 2 and not summary["warnings"], summary
    arts = records(out)
    for rel in ("model.onnx", "vocab.txt"):
        data = (repo / folder / rel).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        assert (arts[f"{folder}/{rel}"]["sha256"], arts[f"{folder}/{rel}"]["size"]) == (
            sha, len(data))
        assert (out / "artifacts" / "sha256" / sha).read_bytes() == data
    with static_host(out) as host:
        res = mx("install", f"{NAME}@1.0.0", "--registry", host.url, "--json")
    assert res.code == 0, res.out + res.err
    files = json.loads(res.out)[0]["files"]
    assert Path(files[f"{folder}/vocab.txt"]).read_bytes() == VOCAB
    assert Path(files[f"{folder}/model.onnx"]).read_bytes() == (root / "seed.onnx").read_bytes()


def test_http_remote_listing_and_objects(mx, world: tuple[Path, str],  # type: ignore[no-untyped-def]
                                         tmp_path: Path) -> None:
    root, folder = world
    repo = root / "repo"
    (root / "registry.yaml").write_text(REGISTRY.format(mirror="false"))
    with static_host(root / "dvc-remote") as remote:
        dvc(repo, "remote", "modify", "store", "url", remote.url.rstrip("/"))
        git(repo, "commit", "-qam", "remote on http")
        release(mx, repo, folder, "1.1.0", root / "keys" / "acme.pem")
        shutil.rmtree(repo / ".dvc" / "cache")  # the listing and objects come over HTTP
        out = tmp_path / "site"
        summary = build(mx, root, out)
        assert not summary["warnings"], summary["warnings"]
        data = (root / "seed.onnx").read_bytes()
        md5 = hashlib.md5(data).hexdigest()
        art = records(out, "1.1.0")[f"{folder}/model.onnx"]
        assert art["urls"] == [f"{remote.url.rstrip('/')}/files/md5/{md5[:2]}/{md5[2:]}"]
        assert art["size"] == len(data)
        with static_host(out) as host:
            res = mx("install", f"{NAME}@1.1.0", "--registry", host.url, "--json")
        assert res.code == 0, res.out + res.err
        files = json.loads(res.out)[0]["files"]
        assert Path(files[f"{folder}/model.onnx"]).read_bytes() == data


def test_validate_checks_files_against_the_listing(mx, world: tuple[Path, str]) -> None:  # type: ignore[no-untyped-def]
    root, folder = world
    repo = root / "repo"
    assert mx("validate", repo).code == 0
    vocab = repo / folder / "vocab.txt"
    vocab.unlink()  # DVC may link from its cache: never write through it
    vocab.write_bytes(b"retrained\n")
    res = mx("validate", "--write", repo)
    redo = "`dvc add weights`" if folder == "weights" else "`dvc commit` (or `dvc repro`)"
    assert res.code == 1 and redo in res.out and "vocab.txt" in res.out, res.out + res.err


def test_listed_file_missing_from_the_folder(mx, world: tuple[Path, str]) -> None:  # type: ignore[no-untyped-def]
    root, folder = world
    repo = root / "repo"
    manifest = repo / "mx.yaml"
    manifest.write_text(manifest.read_text().replace(f"{folder}/vocab.txt",
                                                     f"{folder}/merges.txt"))
    res = mx("validate", repo)
    assert res.code == 1
    assert "listing" in res.out and "has no file 'merges.txt'" in res.out, res.out + res.err
    # what to do, on the same line (mx validate lists problems, each one line)
    redo = "`dvc add weights`" if folder == "weights" else "`dvc commit` (or `dvc repro`)"
    assert f"'merges.txt'; {redo} after adding it" in res.out, res.out


def test_listing_not_in_the_cache_warns(mx, world: tuple[Path, str]) -> None:  # type: ignore[no-untyped-def]
    root, folder = world
    repo = root / "repo"
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / folder)
    res = mx("validate", repo)
    assert res.code == 0, res.out + res.err
    assert "not in the DVC cache" in res.err + res.out


def test_tampered_listing_skips_the_release(mx, world: tuple[Path, str],  # type: ignore[no-untyped-def]
                                            tmp_path: Path) -> None:
    root, _ = world
    for p in listing_files(root):
        p.chmod(0o644)
        p.write_text(p.read_text().replace("vocab.txt", "vocab.bin"))
    res = mx("index", "build", root / "registry.yaml", "-o", tmp_path / "a", "--no-site")
    assert res.code == 0
    assert "not the listing the pointer names" in res.err and "release skipped" in res.err


def test_hostile_listing_with_a_matching_md5(mx, world: tuple[Path, str],  # type: ignore[no-untyped-def]
                                             tmp_path: Path) -> None:
    """A pointer and listing written to escape the folder: its md5 is right, its path not."""
    root, folder = world
    repo = root / "repo"
    listing = json.dumps([{"md5": "0" * 32, "relpath": "../../escape.onnx"},
                          {"md5": "1" * 32, "relpath": "model.onnx"}], sort_keys=True).encode()
    md5 = hashlib.md5(listing).hexdigest()
    for store in (root / "dvc-remote", repo / ".dvc" / "cache"):
        target = store / "files" / "md5" / md5[:2] / f"{md5[2:]}.dir"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(listing)
    if folder == "weights":
        (repo / "weights.dvc").write_text(
            f"outs:\n- md5: {md5}.dir\n  size: 10\n  nfiles: 2\n  hash: md5\n  path: weights\n")
    else:
        lock = repo / "dvc.lock"
        text = lock.read_text()
        old = next(line.split("md5: ")[1] for line in text.splitlines() if ".dir" in line)
        lock.write_text(text.replace(old, f"{md5}.dir"))
    git(repo, "commit", "-qam", "hostile listing")
    git(repo, "tag", "-a", "-f", "v1.0.0", "-m", "retagged")
    res = mx("index", "build", root / "registry.yaml", "-o", tmp_path / "a", "--no-site",
             "--allow-unsigned")
    assert res.code == 0
    assert "relpath '../../escape.onnx' contains '..'" in res.err, res.err
    assert "release skipped" in res.err
    assert not (tmp_path / "escape.onnx").exists() and not (root / "escape.onnx").exists()
    res = mx("validate", repo)
    assert res.code == 1 and "contains '..'" in res.out, res.out + res.err
