"""The index builder under concurrency and kill -9: one build per output, documents
published after what they name, and no temp file inside the published output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

import mx.index_builder.build as build_module
import mx.index_builder.mirror as mirror_module
from mx.index_builder.workspace import lock_path
from mx.locking import acquire
from tests.support.bigmodel import mx_cmd, mx_env

TIMEOUT = 180


def named_files(doc: dict[str, Any]) -> list[str]:
    """Every file of the output a model document points at."""
    out = []
    for rec in doc["versions"].values():
        out += [rec["card"]["url"], rec["manifest_file"]["url"]]
        if rec.get("signature"):
            out.append(rec["signature"]["url"])
        out += [u for a in rec["artifacts"] for u in a["urls"] if not u.startswith("lfs+")]
    return out


def test_a_second_build_of_one_output_is_refused(mx, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                 registry_file: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "build-cache"
    held = acquire(lock_path(out, cache))  # as a build in another process holds it
    res = mx("index", "build", registry_file, "-o", out, "--cache-dir", cache, "--no-site")
    assert res.code == 1
    assert f"{out}: another `mx index build` is writing this output" in res.err
    assert "--wait" in res.err and not out.exists()
    res = mx("index", "build", registry_file, "-o", out, "--cache-dir", cache, "--no-site",
             "--wait", "0.2")
    assert res.code == 1 and "after waiting 0.2 s" in res.err
    assert held is not None
    held.release()
    assert mx("index", "build", registry_file, "-o", out, "--cache-dir", cache,
              "--no-site").code == 0


@pytest.mark.slow
def test_parallel_builds_of_one_output(tmp_path: Path, registry_file: Path) -> None:
    out = tmp_path / "out"

    def race(*extra: str) -> list[tuple[int, str]]:
        procs = [subprocess.Popen(mx_cmd("index", "build", registry_file, "-o", out,
                                         "--no-site", *extra),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=mx_env()) for _ in range(2)]
        errs = [p.communicate(timeout=TIMEOUT)[1] for p in procs]
        return [(p.returncode, err) for p, err in zip(procs, errs, strict=True)]

    for code, err in race():
        assert code in (0, 1), err
        assert code == 0 or "another `mx index build` is writing this output" in err
    assert [code for code, _ in race("--wait", str(TIMEOUT))] == [0, 0]
    assert not [p for p in out.rglob(".*")]


def test_documents_are_written_after_what_they_name(monkeypatch: pytest.MonkeyPatch,
                                                    mx, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                    registry_file: Path) -> None:
    out = tmp_path / "out"
    order: list[str] = []
    temp_dirs: list[Path] = []
    real_write, real_fetch = build_module.write_if_changed, mirror_module.fetch_resumable

    def write(path: Path, data: bytes, tmp_dir: Path | None = None) -> bool:
        rel = path.relative_to(out).as_posix()
        if rel.startswith("index/models/"):
            for name in named_files(json.loads(data)):
                assert (out / name).is_file(), f"{rel} written before {name}"
        if rel in ("index/search.json", "index/config.json"):
            assert (out / "index/models/acme/iris.json").is_file()
            assert (out / "index/models/acme/resnet.json").is_file()
        order.append(rel)
        assert tmp_dir is not None and tmp_dir.stat().st_dev == out.stat().st_dev
        temp_dirs.append(tmp_dir)
        return real_write(path, data, tmp_dir)

    def fetch(dest: Path, sha: str, size: int, part: Path, *args: Any) -> None:
        temp_dirs.append(part.parent)
        real_fetch(dest, sha, size, part, *args)

    monkeypatch.setattr(build_module, "write_if_changed", write)
    monkeypatch.setattr(mirror_module, "fetch_resumable", fetch)
    assert mx("index", "build", registry_file, "-o", out, "--no-site").code == 0
    assert order.index("index/search.json") > max(
        i for i, o in enumerate(order) if o.startswith("index/models/"))
    assert order[-1] == "index/config.json"
    # temp files lived on the output's filesystem, outside the output, and are gone
    assert temp_dirs and all(out.resolve() not in d.resolve().parents for d in temp_dirs)
    assert not any(d.exists() for d in temp_dirs)
    assert not (out / "artifacts" / ".tmp").exists()


def test_a_rebuild_reclaims_what_a_killed_build_left(mx, registry_file: Path,  # type: ignore[no-untyped-def]
                                                     built: Path) -> None:
    left = [built / "artifacts/.tmp/0123456789abcdef.4242.xyz.part",
            built / "index/.search.json.k2j3h4g5.tmp",
            built / "index/models/acme/.iris.json.a1b2c3d4.tmp",
            built / "tuf/.timestamp.json.q9w8e7r6.tmp"]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    keep = built / "index/.well-known-file"
    keep.write_bytes(b"not ours")
    assert mx("index", "build", registry_file, "-o", built, "--no-site").code == 0
    assert not any(p.exists() for p in left) and keep.exists()
    assert not (built / "artifacts/.tmp").exists()
    assert not [p for p in built.rglob(".*.tmp")]
