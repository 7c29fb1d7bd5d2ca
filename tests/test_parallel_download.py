"""One large file in several HTTP Range requests at once (mx.client.parallel), against a
real static host on 127.0.0.1: right bytes or a clear refusal, never a half-written blob,
and a killed download resumes without fetching its finished pieces again."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from mx import landing
from mx.client import parallel
from mx.client.cache import Cache
from mx.client.download import Downloader
from mx.config import Limits
from mx.devserver import make_server, serve_in_thread
from mx.errors import FetchError, IntegrityError
from mx.http import Transport
from mx.progress import NoProgress
from tests.support.bigmodel import BIG_SIZE, artifact_sha, mx_cmd, mx_env, mx_proc
from tests.support.servers import Faults, FaultyHandler, Host, static_host

SIZE = BIG_SIZE
PIECE = parallel.piece_size(SIZE, 4)  # 8 MiB: eight pieces


@pytest.fixture(scope="module")
def www(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("www")
    (root / "big").write_bytes(random.Random(16).randbytes(SIZE))
    return root


@pytest.fixture(scope="module")
def big_sha(www: Path) -> str:
    return hashlib.sha256((www / "big").read_bytes()).hexdigest()


@pytest.fixture
def host(www: Path) -> Iterator[Host]:
    with static_host(www) as h:
        yield h


def downloader(tmp_path: Path, url: str, **limits: float) -> Downloader:
    # Loopback is fast enough for one stream (limits.one_stream_rate): these tests want
    # the workers, unless they say otherwise.
    limits = {"one_stream_rate": 0, **limits}
    transport = Transport(Limits(backoff=0.001, **limits))  # type: ignore[arg-type]
    return Downloader(Cache(tmp_path / "cache"), transport, url, NoProgress())


def artifact(sha: str, size: int = SIZE) -> dict[str, object]:
    return {"sha256": sha, "size": size, "path": "big", "urls": ["big"]}


def ranges_asked(host: Host) -> list[str | None]:
    return [r for p, r, _ in host.faults.requests if p == "/big"]


def span(header: str | None) -> tuple[int, int]:
    assert header is not None and header.startswith("bytes=")
    first, _, last = header[6:].partition("-")
    return int(first), int(last) + 1 if last else SIZE


def leftovers(tmp_path: Path) -> list[str]:
    tmp = tmp_path / "cache" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


def test_parts_in_parallel_give_the_right_bytes(host: Host, big_sha: str,
                                                tmp_path: Path) -> None:
    d = downloader(tmp_path, host.url)
    blob = d.fetch_one(artifact(big_sha), "test")
    d.transport.close()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == big_sha
    asked = ranges_asked(host)
    assert len(asked) == SIZE // PIECE >= 4
    assert sorted(span(r) for r in asked) == [(a, a + PIECE) for a in range(0, SIZE, PIECE)]
    assert asked[0] == f"bytes=0-{PIECE - 1}"  # the probe: the first piece
    assert leftovers(tmp_path) == []
    assert oct(blob.stat().st_mode & 0o777) == "0o444"


@pytest.mark.parametrize("parts", [4, 1])
def test_plain_http_bodies_are_spliced_into_the_part_file(host: Host, big_sha: str,
                                                          tmp_path: Path, parts: int,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """On Linux a plain-http body goes socket -> pipe -> file (mx.landing), in ranged
    pieces and in one stream alike; only what http.client had buffered with the head
    (a few KiB a response) passes through Python."""
    spliced = []
    real = landing.splice_into

    def counting(*args: Any) -> Iterator[int]:
        for n in real(*args):
            spliced.append(n)
            yield n

    monkeypatch.setattr(landing, "splice_into", counting)
    d = downloader(tmp_path, host.url, parallel_parts=parts)
    blob = d.fetch_one(artifact(big_sha), "test")
    d.transport.close()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == big_sha
    requests = len(ranges_asked(host))
    assert SIZE - requests * (64 << 10) <= sum(spliced) < SIZE
    assert leftovers(tmp_path) == []


def test_a_host_ignoring_range_gets_one_stream(host: Host, big_sha: str,
                                               tmp_path: Path) -> None:
    host.faults.ignore_range.add("/big")
    d = downloader(tmp_path, host.url)
    blob = d.fetch_one(artifact(big_sha), "test")
    d.transport.close()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == big_sha
    assert ranges_asked(host) == [f"bytes=0-{PIECE - 1}", None]  # the probe, then one GET
    assert leftovers(tmp_path) == []


def test_one_part_with_wrong_bytes_is_refused(host: Host, big_sha: str,
                                              tmp_path: Path) -> None:
    host.faults.flip["/big"] = 5 * PIECE + 12345
    d = downloader(tmp_path, host.url)
    with pytest.raises(IntegrityError, match="sha256 is .*, expected " + big_sha):
        d.fetch_one(artifact(big_sha), "test")
    d.transport.close()
    assert not d.cache.blob(big_sha).exists()
    assert leftovers(tmp_path) == []  # no part, no ranges file


def test_a_206_with_the_wrong_content_range_is_refused(host: Host, big_sha: str,
                                                       tmp_path: Path) -> None:
    host.faults.misrange["/big"] = 1
    d = downloader(tmp_path, host.url)
    with pytest.raises(FetchError, match="Content-Range") as caught:
        d.fetch_one(artifact(big_sha), "test")
    d.transport.close()
    assert caught.value.status == 206 and caught.value.url == host.url + "big"
    assert not d.cache.blob(big_sha).exists()
    assert leftovers(tmp_path) == []


def test_a_file_of_another_length_is_refused(host: Host, big_sha: str,
                                             tmp_path: Path) -> None:
    d = downloader(tmp_path, host.url)
    with pytest.raises(IntegrityError, match=f"file is {SIZE} bytes; the index promised"):
        d.fetch_one(artifact(big_sha, SIZE + 1), "test")
    d.transport.close()
    assert not d.cache.blob(big_sha).exists()
    assert leftovers(tmp_path) == []


def test_a_part_cut_short_is_retried_from_where_it_stopped(host: Host, big_sha: str,
                                                           tmp_path: Path) -> None:
    host.faults.truncate["/big"] = 1  # the probe's connection drops half-way
    d = downloader(tmp_path, host.url)
    blob = d.fetch_one(artifact(big_sha), "test")
    d.transport.close()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == big_sha
    asked = ranges_asked(host)
    assert f"bytes={PIECE // 2}-{PIECE - 1}" in asked  # the rest of that piece only
    assert len(asked) == SIZE // PIECE + 1


def test_a_piece_whose_host_announced_more_and_went_silent_is_complete(
        host: Host, big_sha: str, tmp_path: Path) -> None:
    """Every byte of a piece arrived; the one more byte its Content-Length announced never
    does. The piece is done (the sha256 decides), not asked for again as `bytes=E-(E-1)`,
    which hosts answer with 416 or the whole file."""
    host.faults.overstate["/big"] = 1
    host.faults.hold.add("/big")
    d = downloader(tmp_path, host.url, read_timeout=0.5)
    blob = d.fetch_one(artifact(big_sha), "test")
    d.transport.close()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == big_sha
    assert sorted(span(r) for r in ranges_asked(host)) == [
        (a, a + PIECE) for a in range(0, SIZE, PIECE)]


def test_parts_always_cut_short_are_refused(host: Host, big_sha: str,
                                            tmp_path: Path) -> None:
    host.faults.truncate["/big"] = 1000
    d = downloader(tmp_path, host.url, retries=2)
    with pytest.raises(FetchError, match="gave up after 2 retries") as caught:
        d.fetch_one(artifact(big_sha), "test")
    d.transport.close()
    assert caught.value.url == host.url + "big"
    assert not d.cache.blob(big_sha).exists()


def write_partial(www: Path, part: Path, pieces: list[int]) -> None:
    """What a killed ranged download leaves: some pieces in place, holes, a ranges file."""
    data = (www / "big").read_bytes()
    part.parent.mkdir(parents=True, exist_ok=True)
    with part.open("wb") as f:
        for i in pieces:
            f.seek(i * PIECE)
            f.write(data[i * PIECE:(i + 1) * PIECE])
    parallel.save_done(part, SIZE, [(i * PIECE, (i + 1) * PIECE) for i in pieces])


def test_a_ranged_download_resumes_with_the_missing_pieces(host: Host, www: Path,
                                                           big_sha: str,
                                                           tmp_path: Path) -> None:
    d = downloader(tmp_path, host.url)
    write_partial(www, d.cache.part(big_sha), [0, 1, 4])
    blob = d.fetch_one(artifact(big_sha), "test")
    d.transport.close()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == big_sha
    assert sorted(span(r) for r in ranges_asked(host)) == [
        (i * PIECE, (i + 1) * PIECE) for i in (2, 3, 5, 6, 7)]
    assert leftovers(tmp_path) == []


def test_one_stream_continues_after_the_contiguous_prefix(host: Host, www: Path,
                                                          big_sha: str,
                                                          tmp_path: Path) -> None:
    d = downloader(tmp_path, host.url, parallel_parts=1)
    write_partial(www, d.cache.part(big_sha), [0, 1, 4])
    blob = d.fetch_one(artifact(big_sha), "test")
    d.transport.close()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == big_sha
    assert ranges_asked(host) == [f"bytes={2 * PIECE}-"]
    assert leftovers(tmp_path) == []


def test_a_wrong_piece_left_by_an_earlier_run_costs_one_fresh_download(
        host: Host, www: Path, big_sha: str, tmp_path: Path) -> None:
    d = downloader(tmp_path, host.url)
    part = d.cache.part(big_sha)
    write_partial(www, part, [0, 3])
    with part.open("r+b") as f:
        f.seek(3 * PIECE + 7)
        f.write(b"X")
    blob = d.fetch_one(artifact(big_sha), "test")
    d.transport.close()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == big_sha
    assert len(ranges_asked(host)) == 6 + 8  # the missing pieces, then all of them
    assert leftovers(tmp_path) == []


# -- a real `mx install`, killed mid-download ------------------------------------------


@pytest.mark.slow
def test_killed_parallel_install_resumes_without_refetching_pieces(
        big_site: Path, tmp_path: Path) -> None:
    with static_host(big_site) as host:
        sha = artifact_sha(big_site)
        path = f"/artifacts/sha256/{sha}"
        ranges = tmp_path / "mxhome" / "tmp" / f"{sha}.ranges"
        host.faults.throttle[path] = 8 << 20  # a second per piece and request
        proc = subprocess.Popen(mx_cmd("install", "bench/big@1.0.0", "--registry", host.url),
                                env=mx_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not (ranges.exists() and json.loads(ranges.read_text())["done"]):
                assert proc.poll() is None, "the install finished before it could be killed"
                assert time.monotonic() < deadline, "no piece finished"
                time.sleep(0.01)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        done = [tuple(s) for s in json.loads(ranges.read_text())["done"]]
        assert done and sum(b - a for a, b in done) < SIZE

        del host.faults.throttle[path]
        # The killed process's last requests may still be in the server's sockets, read
        # once its throttled answers fail: let them come in before counting.
        seen = -1
        while seen != len(host.faults.requests):
            seen = len(host.faults.requests)
            time.sleep(0.5)
        host.faults.requests.clear()
        res = mx_proc("install", "bench/big@1.0.0", "--registry", host.url)
        assert res.returncode == 0, res.stderr
        asked = [span(r) for p, r, _ in host.faults.requests if p == path]
        assert asked and all(b <= a0 or a >= b0 for a, b in asked for a0, b0 in done)
        assert sum(b - a for a, b in asked) == SIZE - sum(b - a for a, b in done), (asked, done)
        assert not (tmp_path / "mxhome" / "tmp" / f"{sha}.part").exists()
        assert not ranges.exists()
        verify = mx_proc("cache", "verify", "--json")
        assert verify.returncode == 0 and json.loads(verify.stdout)["corrupt"] == []


def test_parallel_parts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from mx.config import load_settings
    from mx.errors import ConfigError

    monkeypatch.setenv("MX_PARALLEL_PARTS", "8")
    assert load_settings().limits.parallel_parts == 8
    for bad in ("0", "65", "two"):
        monkeypatch.setenv("MX_PARALLEL_PARTS", bad)
        with pytest.raises(ConfigError, match="MX_PARALLEL_PARTS"):
            load_settings()


def test_a_fast_first_piece_keeps_the_file_to_one_stream(host: Host, big_sha: str,
                                                         tmp_path: Path) -> None:
    """A first piece at one_stream_rate or faster: the path does not limit a connection,
    so the rest comes in one request after it, on the same connection."""
    d = downloader(tmp_path, host.url, one_stream_rate=1)
    blob = d.fetch_one(artifact(big_sha), "test")
    d.transport.close()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == big_sha
    assert ranges_asked(host) == [f"bytes=0-{PIECE - 1}", f"bytes={PIECE}-"]
    assert len(host.faults.ports) == 1
    assert leftovers(tmp_path) == []


def test_a_slower_first_piece_brings_the_other_workers(host: Host, big_sha: str,
                                                       tmp_path: Path) -> None:
    d = downloader(tmp_path, host.url, one_stream_rate=1 << 40)
    d.fetch_one(artifact(big_sha), "test")
    d.transport.close()
    assert 1 < len(host.faults.ports) <= 4


def test_files_at_once_share_the_extra_connections(tmp_path: Path) -> None:
    """Every file has its own stream; the parallel_parts - 1 extra ones are shared by the
    files downloading at once (Transport.part_slots): four files of three pieces open at
    most 4 + 3 connections, not 4 x 3."""
    root = tmp_path / "www"
    root.mkdir()
    arts = []
    for i in range(4):
        data = random.Random(i).randbytes(3 * parallel.MIN_PIECE)
        (root / f"shard{i}").write_bytes(data)
        arts.append({"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                     "path": f"shard{i}", "urls": [f"shard{i}"]})
    with static_host(root) as h:
        for a in arts:  # slow enough that every worker's request overlaps the others
            h.faults.throttle[f"/{a['path']}"] = 32 << 20
        d = downloader(tmp_path, h.url, parallel_downloads=4)
        d.fetch_all(arts, "test")
        d.transport.close()
        assert len(h.faults.ports) <= 4 + 3
    for a in arts:
        assert d.cache.blob(str(a["sha256"])).read_bytes() == (root / str(a["path"])).read_bytes()


def test_one_connection_pool_for_every_file_and_part(host: Host, big_sha: str,
                                                     tmp_path: Path) -> None:
    """Pieces and files reuse the transport's one pool (httpbody.Connections, keep-alive
    connections): far fewer connections than requests."""
    d = downloader(tmp_path, host.url)
    d.fetch_one(artifact(big_sha), "test")
    pool = d.transport._bodies
    d.cache.blob(big_sha).unlink()
    d.fetch_one(artifact(big_sha), "test")
    assert pool is not None and d.transport._bodies is pool
    d.transport.close()
    assert len(ranges_asked(host)) == 2 * SIZE // PIECE
    assert len(host.faults.ports) <= 4  # at most one connection per part at once


@contextmanager
def batch_api(href: str, header: dict[str, object]) -> Iterator[str]:
    """A Git LFS batch endpoint whose one answer sends the client to `href` with `header`,
    as GitHub's or GitLab's sends it to a CDN. giftless serves its local store itself and
    ignores Range, so it cannot stand in for a ranged LFS download: this is that seam."""

    class Batch(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            asked = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps({"transfer": "basic", "objects": [
                {"oid": o["oid"], "size": o["size"],
                 "actions": {"download": {"href": href, "header": header}}}
                for o in asked["objects"]]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.git-lfs+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Batch)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/org/model.git"
    finally:
        server.shutdown()
        server.server_close()


def test_an_lfs_object_comes_in_ranged_parts_with_the_batch_api_s_header(
        host: Host, big_sha: str, tmp_path: Path) -> None:
    with batch_api(host.url + "big", {"Authorization": "RemoteAuth t0k"}) as remote:
        d = downloader(tmp_path, host.url)
        art = {**artifact(big_sha), "urls": [f"lfs+{remote}#{big_sha}"]}
        blob = d.fetch_one(art, "test")
        d.transport.close()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == big_sha
    assert sorted(span(r) for r in ranges_asked(host)) == [
        (a, a + PIECE) for a in range(0, SIZE, PIECE)]
    assert set(host.faults.authorization) == {"RemoteAuth t0k"}


@pytest.mark.parametrize("header", [{"X-Bad\r\nInjected": "1"}, {"A": "b\r\nc"}, {"A": 5},
                                    {"A": "\u20ac"}, {"A": "b\x00"},
                                    ["not", "a", "map"]])
def test_a_malformed_batch_header_is_refused(host: Host, big_sha: str, tmp_path: Path,
                                             header: object) -> None:
    with batch_api(host.url + "big", header) as remote:  # type: ignore[arg-type]
        d = downloader(tmp_path, host.url)
        art = {**artifact(big_sha), "urls": [f"lfs+{remote}#{big_sha}"]}
        with pytest.raises(FetchError, match="malformed header"):
            d.fetch_one(art, "test")
        d.transport.close()
    assert ranges_asked(host) == []


def test_an_lfs_href_off_http_is_refused(host: Host, big_sha: str, tmp_path: Path) -> None:
    with batch_api("file:///etc/passwd", {}) as remote:
        d = downloader(tmp_path, host.url)
        art = {**artifact(big_sha), "urls": [f"lfs+{remote}#{big_sha}"]}
        with pytest.raises(FetchError, match="not an http"):
            d.fetch_one(art, "test")
        d.transport.close()


@dataclass
class Signing:
    """An LFS host whose hrefs carry a token (?t=N) that stops working after `expire_after`
    requests: what a signed URL with `expires_in` does to a long download."""

    issued: int = 0
    valid_from: int = 1
    expire_after: int | None = None
    seen: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def signing_lfs(www: Path, signing: Signing) -> Iterator[tuple[str, Faults]]:
    """(an LFS remote whose batch API hands out signed hrefs to `www`'s files, the host's
    faults)."""

    class Signed(FaultyHandler):
        def serve(self, head: bool) -> None:
            token = int(parse_qs(urlsplit(self.path).query).get("t", ["0"])[0])
            with signing.lock:
                ok = token >= signing.valid_from
                signing.refused += not ok
                signing.seen += 1
                if signing.seen == signing.expire_after:  # this one is served still
                    signing.valid_from = signing.issued + 1
            if not ok:
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().serve(head)

    faults = Faults()
    server = make_server(www, handler=type("H", (Signed,), {"faults": faults}))
    serve_in_thread(server)
    files = f"http://127.0.0.1:{server.server_address[1]}/"

    class Batch(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            asked = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with signing.lock:
                signing.issued += 1
                href = f"{files}big?t={signing.issued}"
            body = json.dumps({"objects": [
                {"oid": o["oid"], "size": o["size"], "actions": {"download": {"href": href}}}
                for o in asked["objects"]]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    api = ThreadingHTTPServer(("127.0.0.1", 0), Batch)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{api.server_address[1]}/org/model.git", faults
    finally:
        api.shutdown()
        api.server_close()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("parts", [4, 1])
def test_an_lfs_href_that_expires_mid_download_is_asked_for_again(
        www: Path, big_sha: str, tmp_path: Path, parts: int) -> None:
    """A signed href outlived by a large download answered 403 to the next piece (or to the
    resumed stream): the download failed and its part file was dropped. The batch API is
    asked again for a new href, and the download goes on from where it was."""
    signing = Signing(expire_after=3 if parts > 1 else 1)
    with signing_lfs(www, signing) as (remote, faults):
        if parts == 1:
            faults.truncate["/big"] = 1  # the stream breaks half-way; its href expired
        d = downloader(tmp_path, "http://unused.invalid/", parallel_parts=parts)
        blob = d.fetch_one({**artifact(big_sha), "urls": [f"lfs+{remote}#{big_sha}"]}, "test")
        d.transport.close()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == big_sha
    assert signing.issued == 2 and signing.refused >= 1
    asked = [r for p, r, _ in faults.requests if p == "/big"]
    if parts == 1:  # the second href continues the stream: nothing is fetched twice
        assert asked[0] is None and asked[-1] == f"bytes={SIZE // 2}-"


def test_an_lfs_href_refused_from_the_start_is_reported_not_asked_again(
        www: Path, big_sha: str, tmp_path: Path) -> None:
    signing = Signing(valid_from=10 ** 6)
    with signing_lfs(www, signing) as (remote, _faults):
        d = downloader(tmp_path, "http://unused.invalid/")
        with pytest.raises(FetchError, match="HTTP 403") as refused:
            d.fetch_one({**artifact(big_sha), "urls": [f"lfs+{remote}#{big_sha}"]}, "test")
        d.transport.close()
    assert refused.value.status == 403
    assert signing.issued == 1
