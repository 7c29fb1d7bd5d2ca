"""mx.toml + mx.lock: reproducible installs, and --locked with no index at all."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from tests.support.servers import Host, static_host


def write_project(d: Path, registry: str, models: str) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "mx.toml").write_text(f'registry = "{registry}"\n\n[models]\n{models}')


def test_install_project_writes_lock(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proj = tmp_path / "proj"
    write_project(proj, host.url, '"acme/iris" = "^1.0"\n'
                                  '"acme/resnet" = { version = "~0.1", format = "onnx" }\n')
    res = mx("install", "--project", proj, "--json")
    assert res.code == 0, res.err
    assert [r["version"] for r in json.loads(res.out)] == ["1.1.0", "0.1.0"]
    lock = tomllib.loads((proj / "mx.lock").read_text())
    assert lock["version"] == 1
    iris = next(m for m in lock["model"] if m["name"] == "acme/iris")
    assert iris["version"] == "1.1.0" and iris["requested"] == "^1.0"
    assert iris["file"][0]["urls"][0].startswith(host.url + "artifacts/sha256/")
    before = (proj / "mx.lock").read_text()
    assert mx("install", "--project", proj).code == 0
    assert (proj / "mx.lock").read_text() == before


def test_lock_pins_until_range_changes(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proj = tmp_path / "proj"
    write_project(proj, host.url, '"acme/iris" = "1.0.0"\n')
    assert mx("install", "--project", proj).code == 0
    write_project(proj, host.url, '"acme/iris" = "^1.0"\n')  # 1.0.0 still satisfies it
    res = mx("install", "--project", proj, "--json")
    assert json.loads(res.out)[0]["version"] == "1.0.0"
    write_project(proj, host.url, '"acme/iris" = "^1.1"\n')  # now it does not
    res = mx("install", "--project", proj, "--json")
    assert json.loads(res.out)[0]["version"] == "1.1.0"
    assert 'version = "1.1.0"' in (proj / "mx.lock").read_text()


def test_locked_needs_no_index(mx, built: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proj = tmp_path / "proj"
    with static_host(built) as host:
        write_project(proj, host.url, '"acme/iris" = "^1.0"\n')
        assert mx("install", "--project", proj).code == 0
    # A fresh cache, and the index gone from the host: the lock is enough.
    import shutil

    shutil.rmtree(tmp_path / "mxhome")
    shutil.rmtree(built / "index")
    with static_host(built) as host2:
        lock = (proj / "mx.lock").read_text()
        (proj / "mx.lock").write_text(lock.replace(host.url, host2.url))
        res = mx("install", "--project", proj, "--locked", "--json")
        assert res.code == 0, res.err
        assert not any(p.startswith("/index/") for p, _, _ in host2.faults.requests)
        assert Path(json.loads(res.out)[0]["files"]["model.onnx"]).is_file()


def test_locked_refuses_what_the_lock_lacks(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proj = tmp_path / "proj"
    write_project(proj, host.url, '"acme/iris" = "^1.0"\n')
    res = mx("install", "--project", proj, "--locked")
    assert res.code == 1 and "mx.lock: no entry for acme/iris@^1.0" in res.err
    assert not (proj / "mx.lock").exists()


def test_bad_project_files(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proj = tmp_path / "proj"
    res = mx("install", "--project", proj)
    assert res.code == 1 and "mx.toml: no such file" in res.err
    write_project(proj, host.url, '"acme/Iris" = "^1.0"\n')
    res = mx("install", "--project", proj)
    assert res.code == 1 and "not a model name" in res.err
    write_project(proj, host.url, '"acme/iris" = "^^1"\n')
    res = mx("install", "--project", proj)
    assert res.code == 1 and "'acme/iris@^^1'" in res.err
    (proj / "mx.toml").write_text("[models\n")
    res = mx("install", "--project", proj)
    assert res.code == 1 and "invalid TOML" in res.err


def test_locked_with_names_is_usage_error(mx) -> None:  # type: ignore[no-untyped-def]
    res = mx("install", "acme/iris", "--locked")
    assert res.code == 2
