"""Hostile or broken input, run as the user would (a separate `mx` process): YAML alias
bombs, files that are not UTF-8, and registry.yaml sources that try to reach git's
command line. Each is refused with exit 1 and one line that names the file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mx.index_builder.giturl import check_repo
from tests.conftest import mx_subprocess
from tests.support.examples import card_text, git, make_model_repo, manifest_text


def billion_laughs(levels: int = 9) -> str:
    """Each level a list of nine aliases to the one before: 9**levels strings expanded."""
    lines = ['lol: &l0 "lol"']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def error_lines(stderr: str) -> list[str]:
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_billion_laughs_manifest_refused_fast(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "mx.yaml").write_text(billion_laughs())
    started = time.monotonic()
    res = mx_subprocess("validate", model)
    assert time.monotonic() - started < 2.0  # the process, start-up included
    assert res.returncode == 1, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 1, res.stdout
    assert lines[0].startswith(f"{model / 'mx.yaml'}: ") and "alias" in lines[0]


def test_billion_laughs_registry_refused_fast(tmp_path: Path) -> None:
    registry = tmp_path / "registry.yaml"
    registry.write_text("registry: 1\nname: bomb\n" + billion_laughs())
    started = time.monotonic()
    res = mx_subprocess("index", "build", registry, "-o", tmp_path / "site")
    assert time.monotonic() - started < 2.0
    assert res.returncode == 1, res.stderr
    [line] = error_lines(res.stderr)
    assert str(registry) in line and "alias" in line
    assert not (tmp_path / "site").exists()


def test_latin1_manifest_is_exit_1_naming_the_file(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "mx.yaml").write_bytes(
        manifest_text("acme/cafe", "1.0.0", summary="Café crème").encode("latin-1"))
    res = mx_subprocess("validate", model)
    assert res.returncode == 1, res.stderr
    [line] = res.stdout.splitlines()
    assert line == f"{model / 'mx.yaml'}:4: not UTF-8 text (byte 0xe9)"


def test_latin1_registry_is_exit_1_naming_the_file(tmp_path: Path) -> None:
    registry = tmp_path / "registry.yaml"
    registry.write_bytes("registry: 1\nname: Café\n".encode("latin-1"))
    res = mx_subprocess("index", "build", registry, "-o", tmp_path / "site")
    assert res.returncode == 1, res.stderr
    [line] = error_lines(res.stderr)
    assert line == f"error: {registry}:2: not UTF-8 text (byte 0xe9)"


def test_oversized_manifest_refused(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    text = manifest_text("acme/big", "1.0.0")
    (model / "mx.yaml").write_text(text + "# padding\n" * 110_000)  # > 1 MiB of comments
    res = mx_subprocess("validate", model)
    assert res.returncode == 1, res.stderr
    [line] = res.stdout.splitlines()
    assert line.startswith(f"{model / 'mx.yaml'}: over 1 MiB")


def test_card_front_matter_bomb_is_a_card_problem(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "model"
    model.mkdir()
    (model / "mx.yaml").write_text(manifest_text("acme/iris", "1.0.0"))
    (model / "README.md").write_text("---\n" + billion_laughs() + "---\n# acme/iris\n")
    res = mx("validate", model)
    assert res.code == 1
    card_lines = [ln for ln in res.out.splitlines() if ln.startswith(str(model / "README.md"))]
    assert len(card_lines) == 1 and "alias" in card_lines[0], res.out


def test_hook_on_latin1_manifest_is_exit_1(mx, tmp_path: Path,  # type: ignore[no-untyped-def]
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "mx.yaml").write_bytes(manifest_text("acme/cafe", "1.0.0", summary="Café")
                                   .encode("latin-1"))
    (repo / "README.md").write_text(card_text("acme/cafe"))
    monkeypatch.chdir(repo)
    res = mx("hook", "validate", "mx.yaml")
    assert res.code == 1
    assert "mx.yaml:4: not UTF-8 text (byte 0xe9)" in res.err


def test_index_build_skips_a_latin1_release(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_model_repo(tmp_path / "repos" / "iris", "acme/iris", ["1.0.0"]).path
    (repo / "mx.yaml").write_bytes(manifest_text("acme/iris", "1.1.0", summary="Café")
                                   .encode("latin-1"))
    git(repo, "commit", "-q", "-am", "1.1.0")
    git(repo, "tag", "-a", "v1.1.0", "-m", "release 1.1.0")
    registry = tmp_path / "registry.yaml"
    registry.write_text("registry: 1\nname: t\nallow_unsigned: true\n"
                        "sources:\n  - repo: repos/iris\n")
    res = mx("index", "build", registry, "-o", tmp_path / "site", "--strict")
    assert res.code == 1
    [line] = error_lines(res.err)
    assert "tag v1.1.0" in line and "mx.yaml:4: not UTF-8 text (byte 0xe9)" in line
    res = mx("index", "build", registry, "-o", tmp_path / "site")
    assert res.code == 0, res.err  # without --strict: 1.0.0 published, 1.1.0 skipped
    assert "v1.1.0" in res.err and "not UTF-8" in res.err
    assert (tmp_path / "site" / "index" / "models" / "acme" / "iris.json").is_file()


@pytest.mark.parametrize("repo", ["--upload-pack=touch {marker}", "ext::sh -c touch% {marker}"])
def test_index_build_keeps_sources_off_git_command_line(tmp_path: Path, repo: str) -> None:
    marker = tmp_path / "pwned"
    value = repo.format(marker=marker)
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"registry: 1\nname: t\nsources:\n  - repo: '{value}'\n")
    res = mx_subprocess("index", "build", registry, "-o", tmp_path / "site")
    assert res.returncode == 1, res.stderr
    [line] = error_lines(res.stderr)
    assert line.startswith(f"error: {registry}:4: sources.0.repo: {value!r}")
    assert not marker.exists()


@pytest.mark.parametrize("value", [
    "https://github.com/acme/iris.git", "http://127.0.0.1:8080/iris.git",
    "ssh://git@example.com/acme/iris.git", "git://example.com/iris", "file:///srv/iris.git",
    "git@github.com:acme/iris.git", "repos/iris", "../models/iris", "/srv/git/iris.git",
])
def test_allowed_source_repos(value: str) -> None:
    assert check_repo(value) == value


@pytest.mark.parametrize(("value", "why"), [
    ("-oProxyCommand=x", "starts with '-'"),
    ("--upload-pack=touch /tmp/x;://h/r", "starts with '-'"),
    ("ext::sh -c touch% /tmp/pwned", "remote helper"),
    ("fd::3", "remote helper"),
    ("ftp://example.com/iris.git", "scheme 'ftp'"),
    ("ssh://-oProxyCommand=touch%20x/r", "host that starts with '-'"),
    ("ssh://git@-oProxyCommand=x/r", "host that starts with '-'"),
    ("git@-oProxyCommand=x:r", "user or host"),
    ("https://example.com/a\nb", "control character"),
])
def test_refused_source_repos(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_repo(value)
