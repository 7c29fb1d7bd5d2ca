"""Many mx processes on one cache: parallel installs, prune and clean racing them, and the
lock protocol that makes that safe (mx.client.cache)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mx.client.cache import Cache
from mx.client.cache_gc import PART_GRACE, prune, reclaim_tmp
from mx.client.install import ClientSession
from mx.config import load_settings
from mx.locking import acquire
from tests.support.bigmodel import mx_cmd, mx_env, mx_proc
from tests.support.servers import Host

TIMEOUT = 120


def artifact_paths(host: Host) -> dict[str, int]:
    """URL path -> size of every mirrored artifact, card and manifest in the world."""
    out = {}
    for doc_path in (host.root / "index/models").rglob("*.json"):
        doc = json.loads(doc_path.read_text())
        for rec in doc["versions"].values():
            for art in rec["artifacts"]:
                out[f"/artifacts/sha256/{art['sha256']}"] = art["size"]
            for key in ("card", "manifest_file"):
                out["/" + rec[key]["url"]] = rec[key]["size"]
    return out


def slow_down(host: Host, seconds: float) -> None:
    """Every file download takes about `seconds`: installs overlap, and spend that long
    between fetching a blob and linking it (the window prune must respect)."""
    for path, size in artifact_paths(host).items():
        host.faults.throttle[path] = max(int(size / seconds), 1)


def start(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(mx_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=mx_env())


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    results = []
    for p in procs:
        _, err = p.communicate(timeout=TIMEOUT)
        results.append((p.returncode, err))
    return results


def leftovers(home: Path) -> list[str]:
    """What interrupted work leaves: stage folders, temp records, partial downloads."""
    found = [p for p in home.rglob(".*") if p.name != ".gitignore"]
    if (home / "tmp").exists():
        found += list((home / "tmp").iterdir())
    return sorted(str(p.relative_to(home)) for p in found)


def assert_consistent(home: Path) -> None:
    res = mx_proc("cache", "verify", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["corrupt"] == [] and report["broken"] == {}
    for link in (home / "models").rglob("*") if (home / "models").exists() else []:
        assert link.exists(), f"dangling {link}"


INSTALLS = ["acme/iris@1.0.0", "acme/iris@1.1.0", "acme/resnet@0.1.0", "acme/iris@1.0.0"]


@pytest.mark.slow
def test_parallel_installs_share_one_cache(host: Host, tmp_path: Path) -> None:
    slow_down(host, 0.3)
    procs = [start("install", INSTALLS[i % len(INSTALLS)], "--registry", host.url)
             for i in range(8)]
    for code, err in finish(procs):
        assert code == 0, err
    home = tmp_path / "mxhome"
    assert_consistent(home)
    rows = json.loads(mx_proc("cache", "ls", "--json").stdout)
    assert sorted((r["name"], r["version"]) for r in rows) == [
        ("acme/iris", "1.0.0"), ("acme/iris", "1.1.0"), ("acme/resnet", "0.1.0")]
    assert leftovers(home) == []
    # Each blob was downloaded once, however many processes wanted it.
    model_gets = [p for p, r, _ in host.faults.requests if p.startswith("/artifacts/")]
    assert len(model_gets) == len(set(model_gets))


def test_metadata_refreshes_one_process_at_a_time(host: Host,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """python-tuf relinks root.json on every refresh (remove, then symlink); two processes
    doing that at once crashed one with FileExistsError. The window is widened here, and
    two sessions (own files, as two processes would have) refresh at once."""
    from tuf.ngclient import updater as tuf_updater

    def slow_relink(self: Any) -> None:
        link = os.path.join(self._dir, "root.json")
        with contextlib.suppress(FileNotFoundError):
            os.remove(link)
        time.sleep(0.3)
        os.symlink(os.path.join("root_history", f"{self._trusted_set.root.version}.root.json"),
                   link)

    monkeypatch.setattr(tuf_updater.Updater, "_update_root_symlink", slow_relink)

    def read() -> str:
        session = ClientSession(load_settings(host.url), refresh=True)
        try:
            return str(session.index().model_document("acme/iris").data["name"])
        finally:
            session.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(lambda _: read(), range(2))) == ["acme/iris"] * 2


@pytest.mark.slow
def test_prune_and_clean_race_installs(host: Host, tmp_path: Path) -> None:
    slow_down(host, 0.3)
    home = tmp_path / "mxhome"
    for round_ in range(3):
        installs = [start("install", spec, "--registry", host.url) for spec in INSTALLS]
        time.sleep(0.4 + 0.2 * round_)  # the installs are downloading now
        tidy = [start("cache", "prune"), start("cache", "prune")]
        if round_ == 1:
            tidy.append(start("cache", "clean", "--yes"))
        for code, err in finish(installs + tidy):
            assert code == 0, err
        assert_consistent(home)
        assert leftovers(home) == []
    # Nothing prune or clean did stops the next install from working.
    assert mx_proc("install", "acme/iris@1.0.0", "--registry", host.url).returncode == 0
    assert_consistent(home)


def test_prune_spares_what_a_live_process_holds(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "mxhome")
    cache.ensure()
    unused = "a" * 64
    cache.blob(unused).write_bytes(b"fetched, not linked yet")
    part = cache.part("b" * 64)
    part.write_bytes(b"half a download")
    stage = cache.models / "r" / "acme" / "m" / "1.0.0" / ".cpu.stage-0123abcd"
    stage.mkdir(parents=True)
    with cache.pinned([unused]), acquire(cache.blob_lock_path("b" * 64)), \
            acquire(cache.variant_lock_path(stage.parent / "cpu")):
        assert prune(cache) == (0, 0)
        assert cache.blob(unused).exists() and part.exists() and stage.exists()
    files, freed = prune(cache)
    assert files == 3 and freed == len(b"fetched, not linked yet") + len(b"half a download")
    assert not cache.blob(unused).exists() and not part.exists() and not stage.exists()
    # and the lock files of pruned blobs go with them
    assert not cache.blob_lock_path(unused).exists()


def test_install_reclaims_only_old_idle_parts(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "mxhome")
    cache.ensure()
    old, fresh, busy = (cache.part(c * 64) for c in "abc")
    for p in (old, fresh, busy):
        p.write_bytes(b"x")
    long_ago = time.time() - PART_GRACE - 60
    os.utime(old, (long_ago, long_ago))
    os.utime(busy, (long_ago, long_ago))
    with acquire(cache.blob_lock_path("c" * 64)):
        tally = reclaim_tmp(cache)
    assert tally.files == 1 and not old.exists() and fresh.exists() and busy.exists()


def test_clean_waits_for_live_users_then_empties(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache = Cache(tmp_path / "mxhome")
    user = cache.shared()  # as an install in another process holds it
    (cache.blobs / ("a" * 64)).write_bytes(b"x")
    res = mx("cache", "clean", "--yes", "--wait", "0.2")
    assert res.code == 1
    assert "another mx process is using the cache" in res.err and "nothing was removed" in res.err
    assert (cache.blobs / ("a" * 64)).exists()
    user.release()
    assert mx("cache", "clean", "--yes").code == 0
    assert not cache.blobs.exists() and (cache.home / "CACHEDIR.TAG").exists()


def test_interrupted_clean_can_run_again(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "mxhome"
    Cache(home).ensure()
    (home / "models" / "r").mkdir(parents=True)
    (home / "locks" / ("a" * 64 + ".lock")).write_bytes(b"")
    # As a clean killed half-way leaves it: the tag is still there, so it is still ours.
    assert mx("cache", "clean", "--yes").code == 0
    assert sorted(p.name for p in home.iterdir()) == ["CACHEDIR.TAG", "locks"]
    assert [p.name for p in (home / "locks").iterdir()] == ["cache.lock"]


def test_an_install_reclaims_what_killed_installs_left(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert mx("install", "acme/iris@1.0.0", "--registry", host.url).code == 0
    version_dir = next((tmp_path / "mxhome" / "models").glob("*/acme/iris/1.0.0"))
    left = [version_dir / ".fp32.stage-0123abcd", version_dir / ".fp32.retired-89abcdef"]
    for folder in left:
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "model.onnx").write_bytes(b"half-linked")
    (version_dir / ".fp32.record.json.x1y2z3.tmp").write_bytes(b"{")
    # another version's install, not this one's, finds and removes them
    assert mx("install", "acme/resnet@0.1.0", "--registry", host.url).code == 0
    assert sorted(p.name for p in version_dir.iterdir()) == ["fp32", "fp32.record.json"]
