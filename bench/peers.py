"""The other tools `bench/install.py` times beside `mx install` on its big models, each
fetching the same bytes over 127.0.0.1 with its own defaults:

- huggingface_hub's downloader (`http_get`), from the site's mirror on `mx index serve`;
- `dvc pull` from an HTTP remote on that same server: DVC's layout
  (`files/md5/<2>/<30>`) is a folder of hard links inside the site to the mirrored files,
  which the site names by sha256; the `.dvc` files are written from each file's md5;
- `git clone` of a repository whose LFS objects are on giftless (a real LFS server, in
  Python, as the tests run it): git-lfs fetches them through its batch API, and the bytes
  stream through giftless (waitress), not through the server the others use, so this one
  measures that server as much as git-lfs. The objects are hard links too, so every peer
  reads the same pages of the same files.

A peer whose tool is missing is reported, not measured. Each peer's `fresh` removes what a
run left (its cache, its copy), so every run starts cold.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import run

NOT_INSTALLED = "not installed, not measured"


@dataclass
class Peer:
    label: str  # what is timed, and where its bytes come from
    fetch: Callable[[], None] | None  # None: not measured (`why_not` says why)
    fresh: Callable[[], None] = field(default=lambda: None)
    why_not: str = NOT_INSTALLED


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        os.link(src, dst)


def hf_peer(urls: list[str], out: Path) -> Peer:
    """huggingface_hub's own downloader for each URL, one after the other."""
    label = "huggingface_hub http_get"
    try:
        from huggingface_hub.file_download import http_get
    except ImportError:
        return Peer(label, None)

    def fetch() -> None:
        for i, url in enumerate(urls):
            with (out / f"{i}.bin").open("wb") as f:
                http_get(url, f)

    return Peer(label, fetch)


def dvc_bin() -> str | None:
    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.exists() else shutil.which("dvc")


def dvc_peer(repo: Path, site: Path, url: str, arts: list[dict[str, Any]],
             env: dict[str, str]) -> Peer:
    """`dvc pull` into `repo`, from the HTTP remote `<url>dvc` that serves `site/dvc`."""
    label = "dvc pull (HTTP remote, same server)"
    dvc = dvc_bin()
    if dvc is None:
        return Peer(label, None)
    env = {**env, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(repo / ".site-cache")}
    if not (repo / ".dvc").exists():
        repo.mkdir(parents=True)
        run([dvc, "init", "-q", "--no-scm"], env, cwd=repo)
        # no version check in a daemon beside the timed runs (`fresh` drops its memory)
        run([dvc, "config", "core.check_update", "false"], env, cwd=repo)
        run([dvc, "remote", "add", "-d", "bench", f"{url}dvc"], env, cwd=repo)
        for art in arts:
            blob = site / art["urls"][0]
            md5 = hashlib.md5(usedforsecurity=False)
            with blob.open("rb") as f:
                for chunk in iter(lambda: f.read(8 << 20), b""):
                    md5.update(chunk)
            digest = md5.hexdigest()
            _link(blob, site / "dvc" / "files" / "md5" / digest[:2] / digest[2:])
            (repo / f"{art['path']}.dvc").write_text(
                f"outs:\n- md5: {digest}\n  size: {art['size']}\n  hash: md5\n"
                f"  path: {art['path']}\n")

    def fresh() -> None:
        for name in (".dvc/cache", ".dvc/tmp", ".site-cache"):
            shutil.rmtree(repo / name, ignore_errors=True)
        for art in arts:
            (repo / art["path"]).unlink(missing_ok=True)

    return Peer(label, lambda: run([dvc, "pull", "-q"], env, cwd=repo), fresh)


def lfs_bare(repo: Path, remotes: Path) -> Path | None:
    """A bare copy of `repo` holding its git objects (LFS pointers), for `lfs_peer`; None
    without git-lfs."""
    if shutil.which("git-lfs") is None:
        return None
    bare = remotes / f"{repo.name}.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "-q", "--bare", str(bare)])
    # The LFS objects go to giftless's storage as links later (no upload through it).
    run(["git", "push", "-q", str(bare), "--all"], {**os.environ, "GIT_LFS_SKIP_PUSH": "1"},
        cwd=repo)
    run(["git", "push", "-q", str(bare), "--tags"], {**os.environ, "GIT_LFS_SKIP_PUSH": "1"},
        cwd=repo)
    return bare


@contextlib.contextmanager
def lfs_server(workdir: Path) -> Iterator[Any]:
    """giftless on 127.0.0.1 (tests.support.servers.giftless), or None without it."""
    waitress = Path(sys.executable).with_name("waitress-serve")
    if importlib.util.find_spec("giftless") is None or not waitress.exists():
        yield None
        return
    from tests.support.servers import giftless

    with giftless(workdir) as server:
        yield server


def lfs_peer(server: Any, bare: Path | None, site: Path, arts: list[dict[str, Any]],
             dest: Path, env: dict[str, str]) -> Peer:
    """`git clone` of `bare`, its LFS objects fetched by git-lfs from giftless."""
    label = "git clone + git-lfs (giftless server)"
    if server is None or bare is None:
        return Peer(label, None)
    org, name = "bench", bare.name.removesuffix(".git")
    for art in arts:  # giftless's local storage: <path>/<org>/<repo>/<oid>
        _link(site / art["urls"][0], server.storage / org / name / art["sha256"])
    clone = ["git", "clone", "-q", "-c", f"lfs.url={server.endpoint(org, name)}",
             str(bare), str(dest)]
    env = {**env, "GIT_TERMINAL_PROMPT": "0"}
    return Peer(label, lambda: run(clone, env),
                lambda: shutil.rmtree(dest, ignore_errors=True))
