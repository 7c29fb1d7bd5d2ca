"""Exit codes and messages of the CLI as a process: 0, 1, 2, 3, 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import mx_subprocess
from tests.support.terminal import default_sigint


def test_help_and_version() -> None:
    res = mx_subprocess("--help")
    assert res.returncode == 0
    for cmd in ("init", "validate", "index", "install", "info", "cache", "schema"):
        assert cmd in res.stdout
    assert mx_subprocess("--version").stdout.startswith("mx, version")


def test_usage_error_is_2() -> None:
    res = mx_subprocess("install", "--no-such-flag")
    assert res.returncode == 2 and "No such option" in res.stderr
    assert mx_subprocess("frobnicate").returncode == 2


def test_user_error_is_1_with_one_line_and_hint(tmp_path: Path) -> None:
    res = mx_subprocess("validate", tmp_path)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert lines[-2].startswith("error: ") and lines[-1].startswith("hint: ")


def test_bug_is_3_without_traceback(mx, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Fault injection at one narrow seam: a bug no real input can trigger.
    import importlib

    validate_module = importlib.import_module("mx.validate")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(validate_module, "validate_model", broken)
    res = mx("validate", tmp_path)
    assert res.code == 3
    assert "internal error: RuntimeError: boom" in res.err and "Traceback" not in res.err
    monkeypatch.setenv("MX_DEBUG", "1")
    res = mx("validate", tmp_path)
    assert res.code == 3 and "Traceback" in res.err


def test_ctrl_c_is_130(tmp_path: Path) -> None:
    # Ctrl-C reaches it even when this test runs in the background, where shells start
    # children with SIGINT ignored
    proc = subprocess.Popen([sys.executable, "-m", "mx", "index", "serve", str(tmp_path),
                             "--port", "0"], stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy(), preexec_fn=default_sigint)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "serving ... at http://127.0.0.1:PORT/"
    assert "serving" in line
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130


def test_serve_speaks_http(tmp_path: Path) -> None:
    import httpx

    (tmp_path / "hello.txt").write_text("hello world")
    proc = subprocess.Popen([sys.executable, "-m", "mx", "index", "serve", str(tmp_path),
                             "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        url = proc.stderr.readline().split(" at ")[1].split()[0]
        r = httpx.get(url + "hello.txt", headers={"Range": "bytes=6-"})
        assert r.status_code == 206 and r.text == "world"
        etag = r.headers["ETag"]
        assert httpx.get(url + "hello.txt", headers={"If-None-Match": etag}).status_code == 304
        assert httpx.get(url + "../../etc/passwd").status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)
