"""Downloads continue where a killed process stopped (tmp/<sha256>.part and HTTP Range),
and a prefix that turns out wrong costs one fresh download, never a wrong install."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bigmodel import BIG_SIZE, artifact_sha, mx_cmd, mx_env, mx_proc
from tests.support.republish import resign
from tests.support.servers import Host, static_host

SIZE = BIG_SIZE


@pytest.fixture
def big_host(big_site: Path) -> Iterator[Host]:
    with static_host(big_site) as h:
        yield h


def wait_for(part: Path, size: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (part.exists() and part.stat().st_size >= size):
        assert proc.poll() is None, "the install finished before it could be killed"
        assert time.monotonic() < deadline, "the download did not start"
        time.sleep(0.01)


@pytest.mark.slow
def test_killed_install_resumes_with_range(big_host: Host, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """One stream per file (the ranged layout is tests/test_parallel_download.py's)."""
    monkeypatch.setenv("MX_PARALLEL_PARTS", "1")
    sha = artifact_sha(big_host.root)
    path = f"/artifacts/sha256/{sha}"
    part = tmp_path / "mxhome" / "tmp" / f"{sha}.part"
    big_host.faults.throttle[path] = 24 << 20  # about 3 s for the whole file
    proc = subprocess.Popen(mx_cmd("install", "bench/big@1.0.0", "--registry", big_host.url),
                            env=mx_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(part, 16 << 20, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    stopped = part.stat().st_size
    assert 16 << 20 <= stopped < SIZE

    del big_host.faults.throttle[path]
    big_host.faults.requests.clear()
    res = mx_proc("install", "bench/big@1.0.0", "--registry", big_host.url)
    assert res.returncode == 0, res.stderr
    ranges = [r for p, r, _ in big_host.faults.requests if p == path]
    assert ranges == [f"bytes={stopped}-"]  # one request, for the rest only
    assert not part.exists()
    verify = mx_proc("cache", "verify", "--json")
    assert verify.returncode == 0 and json.loads(verify.stdout)["corrupt"] == []


def test_wrong_prefix_costs_one_fresh_download(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((host.root / "index/models/acme/iris.json").read_text())
    art = doc["versions"]["1.0.0"]["artifacts"][0]
    part = tmp_path / "mxhome" / "tmp" / f"{art['sha256']}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * (art["size"] // 2))  # not the start of this file
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 0, res.err
    ranges = [r for p, r, _ in host.faults.requests if p.endswith(art["sha256"])]
    assert ranges == [f"bytes={art['size'] // 2}-", None]
    assert not part.exists()
    assert mx("cache", "verify").code == 0


def test_host_ignoring_range_still_installs_right_bytes(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((host.root / "index/models/acme/iris.json").read_text())
    art = doc["versions"]["1.0.0"]["artifacts"][0]
    blob = host.root / "artifacts/sha256" / art["sha256"]
    part = tmp_path / "mxhome" / "tmp" / f"{art['sha256']}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(blob.read_bytes()[:10])  # a right prefix, from a killed run
    host.faults.ignore_range.add(f"/artifacts/sha256/{art['sha256']}")
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 0, res.err
    assert mx("cache", "verify").code == 0 and not part.exists()


def test_host_announcing_more_than_it_sends(mx, host: Host) -> None:  # type: ignore[no-untyped-def]
    """Content-Length beyond the body: every promised byte arrived, so the sha256 decides
    (this used to fail with "ends after N bytes; the index promised N")."""
    doc = json.loads((host.root / "index/models/acme/iris.json").read_text())
    art = doc["versions"]["1.0.0"]["artifacts"][0]
    host.faults.overstate[f"/artifacts/sha256/{art['sha256']}"] = 100
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 0, res.err
    assert mx("cache", "verify").code == 0


def test_host_with_less_than_the_prefix(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A Range past the host's end (416) is not the last word: one fresh download says
    what is wrong, in the usual words."""
    doc = json.loads((host.root / "index/models/acme/iris.json").read_text())
    art = doc["versions"]["1.0.0"]["artifacts"][0]
    art["urls"] = art["urls"][:1]
    (host.root / "index/models/acme/iris.json").write_text(json.dumps(doc))
    resign(host.root)
    blob = host.root / "artifacts/sha256" / art["sha256"]
    data = blob.read_bytes()
    part = tmp_path / "mxhome" / "tmp" / f"{art['sha256']}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:-10])
    blob.chmod(0o644)
    blob.write_bytes(data[:-20])
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 1 and "file ends after" in res.err, res.err
    ranges = [r for p, r, _ in host.faults.requests if p.endswith(art["sha256"])]
    assert ranges[:2] == [f"bytes={len(data) - 10}-", None]
    assert not part.exists()
