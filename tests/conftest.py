"""Shared fixtures: an isolated HOME, git and git-lfs set up, and helpers to run mx."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mx.cli.main import run
from tests.support.bigmodel import BIG_SIZE, make_big_registry
from tests.support.examples import (
    ExampleRepo,
    git,
    git_home,
    make_model_repo,
    make_signing_key,
    sign_all_releases,
)
from tests.support.servers import Host, LfsServer, giftless, static_host


@pytest.fixture(scope="session")
def index_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One set of registry TUF keys for the run, as a publisher keeps one set: every build
    of a test registry signs with them (MX_INDEX_KEYS), so rebuilds extend one trust chain."""
    from mx.index_builder.keys import generate

    folder = tmp_path_factory.mktemp("index-keys")
    generate(folder)
    return folder


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index_keys: Path) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("MX_INDEX_KEYS", str(index_keys))
    for key, value in git_home(home).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MX_HOME", str(tmp_path / "mxhome"))
    # Retries back off for milliseconds here, not seconds: the tests inject failures.
    (home / "mx-config.toml").write_text("[limits]\nbackoff = 0.001\n")
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
namespaces:
  acme:
    signers:
      - {{public_key: keys/acme.pub}}
"""


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory, index_keys: Path) -> Path:
    """Built once per run: two model repos, a registry.yaml and its built index.

    acme/iris has four releases (one a pre-release, one yanked); acme/resnet lives in a
    monorepo subdirectory. Tests get a private copy (the `world` fixture).
    """
    root = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in git_home(root / "home").items():
            mp.setenv(key, value)
        mp.setenv("MX_HOME", str(root / "mxhome"))
        mp.setenv("MX_INDEX_KEYS", str(index_keys))
        subprocess.run(["git", "lfs", "install", "--skip-repo"], check=True,
                       capture_output=True)
        make_model_repo(root / "repos" / "iris", "acme/iris",
                        ["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1"])
        make_model_repo(root / "repos" / "mono", "acme/resnet", ["0.1.0"],
                        model_dir="vision/resnet", in_features=8, classes=5)
        private, _ = make_signing_key(root / "keys", "acme")
        make_signing_key(root / "keys", "intruder")
        sign_all_releases(root / "repos" / "iris", private)
        sign_all_releases(root / "repos" / "mono", private, "vision/resnet")
        (root / "registry.yaml").write_text(REGISTRY_YAML.format(mirror="true"))
        assert run(["index", "build", str(root / "registry.yaml"), "-o",
                    str(root / "site")]) == 0
    return root


@pytest.fixture
def world(tmp_path: Path, world_template: Path) -> Path:
    dest = tmp_path / "world"
    shutil.copytree(world_template, dest, symlinks=True,
                    ignore=shutil.ignore_patterns("home", "mxhome"))
    return dest


@pytest.fixture
def repos(world: Path) -> dict[str, ExampleRepo]:
    return {"iris": ExampleRepo(world / "repos" / "iris", "acme/iris",
                                ["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1"]),
            "mono": ExampleRepo(world / "repos" / "mono", "acme/resnet", ["0.1.0"])}


@pytest.fixture
def registry_file(world: Path) -> Path:
    return world / "registry.yaml"


@pytest.fixture
def built(world: Path) -> Path:
    """The registry's built output (made from the template's copies of the repos)."""
    return world / "site"


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
    git(repo, "push", "-q", "origin", "refs/notes/*:refs/notes/*")


@pytest.fixture(scope="session")
def big_site(tmp_path_factory: pytest.TempPathFactory, index_keys: Path) -> Path:
    """A built registry with one BIG_SIZE model (bench/big), shared by the resume and
    parallel-download tests (they only read it)."""
    root = tmp_path_factory.mktemp("big")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in git_home(root / "home").items():
            mp.setenv(key, value)
        mp.setenv("MX_HOME", str(root / "mxhome"))
        mp.setenv("MX_INDEX_KEYS", str(index_keys))
        return make_big_registry(root, BIG_SIZE)
