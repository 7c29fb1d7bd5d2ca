"""DVC folders against hostile or odd repositories: pointers that disagree with git about
who holds a path, outputs that overlap, artifacts the signature does not bind.

The repositories are written by hand in DVC 3's layout (mx.dvcdir's docstring): what a
hostile author commits need not be what `dvc` would write, and no `dvc` is needed here.
Each case checks that `mx validate`, `mx sign`, `mx index build` and clients agree on which
bytes an artifact is, and that nothing ends in a crash (exit 3).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.support.examples import (
    card_text,
    git,
    linear_classifier,
    make_signing_key,
    manifest_text,
    sign_all_releases,
)
from tests.test_dvc import NAME, REGISTRY

CONFIG = "[core]\n    remote = store\n['remote \"store\"']\n    url = ../../dvc-remote\n"


def store(root: Path, data: bytes, suffix: str = "") -> str:
    """Put an object in the repository's DVC cache and its local remote; its md5."""
    md5 = hashlib.md5(data).hexdigest()
    for base in (root / "repo" / ".dvc" / "cache", root / "dvc-remote"):
        path = base / "files" / "md5" / md5[:2] / f"{md5[2:]}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return md5


def folder(root: Path, files: dict[str, bytes], at: str) -> str:
    """The folder `at` in the work tree, its objects and listing stored: the output line
    `md5: <hex>.dir` with its size, as `dvc add` or `dvc repro` records it."""
    entries = [{"md5": store(root, data), "relpath": rel} for rel, data in sorted(files.items())]
    for rel, data in files.items():
        (root / "repo" / at / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "repo" / at / rel).write_bytes(data)
    md5 = store(root, json.dumps(entries, sort_keys=True).encode(), ".dir")
    return f"md5: {md5}.dir\n  size: {sum(map(len, files.values()))}\n  nfiles: {len(files)}"


def new_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    (repo / ".dvc" / "config").write_text(CONFIG)
    make_signing_key(root / "keys", "acme")
    (root / "registry.yaml").write_text(REGISTRY.format(mirror="true"))
    return repo


def manifest(model: Path, paths: list[str], version: str = "1.0.0") -> None:
    extra = "".join(f"  - path: {p}\n    format: other\n    variant: fp32\n" for p in paths[1:])
    (model / "mx.yaml").write_text(manifest_text(NAME, version, extra_artifacts=extra)
                                   .replace("path: model.onnx", f"path: {paths[0]}"))
    (model / "README.md").write_text(card_text(NAME))


def tag(repo: Path, name: str = "v1.0.0") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "release")
    git(repo, "tag", "-a", name, "-m", "release")


def lock(outs: str) -> str:
    return f"schema: '2.0'\nstages:\n  make:\n    cmd: make\n    outs:\n{outs}"


def build(mx, root: Path, out: Path):  # type: ignore[no-untyped-def]
    return mx("index", "build", root / "registry.yaml", "-o", out, "--no-site")


def one_line(text: str, says: str) -> str:
    lines = [ln for ln in text.splitlines() if says in ln]
    assert len(lines) == 1, text
    return lines[0]


def test_tracked_folder_that_git_also_holds_is_refused(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`weights.dvc` tracks the folder, and git holds weights/readme.txt (`git add -f`): the
    signature covers the folder as git holds it, so the pointer cannot be the artifact's."""
    root = tmp_path / "w"
    repo = new_repo(root)
    onnx = linear_classifier(tmp_path / "seed.onnx", seed=5).read_bytes()
    line = folder(root, {"model.onnx": onnx, "readme.txt": b"notes\n"}, "weights")
    (repo / "weights.dvc").write_text(f"outs:\n- {line}\n  hash: md5\n  path: weights\n")
    (repo / ".gitignore").write_text("/weights/model.onnx\n")
    manifest(repo, ["weights/model.onnx"])
    git(repo, "add", "-A")  # git holds weights/readme.txt from here on
    res = mx("validate", repo)
    assert res.code == 1, res.out + res.err
    says = one_line(res.out, "weights.dvc")
    assert "git also holds files in the folder 'weights'" in says, says
    assert "git rm -r --cached weights" in says, says
    tag(repo)
    sign_all_releases(repo, root / "keys" / "acme.pem")
    res = build(mx, root, tmp_path / "site")
    assert res.code == 0 and "release skipped" in res.err, res.out + res.err
    assert "git also holds files in the folder 'weights'" in res.err, res.err


def test_folder_output_holding_the_model_directory_is_refused(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A stage's folder output `m` is the model directory itself, whose mx.yaml git holds:
    the signature of `m` covers git's files only."""
    root = tmp_path / "w"
    repo = new_repo(root)
    onnx = linear_classifier(tmp_path / "seed.onnx", seed=5).read_bytes()
    line = folder(root, {"model.onnx": onnx}, "m").replace("\n  ", "\n      ")
    (repo / "dvc.lock").write_text(lock(f"    - path: m\n      hash: md5\n      {line}\n"))
    (repo / ".gitignore").write_text("/m/model.onnx\n")
    manifest(repo / "m", ["model.onnx"])
    res = mx("validate", repo / "m")
    assert res.code == 1, res.out + res.err
    says = one_line(res.out, "dvc.lock stages.make.outs[0]")
    assert "holds the model directory" in says, says
    tag(repo, "m/v1.0.0")
    sign_all_releases(repo, root / "keys" / "acme.pem", "m")
    res = build(mx, root, tmp_path / "site")
    assert res.code == 0 and "release skipped" in res.err, res.out + res.err
    assert "holds the model directory" in res.err, res.err


def test_folder_output_that_git_also_holds_files_in_is_refused(  # type: ignore[no-untyped-def]
        mx, tmp_path: Path) -> None:
    """A stage's folder output `out` whose listing names readme.txt, and git holds another
    out/readme.txt (`git add -f`): DVC refuses an output git tracks, and a signature would
    have covered DVC's readme.txt where the builder publishes git's."""
    root = tmp_path / "w"
    repo = new_repo(root)
    onnx = linear_classifier(tmp_path / "seed.onnx", seed=5).read_bytes()
    line = folder(root, {"model.onnx": onnx, "readme.txt": b"from dvc\n"}, "out")
    (repo / "out" / "readme.txt").write_bytes(b"from git\n")
    (repo / "dvc.lock").write_text(lock("    - path: out\n      hash: md5\n      "
                                        + line.replace("\n  ", "\n      ") + "\n"))
    (repo / ".gitignore").write_text("/out/model.onnx\n")
    manifest(repo, ["out/model.onnx", "out/readme.txt"])
    git(repo, "add", "-A")  # git holds out/readme.txt from here on
    res = mx("validate", repo)
    assert res.code == 1, res.out + res.err
    says = one_line(res.out, "artifacts[0]")
    assert "is the folder 'out', and git also holds files in it" in says, says
    tag(repo)
    res = mx("sign", "--key", root / "keys" / "acme.pem", repo)  # git's files, not DVC's
    assert res.code == 0, res.out + res.err
    res = build(mx, root, tmp_path / "site")
    assert res.code == 0 and "release skipped" in res.err, res.out + res.err
    assert "git also holds files in it" in res.err, res.err


def test_an_output_at_a_folder_git_holds_is_not_signed_over_it(  # type: ignore[no-untyped-def]
        mx, tmp_path: Path) -> None:
    """dvc.lock names a file output `docs`, and git holds the folder docs/: signing (which
    writes the tree out) must not crash on the clash; git's folder is what is signed."""
    root = tmp_path / "w"
    repo = new_repo(root)
    linear_classifier(repo / "model.onnx", seed=5)
    (repo / "docs").mkdir()
    (repo / "docs" / "a.txt").write_text("a\n")
    md5 = store(root, b"dvc file\n")
    (repo / "dvc.lock").write_text(lock(f"    - path: docs\n      hash: md5\n      md5: {md5}\n"
                                        "      size: 9\n"))
    manifest(repo, ["model.onnx"])
    assert mx("validate", "--write", repo).code == 0
    tag(repo)
    res = mx("sign", "--key", root / "keys" / "acme.pem", repo)
    assert res.code == 0, res.out + res.err
    res = build(mx, root, tmp_path / "site")
    assert res.code == 0 and not res.err, res.out + res.err


def test_the_builder_refuses_an_artifact_the_signature_does_not_bind(  # type: ignore[no-untyped-def]
        mx, tmp_path: Path) -> None:
    """mx.yaml lists a file the signature leaves out (.github/, as model-signing does): the
    release would be published for every client to refuse; the builder says so instead."""
    root = tmp_path / "w"
    repo = new_repo(root)
    linear_classifier(repo / "model.onnx", seed=5)
    (repo / ".github").mkdir()
    (repo / ".github" / "labels.txt").write_text("cat\ndog\n")
    manifest(repo, ["model.onnx", ".github/labels.txt"])
    assert mx("validate", "--write", repo).code == 0
    tag(repo)
    sign_all_releases(repo, root / "keys" / "acme.pem")
    res = build(mx, root, tmp_path / "site")
    assert res.code == 1, res.out + res.err
    says = one_line(res.err, ".github/labels.txt")
    assert "is not covered by the signature" in says, res.err


def test_outputs_of_two_locks_that_clash_refuse_signing_in_one_line(  # type: ignore[no-untyped-def]
        mx, tmp_path: Path) -> None:
    """The root dvc.lock has the folder output x/y, whose listing names z/w; x/dvc.lock has
    the file output y/z. Each lock alone is sound; written out, one path is a file and a
    folder."""
    root = tmp_path / "w"
    repo = new_repo(root)
    linear_classifier(repo / "model.onnx", seed=5)
    line = folder(root, {"z/w": b"w\n"}, "x/y").replace("\n  ", "\n      ")
    (repo / "dvc.lock").write_text(lock(f"    - path: x/y\n      hash: md5\n      {line}\n"))
    md5 = store(root, b"z\n")
    (repo / "x" / "dvc.lock").write_text(lock(f"    - path: y/z\n      hash: md5\n"
                                              f"      md5: {md5}\n      size: 2\n"))
    (repo / ".gitignore").write_text("/x/y\n")
    manifest(repo, ["model.onnx"])
    assert mx("validate", "--write", repo).code == 0
    tag(repo)
    res = mx("sign", "--key", root / "keys" / "acme.pem", repo)
    assert res.code == 1, res.out + res.err
    says = one_line(res.err, "x/y/z")
    assert "both as a file and as a folder" in says, res.err


def test_validate_reads_a_linked_pointer_as_git_holds_it(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """weights.dvc is a symlink to a pointer outside the repository. Git holds the link's
    target path, which is what the builder reads; validate must not follow the link out of
    the repository and pass what the builder then skips."""
    root = tmp_path / "w"
    repo = new_repo(root)
    onnx = linear_classifier(tmp_path / "seed.onnx", seed=5).read_bytes()
    line = folder(root, {"model.onnx": onnx}, "weights")
    outside = tmp_path / "elsewhere" / "weights.dvc"
    outside.parent.mkdir()
    outside.write_text(f"outs:\n- {line}\n  hash: md5\n  path: weights\n")
    (repo / "weights.dvc").symlink_to(outside)
    (repo / ".gitignore").write_text("/weights\n")
    manifest(repo, ["weights/model.onnx"])
    res = mx("validate", repo)
    assert res.code == 1, res.out + res.err
    assert "not a DVC pointer" in one_line(res.out, "weights.dvc"), res.out
