"""What `pip install mx` brings, and what a command says when its extra is missing."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_client_does_not_pull_the_server_or_the_website() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = names(project["dependencies"])
    assert {"tuf", "securesystemslib", "httpx", "onnxruntime"} <= core
    assert not core & {"mkdocs", "mkdocs-material", "uvicorn", "starlette", "nh3",
                       "prometheus-client", "markdown", "cmarkgfm", "obstore", "boto3", "ray",
                       "pyarrow", "pandas"}
    extras = project["optional-dependencies"]
    assert {"uvicorn", "prometheus-client", "httptools", "orjson"} <= names(extras["serve"])
    assert "starlette" not in names(extras["serve"])  # a plain ASGI app: tests only
    assert "starlette" in names(extras["test"])
    assert {"mkdocs", "mkdocs-material", "nh3", "cmarkgfm"} <= names(extras["site"])
    assert names(extras["s3"]) == {"obstore"}
    assert names(extras["ray"]) == {"ray"}
    assert "version" in project.get("dynamic", [])


def hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in modules else real(name, *a))


def test_missing_serve_extra_is_one_line(mx, tmp_path: Path,  # type: ignore[no-untyped-def]
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "uvicorn")
    res = mx("serve", tmp_path)
    assert res.code == 1
    assert res.err.splitlines() == ["error: mx serve needs the 'serve' extra (uvicorn not "
                                    "installed)", "hint: pip install 'mx[serve]'"]


def test_missing_site_extra_is_one_line(mx, registry_file: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "mkdocs", "material")
    res = mx("index", "build", registry_file, "-o", tmp_path / "out")
    assert res.code == 1 and "needs the 'site' extra (mkdocs, material" in res.err
    assert "--no-site" in res.err and not (tmp_path / "out").exists()
    res = mx("index", "build", registry_file, "-o", tmp_path / "out", "--no-site")
    assert res.code == 0, res.err
