"""Shared fixtures: an isolated HOME, git and git-lfs set up, and helpers to run mx."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mx.cli.main import run
from mx.examples import ExampleRepo, git, make_model_repo
from tests.support.servers import Host, LfsServer, giftless, static_host


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = Test\n\temail = test@example.invalid\n"
                         "[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("MX_HOME", str(tmp_path / "mxhome"))
    monkeypatch.setenv("MX_CONFIG", str(home / "mx-config.toml"))
    monkeypatch.setenv("MX_INDEX_TTL", "0")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for var in ("MX_REGISTRY", "MX_OFFLINE", "MX_TOKEN", "MX_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    subprocess.run(["git", "lfs", "install", "--skip-repo"], check=True, capture_output=True)
    return tmp_path


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def mx(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run the mx CLI in-process: mx("validate", path) -> Result(code, out, err)."""

    def call(*args: str | Path) -> Result:
        capsys.readouterr()
        code = run([str(a) for a in args])
        cap = capsys.readouterr()
        return Result(code, cap.out, cap.err)

    return call


def mx_subprocess(*args: str | Path, env: dict[str, str] | None = None,
                  cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "mx", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, cwd=cwd)


@pytest.fixture
def repos(tmp_path: Path) -> dict[str, ExampleRepo]:
    """Two model repos: acme/iris (four releases, one a pre-release) and a monorepo model."""
    base = tmp_path / "repos"
    return {
        "iris": make_model_repo(base / "iris", "acme/iris",
                                ["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1"]),
        "mono": make_model_repo(base / "mono", "acme/resnet", ["0.1.0"],
                                model_dir="vision/resnet", in_features=8, classes=5),
    }


REGISTRY_YAML = """\
registry: 1
name: Test registry
base_url: http://127.0.0.1/
mirror_artifacts: {mirror}
sources:
  - repo: repos/iris
  - repo: repos/mono
    models: [vision/resnet]
channels:
  acme/iris: {{stable: 1.1.0, canary: 2.0.0-rc.1}}
yanked:
  acme/iris: {{1.2.0: "wrong weights; use 1.1.0"}}
"""


@pytest.fixture
def registry_file(tmp_path: Path, repos: dict[str, ExampleRepo]) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY_YAML.format(mirror="true"))
    return path


@pytest.fixture
def built(tmp_path: Path, registry_file: Path, mx) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path / "site"
    res = mx("index", "build", registry_file, "-o", out)
    assert res.code == 0, res.err
    return out


@pytest.fixture
def host(built: Path) -> Iterator[Host]:
    with static_host(built) as h:
        yield h


@pytest.fixture(scope="session")
def lfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LfsServer]:
    with giftless(tmp_path_factory.mktemp("giftless")) as server:
        yield server


def push_to(repo: Path, bare: Path, lfs_url: str | None = None) -> None:
    """Push every branch and tag (and LFS objects) to a bare repository."""
    git(bare.parent, "init", "-q", "--bare", bare.name)
    if lfs_url:
        git(repo, "config", "lfs.url", lfs_url)
        git(repo, "config", "lfs.locksverify", "false")
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "--all")
    git(repo, "push", "-q", "origin", "--tags")
