"""The pre-commit hooks, run through the real pre-commit framework on temp model repos."""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import pytest

from tests.support.examples import git, make_model_repo
from tests.support.precommit import try_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_model_repo(tmp_path / "repo", "acme/iris", ["1.0.0"]).path


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


class Exploit:
    """Pickles to a call of os.system; the test only ever dumps it, never loads it."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /tmp/mx-test-pwned",))


def test_all_hooks_pass_on_a_clean_model_repo(repo: Path, tmp_path: Path) -> None:
    proc = try_repo(repo, "--all-files", home=tmp_path / "pc")
    out = _output(proc)
    assert proc.returncode == 0, out
    for name in ("mx validate", "mx lfs", "mx card"):
        assert f"{name} (" in out and "Passed" in out
    assert "Failed" not in out


def test_staged_change_that_breaks_the_card_and_hash_fails_the_commit(
        repo: Path, tmp_path: Path) -> None:
    from mx.cli.main import run
    assert run(["validate", "--write", str(repo)]) == 0  # record sha256 and size
    git(repo, "commit", "-qam", "hashes")
    card = (repo / "README.md").read_text()
    (repo / "README.md").write_text(card.replace("## Limitations", "## Other"))
    (repo / "model.onnx").write_bytes((repo / "model.onnx").read_bytes() + b"\0")
    git(repo, "add", "README.md", "model.onnx")
    proc = try_repo(repo, home=tmp_path / "pc")  # staged files only, as on commit
    out = _output(proc)
    assert proc.returncode == 1, out
    assert "README.md:7: section 'Limitations' is missing" in out
    assert "mx.yaml:" in out and "model.onnx: sha256 is" in out


def test_repo_without_manifest_is_skipped_with_a_message(tmp_path: Path) -> None:
    repo = tmp_path / "plain"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "notes.txt").write_text("no models here\n")
    git(repo, "add", ".")
    proc = try_repo(repo, "mx-validate", "--all-files", "--verbose", home=tmp_path / "pc")
    out = _output(proc)
    assert proc.returncode == 0, out
    assert "mx-validate: skipped: no mx.yaml in this repository; nothing to check" in out


def test_model_file_without_manifest_fails(tmp_path: Path) -> None:
    repo = tmp_path / "plain"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "model.onnx").write_bytes(b"\x08\x07")
    git(repo, "add", ".")
    proc = try_repo(repo, "mx-validate", "--all-files", home=tmp_path / "pc")
    out = _output(proc)
    assert proc.returncode == 1, out
    assert "model.onnx: a model file with no mx.yaml" in out


def test_malicious_pickle_is_refused_even_when_allow_listed(repo: Path, tmp_path: Path) -> None:
    (repo / "weights.pkl").write_bytes(pickle.dumps(Exploit()))
    git(repo, "add", "weights.pkl")
    proc = try_repo(repo, "mx-no-pickle", "--all-files", home=tmp_path / "pc")
    out = _output(proc)
    assert proc.returncode == 1, out
    assert "weights.pkl: pickle imports posix.system" in out
    assert not Path("/tmp/mx-test-pwned").exists()
    # the same file, allow-listed, is still refused: it imports os.system
    from mx.cli.main import run
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        assert run(["hook", "no-pickle", "--allow", "*.pkl", "weights.pkl"]) == 1
    finally:
        os.chdir(cwd)


def test_torch_checkpoint_needs_allow_listing(repo: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import torch
    torch.save({"w": torch.zeros(3)}, repo / "weights.pt")
    (repo / "raw.bin").write_bytes(b"\x01\x02 not a pickle")
    from mx.cli.main import run
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        assert run(["hook", "no-pickle", "weights.pt", "raw.bin"]) == 1
        err = capsys.readouterr().err
        assert "weights.pt: pickle-based" in err and "--allow" in err
        assert "raw.bin" not in err
        assert run(["hook", "no-pickle", "--allow", "*.pt", "weights.pt", "raw.bin"]) == 0
    finally:
        os.chdir(cwd)


def test_gitattributes_missing_an_artifact_fails_lfs(repo: Path, tmp_path: Path) -> None:
    (repo / ".gitattributes").write_text("*.ort filter=lfs diff=lfs merge=lfs -text\n")
    git(repo, "add", ".gitattributes")
    git(repo, "rm", "-q", "--cached", "model.onnx")
    git(repo, "add", "model.onnx")  # now a plain blob
    proc = try_repo(repo, "mx-lfs", "--all-files", home=tmp_path / "pc")
    out = _output(proc)
    assert proc.returncode == 1, out
    assert "no Git LFS pattern covers the artifact model.onnx" in out
    assert 'git lfs track "*.onnx"' in out


def test_malformed_pointer_and_large_plain_binary(repo: Path, mx) -> None:  # type: ignore[no-untyped-def]
    bad = b"version https://git-lfs.github.com/spec/v1\noid sha256:1234\nsize 12\n"
    oid = subprocess.run(["git", "hash-object", "-w", "--no-filters", "--stdin"], cwd=repo,
                         input=bad, capture_output=True, check=True).stdout.decode().strip()
    git(repo, "update-index", "--add", "--cacheinfo", f"100644,{oid},extra.onnx")
    (repo / "blob.dat").write_bytes(b"\0" * 2048)
    git(repo, "add", "blob.dat")
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        res = mx("hook", "lfs", "--max-size", "1024", "extra.onnx", "blob.dat", "model.onnx")
    finally:
        os.chdir(cwd)
    assert res.code == 1
    assert "extra.onnx: is tracked by Git LFS but staged as a malformed LFS pointer" in res.err
    assert "blob.dat: is a 2048-byte binary staged outside Git LFS" in res.err
    assert "model.onnx" not in res.err
