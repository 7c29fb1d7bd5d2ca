from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import mx as mxapi
from mx.client.index import registry_key
from tests.support.republish import resign
from tests.support.servers import Host, static_host
from tests.support.terminal import stderr_on_tty


def blob_of(tmp_path: Path, sha: str) -> bool:
    return (tmp_path / "mxhome" / "blobs" / "sha256" / sha).exists()


def nothing_linked(tmp_path: Path) -> bool:
    models = tmp_path / "mxhome" / "models"
    return not models.exists() or not any(p.is_file() for p in models.rglob("*"))


def leftovers(tmp_path: Path) -> list[Path]:
    d = tmp_path / "mxhome" / "tmp"
    return sorted(d.iterdir()) if d.exists() else []


def test_install_by_range(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = mx("install", "acme/iris@^1", "--registry", host.url, "--json")
    assert res.code == 0, res.err
    [got] = json.loads(res.out)
    assert got["version"] == "1.1.0"  # 1.2.0 is yanked, 2.0.0-rc.1 a pre-release
    assert "yanked" not in res.err
    path = Path(got["files"]["model.onnx"])
    assert path.is_file()
    key = registry_key(host.url)
    assert path == tmp_path / "mxhome/models" / key / "acme/iris/1.1.0/fp32/model.onnx"
    import hashlib

    blob = tmp_path / "mxhome/blobs/sha256" / hashlib.sha256(path.read_bytes()).hexdigest()
    assert os.path.samefile(path, blob)  # a hard link on one filesystem
    assert oct(blob.stat().st_mode & 0o777) == "0o444"
    assert (tmp_path / "mxhome/CACHEDIR.TAG").read_text().startswith("Signature: 8a477f59")


def test_yanked_only_by_exact_pin(mx, host: Host) -> None:  # type: ignore[no-untyped-def]
    res = mx("install", "acme/iris@1.2.0", "--registry", host.url)
    assert res.code == 0
    assert "warning: acme/iris 1.2.0 is yanked: wrong weights; use 1.1.0" in res.err
    res = mx("install", "acme/iris@~1.2", "--registry", host.url)
    assert res.code == 1
    assert "no version matches '~1.2'" in res.err and "1.2.0 matches but is yanked" in res.err


def test_prereleases_and_channels(mx, host: Host) -> None:  # type: ignore[no-untyped-def]
    def version_of(spec: str) -> str:
        res = mx("install", spec, "--registry", host.url, "--json")
        assert res.code == 0, res.err
        return str(json.loads(res.out)[0]["version"])

    assert version_of("acme/iris@>=1.0") == "1.1.0"
    assert version_of("acme/iris@^2.0.0-rc.1") == "2.0.0-rc.1"
    assert version_of("acme/iris@stable") == "1.1.0"
    assert version_of("acme/iris@canary") == "2.0.0-rc.1"
    assert version_of("acme/iris") == "1.1.0"  # latest: highest stable, not yanked
    res = mx("install", "acme/iris@beta", "--registry", host.url)
    assert res.code == 1 and "no channel 'beta' (channels: canary, stable)" in res.err


def test_variant_and_format_selection(mx, host: Host) -> None:  # type: ignore[no-untyped-def]
    res = mx("install", "acme/iris@1.0.0", "--variant", "int8", "--registry", host.url)
    assert res.code == 1 and "no variant 'int8' (variants: fp32)" in res.err
    res = mx("install", "acme/iris@1.0.0", "--format", "tflite", "--registry", host.url)
    assert res.code == 1 and "no format 'tflite' (formats: onnx)" in res.err
    res = mx("install", "acme/iris@1.0.0", "--format", "onnx", "--registry", host.url)
    assert res.code == 0


def test_install_to_directory(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dest = tmp_path / "vendor" / "iris"
    res = mx("install", "acme/iris@1.0.0", "--to", dest, "--registry", host.url)
    assert res.code == 0, res.err
    assert (dest / "model.onnx").is_file()
    assert str(dest) in res.out


def test_second_install_checks_metadata_and_fetches_nothing_else(mx, host: Host) -> None:  # type: ignore[no-untyped-def]
    assert mx("install", "acme/iris@1.0.0", "--registry", host.url).code == 0
    host.faults.requests.clear()
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 0 and "already installed" in res.out
    # A probe for a newer root and the timestamp; the signed hash of the model document is
    # unchanged, so the document itself is not fetched again.
    assert [p for p, _, _ in host.faults.requests] == ["/tuf/2.root.json",
                                                        "/tuf/timestamp.json"]


def test_fresh_index_needs_no_request(mx, host: Host, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MX_INDEX_TTL", "600")
    assert mx("install", "acme/iris@1.0.0", "--registry", host.url).code == 0
    host.faults.requests.clear()
    assert mx("install", "acme/iris@1.0.0", "--registry", host.url).code == 0
    assert host.faults.requests == []
    assert mx("install", "acme/iris@1.0.0", "--registry", host.url, "--refresh").code == 0
    assert host.faults.requests and all(p.startswith("/tuf/")
                                        for p, _, _ in host.faults.requests)


def test_offline(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert mx("install", "acme/iris@1.0.0", "--registry", host.url).code == 0
    host.server.shutdown()
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url, "--offline")
    assert res.code == 0, res.err
    res = mx("install", "acme/iris@1.1.0", "--registry", host.url, "--offline")
    assert res.code == 1 and "model.onnx, README.md, mx.yaml not in the cache" in res.err
    res = mx("install", "acme/resnet", "--registry", host.url, "--offline")
    assert res.code == 1 and "not in the offline cache" in res.err


def test_unknown_model_is_404(mx, host: Host) -> None:  # type: ignore[no-untyped-def]
    res = mx("install", "acme/nope@^1", "--registry", host.url)
    assert res.code == 1
    assert "index/models/acme/nope.json: not in the registry" in res.err
    assert "its signed metadata lists no such file" in res.err


def test_server_errors_are_retried(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((host.root / "index/models/acme/iris.json").read_text())
    sha = doc["versions"]["1.0.0"]["artifacts"][0]["sha256"]
    host.faults.status[f"/artifacts/sha256/{sha}"] = [500, 503]
    host.faults.status["/index/models/acme/iris.json"] = [502]
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 0, res.err


def test_persistent_500_fails_cleanly(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((host.root / "index/models/acme/iris.json").read_text())
    sha = doc["versions"]["1.0.0"]["artifacts"][0]["sha256"]
    host.faults.status[f"/artifacts/sha256/{sha}"] = [500] * 50
    # The lfs+file:// fallback URL would succeed: take it away to see the failure.
    art = doc["versions"]["1.0.0"]["artifacts"][0]
    art["urls"] = art["urls"][:1]
    (host.root / "index/models/acme/iris.json").write_text(json.dumps(doc))
    resign(host.root)
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 1
    assert "HTTP 500" in res.err and "gave up after" in res.err
    assert not blob_of(tmp_path, sha) and leftovers(tmp_path) == []
    assert nothing_linked(tmp_path)


def test_dropped_connection_resumes_with_range(mx, tmp_path: Path, built: Path) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((built / "index/models/acme/iris.json").read_text())
    sha = doc["versions"]["1.0.0"]["artifacts"][0]["sha256"]
    with static_host(built) as host:
        host.faults.truncate[f"/artifacts/sha256/{sha}"] = 1
        res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
        assert res.code == 0, res.err
        ranges = [r for p, r, _ in host.faults.requests if p.endswith(sha)]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1][6:].rstrip("-")) > 0


def test_wrong_bytes_are_refused(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((host.root / "index/models/acme/iris.json").read_text())
    sha = doc["versions"]["1.0.0"]["artifacts"][0]["sha256"]
    host.faults.corrupt.add(f"/artifacts/sha256/{sha}")
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 1
    assert "sha256 is" in res.err and f"expected {sha}" in res.err
    assert not blob_of(tmp_path, sha) and leftovers(tmp_path) == []
    assert nothing_linked(tmp_path)


def test_truncated_file_on_host_is_refused(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((host.root / "index/models/acme/iris.json").read_text())
    art = doc["versions"]["1.0.0"]["artifacts"][0]
    art["urls"] = art["urls"][:1]
    (host.root / "index/models/acme/iris.json").write_text(json.dumps(doc))
    resign(host.root)
    blob = host.root / "artifacts/sha256" / art["sha256"]
    data = blob.read_bytes()
    blob.chmod(0o644)
    blob.write_bytes(data + b"extra")
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 1 and "more than the" in res.err
    blob.write_bytes(data[:-10])
    host.faults.requests.clear()
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 1 and "file ends after" in res.err
    assert not blob_of(tmp_path, art["sha256"]) and leftovers(tmp_path) == []
    assert nothing_linked(tmp_path)


def test_newer_index_major_is_refused(mx, host: Host) -> None:  # type: ignore[no-untyped-def]
    path = host.root / "index/models/acme/iris.json"
    doc = json.loads(path.read_text())
    doc["mx_index"] = "2.0"
    path.write_text(json.dumps(doc))
    resign(host.root)
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 1 and "mx_index 2.0 is newer than this mx understands" in res.err


def test_malformed_index_document(mx, host: Host) -> None:  # type: ignore[no-untyped-def]
    (host.root / "index/models/acme/iris.json").write_text("{not json")
    resign(host.root)
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 1 and "not valid JSON" in res.err


def test_no_registry_configured(mx) -> None:  # type: ignore[no-untyped-def]
    res = mx("install", "acme/iris")
    assert res.code == 1 and "no registry is configured" in res.err and "MX_REGISTRY" in res.err


def test_registry_from_config_file(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    Path(os.environ["MX_CONFIG"]).write_text(
        f'default_registry = "test"\n[registries.test]\nurl = "{host.url}"\n')
    assert mx("install", "acme/iris@1.0.0").code == 0


def test_lfs_file_url_fallback(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The mirror is gone from the host: the lfs+ URL (the source's LFS store) serves it.
    for blob in (host.root / "artifacts/sha256").iterdir():
        blob.unlink()
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 0, res.err


def test_file_registry(mx, built: Path) -> None:  # type: ignore[no-untyped-def]
    res = mx("install", "acme/resnet", "--registry", built.as_uri())
    assert res.code == 0, res.err
    res = mx("install", "acme/resnet", "--registry", str(built))
    assert res.code == 0, res.err


def test_python_api_install_and_load(host: Host, tmp_path: Path) -> None:
    installed = mxapi.install("acme/resnet@^0.1", registry=host.url)
    assert installed.version == "0.1.0" and installed.artifact("onnx").is_file()
    session = mxapi.load("acme/resnet@^0.1", registry=host.url)
    out = session.run(None, {"input": np.ones((3, 8), np.float32)})[0]
    assert out.shape == (3, 5) and np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
    # the wrapper checks inputs against the signature before onnxruntime sees them
    assert session.name == "acme/resnet" and session.version == "0.1.0"
    assert [i.name for i in session.get_inputs()] == ["input"]  # the session's own API
    assert np.array_equal(session(input=np.ones((3, 8), np.float32))[session.outputs[0].name],
                          out)
    bad = [({"input": np.ones((3, 8), np.float64)}, "input 'input': dtype float64, the model "
                                                   "takes float32"),
           ({"input": np.ones((3, 7), np.float32)}, "input 'input': dim 1 is 7, the model "
                                                    "takes 8 (shape [-1, 8])"),
           ({"x": np.ones((3, 8), np.float32)}, "unknown input 'x'; the model takes 'input'"),
           ({}, "missing input 'input'")]
    for feeds, message in bad:
        with pytest.raises(mxapi.MxError) as info:
            session.run(None, feeds)
        assert str(info.value) == message


def test_info(mx, host: Host) -> None:  # type: ignore[no-untyped-def]
    res = mx("info", "acme/iris", "--registry", host.url)
    assert res.code == 0
    assert "latest 1.1.0" in res.out and "YANKED: wrong weights" in res.out
    assert "stable=1.1.0" in res.out
    res = mx("info", "acme/iris", "--registry", host.url, "--json")
    assert json.loads(res.out)["name"] == "acme/iris"


def test_card_is_installed_and_verified(mx, host: Host) -> None:  # type: ignore[no-untyped-def]
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url, "--json")
    files = json.loads(res.out)[0]["files"]
    card = Path(files["README.md"]).read_text()
    assert card.startswith("---\nlicense: apache-2.0") and "## Evaluation" in card
    host.faults.corrupt.add("/cards/acme/iris/1.1.0.md")
    res = mx("install", "acme/iris@1.1.0", "--registry", host.url)
    assert res.code == 1 and "README.md from" in res.err and "sha256 is" in res.err


def test_missing_artifact_on_host(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((host.root / "index/models/acme/iris.json").read_text())
    art = doc["versions"]["1.0.0"]["artifacts"][0]
    art["urls"] = art["urls"][:1]
    (host.root / "index/models/acme/iris.json").write_text(json.dumps(doc))
    resign(host.root)
    (host.root / "artifacts/sha256" / art["sha256"]).unlink()
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 1
    assert f"artifacts/sha256/{art['sha256']}: HTTP 404" in res.err
    assert nothing_linked(tmp_path) and leftovers(tmp_path) == []


def test_progress_bar_only_on_a_terminal(host: Host, tmp_path: Path) -> None:
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "mx", "install", "acme/iris@1.0.0", "--registry", host.url]
    code, drawn = stderr_on_tty(cmd)
    assert code == 0
    assert "model.onnx" in drawn and "bytes" in drawn  # the bar: file name and byte counts
    import shutil

    shutil.rmtree(tmp_path / "mxhome")
    quiet = subprocess.run(cmd, capture_output=True, text=True)
    assert quiet.returncode == 0
    # Off a terminal: no bar, only the one-time notice of the root trusted on first use.
    assert [line.split(" of ")[0] for line in quiet.stderr.splitlines()] == [
        "warning: trusting the root"]


def test_credentials_token_and_netrc(mx, host: Host, tmp_path: Path,  # type: ignore[no-untyped-def]
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MX_TOKEN", "s3cret")
    assert mx("install", "acme/iris@1.0.0", "--registry", host.url).code == 0
    assert host.faults.authorization and all(a == "Bearer s3cret"
                                              for a in host.faults.authorization)
    monkeypatch.delenv("MX_TOKEN")
    import shutil

    shutil.rmtree(tmp_path / "mxhome")
    host.faults.authorization.clear()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password wonderland\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert mx("install", "acme/iris@1.0.0", "--registry", host.url).code == 0
    import base64

    expected = "Basic " + base64.b64encode(b"alice:wonderland").decode()
    assert host.faults.authorization and all(a == expected for a in host.faults.authorization)


def test_search(mx, host: Host) -> None:  # type: ignore[no-untyped-def]
    res = mx("search", "resnet", "--registry", host.url, "--json")
    assert res.code == 0 and [m["name"] for m in json.loads(res.out)] == ["acme/resnet"]
    res = mx("search", "linear classifier", "--registry", host.url, "--json")
    assert [m["name"] for m in json.loads(res.out)] == ["acme/iris", "acme/resnet"]
    res = mx("search", "", "--tag", "example", "--task", "tabular-classification",
             "--registry", host.url)
    assert res.code == 0 and "acme/iris" in res.out and "1.1.0" in res.out
    res = mx("search", "nothing-like-this", "--registry", host.url)
    assert res.code == 0 and res.out == "" and "no models match" in res.err
