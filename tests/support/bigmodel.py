"""A registry with one large LFS artifact, for the tests that kill an install mid-download,
and a way to run mx as a process on these sources."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import mx
from mx.cli.main import run
from tests.support.examples import card_text, git

NAME = "bench/big"
BIG_SIZE = 64 << 20  # the tests' big model (conftest.big_site): over a part, quick to make
SRC = str(Path(mx.__file__).resolve().parents[1])


def write_weights(path: Path, size: int) -> None:
    """`size` bytes that differ all the way through (a resume from the wrong offset shows)."""
    with path.open("wb") as f:
        left = size
        while left:
            chunk = min(left, 4 << 20)
            block = hashlib.sha256(str(left).encode()).digest()
            f.write((block * (chunk // 32 + 1))[:chunk])
            left -= chunk


def make_big_registry(root: Path, size: int) -> Path:
    """Build root/site: bench/big 1.0.0 with one `size`-byte artifact, mirrored, unsigned."""
    repo = root / "repos" / "big"
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "lfs", "install", "--local")
    (repo / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    write_weights(repo / "weights.bin", size)
    (repo / "README.md").write_text(card_text(NAME))
    (repo / "mx.yaml").write_text(
        f"mx: 1\nname: {NAME}\nversion: 1.0.0\nsummary: a large artifact\n"
        "license: apache-2.0\nartifacts:\n  - path: weights.bin\n    format: other\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", NAME)
    git(repo, "tag", "-a", "-m", "release", "v1.0.0")
    (root / "registry.yaml").write_text(
        "registry: 1\nname: big\nmirror_artifacts: true\nallow_unsigned: true\n"
        "sources:\n  - repo: repos/big\n")
    site = root / "site"
    assert run(["index", "build", str(root / "registry.yaml"), "-o", str(site),
                "--no-site"]) == 0
    return site


def artifact_sha(site: Path) -> str:
    doc = json.loads((site / "index/models/bench/big.json").read_text())
    sha: str = doc["versions"]["1.0.0"]["artifacts"][0]["sha256"]
    return sha


def mx_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "mx", *map(str, args)]


def mx_env(**extra: str) -> dict[str, str]:
    """The test's environment, with these sources first on the path (not an installed mx)."""
    path = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def mx_proc(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(mx_cmd(*args), capture_output=True, text=True, env=mx_env(),
                          timeout=timeout)
