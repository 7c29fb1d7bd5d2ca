from __future__ import annotations

import json
from pathlib import Path

from tests.support.servers import Host


def test_ls_verify_prune_clean(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert mx("install", "acme/iris@1.0.0", "--registry", host.url).code == 0
    assert mx("install", "acme/resnet", "--registry", host.url).code == 0
    rows = json.loads(mx("cache", "ls", "--json").out)
    assert sorted((r["name"], r["version"]) for r in rows) == [("acme/iris", "1.0.0"),
                                                               ("acme/resnet", "0.1.0")]
    assert all(r["size"] > 0 for r in rows)
    assert mx("cache", "verify").code == 0

    iris = next(r for r in rows if r["name"] == "acme/iris")
    blob = tmp_path / "mxhome/blobs/sha256" / iris["files"]["model.onnx"]
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[10] ^= 0xFF
    blob.write_bytes(bytes(data))
    res = mx("cache", "verify")
    assert res.code == 1 and f"corrupt blob {blob.name}" in res.err
    res = mx("cache", "verify", "--repair")
    assert res.code == 0 and not blob.exists()
    assert len(json.loads(mx("cache", "ls", "--json").out)) == 1
    # The next install brings it back, verified.
    assert mx("install", "acme/iris@1.0.0", "--registry", host.url).code == 0
    assert mx("install", "acme/resnet", "--registry", host.url).code == 0
    assert mx("cache", "verify").code == 0

    # prune keeps what installed models use, removes the rest.
    stray = tmp_path / "mxhome/blobs/sha256" / ("0" * 64)
    stray.write_bytes(b"unused")
    res = mx("cache", "prune")
    assert res.code == 0 and "removed 1 files" in res.out
    assert not stray.exists()
    # model, card, mx.yaml and the signature bundle, for each of the two
    assert len(list((tmp_path / "mxhome/blobs/sha256").iterdir())) == 8

    res = mx("cache", "clean", "--yes")
    assert res.code == 0
    # An empty cache keeps its tag and its lock, so a second clean (or one interrupted
    # and run again) still recognises it.
    home = tmp_path / "mxhome"
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == [
        "CACHEDIR.TAG", "locks", "locks/cache.lock"]
    assert mx("cache", "clean", "--yes").code == 0
    assert json.loads(mx("cache", "ls", "--json").out) == []


def test_clean_refuses_a_folder_that_is_not_a_cache(mx, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                    monkeypatch) -> None:
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    monkeypatch.setenv("MX_HOME", str(other))
    res = mx("cache", "clean", "--yes")
    assert res.code == 1 and "not an mx cache" in res.err
    assert (other / "thesis.tex").exists()
