"""The other tools `bench/install.py` times beside `mx install` on its big models, each
fetching the same bytes over 127.0.0.1 with its own defaults:

- huggingface_hub's downloader (`http_get`), from the site's mirror on `mx index serve`;
- `dvc pull` from an HTTP remote on that same server: DVC's layout
  (`files/md5/<2>/<30>`) is a folder of hard links inside the site to the mirrored files,
  which the site names by sha256; the `.dvc` files are written from each file's md5;
- `git clone` of a repository whose LFS objects git-lfs fetches through its batch API: the
  batch answers come from a small endpoint here (`lfs_batch`) whose hrefs point at that same
  server, so git-lfs downloads from where curl, mx and the others do. (Through giftless,
  as the tests run a real LFS server, the bytes would stream through waitress at a few
  MB/s, which measures that server rather than git-lfs.)

A peer whose tool is missing is reported, not measured. Each peer's `fresh` removes what a
run left (its cache, its copy), so every run starts cold.
"""

from __future__ import annotations

import contextlib
import hashlib
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
    # The LFS objects are never uploaded: the batch stub points at the site's copies.
    run(["git", "push", "-q", str(bare), "--all"], {**os.environ, "GIT_LFS_SKIP_PUSH": "1"},
        cwd=repo)
    run(["git", "push", "-q", str(bare), "--tags"], {**os.environ, "GIT_LFS_SKIP_PUSH": "1"},
        cwd=repo)
    return bare


@contextlib.contextmanager
def lfs_batch(site_url: str) -> Iterator[str]:
    """A Git LFS batch endpoint on 127.0.0.1 (its URL, `lfs.url` for git) answering every
    download with an href on the site's server: `<site_url>artifacts/sha256/<oid>`."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Batch(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = json.dumps({"transfer": "basic", "objects": [
                {"oid": o["oid"], "size": o["size"], "authenticated": True,
                 "actions": {"download": {"href": f"{site_url}artifacts/sha256/{o['oid']}"}}}
                for o in body["objects"]]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.git-lfs+json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Batch)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/lfs"
    finally:
        server.shutdown()
        server.server_close()


def lfs_peer(endpoint: str, bare: Path | None, dest: Path, env: dict[str, str]) -> Peer:
    """`git clone` of `bare`, its LFS objects fetched by git-lfs (batch API at `endpoint`,
    bytes from the site's server)."""
    label = "git clone + git-lfs (same server)"
    if bare is None:
        return Peer(label, None)
    clone = ["git", "clone", "-q", "-c", f"lfs.url={endpoint}", str(bare), str(dest)]
    env = {**env, "GIT_TERMINAL_PROMPT": "0"}
    return Peer(label, lambda: run(clone, env),
                lambda: shutil.rmtree(dest, ignore_errors=True))
