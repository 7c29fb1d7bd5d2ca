"""`mx registry promote/yank/unyank/history`: edits that keep registry.yaml's comments."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.examples import git


def _as_repo(world: Path) -> None:
    git(world, "init", "-q", "-b", "main")
    git(world, "add", "registry.yaml")
    git(world, "commit", "-qm", "registry")


def test_promote_keeps_comments_and_order_and_builds(world: Path, registry_file: Path,
                                                     mx) -> None:  # type: ignore[no-untyped-def]
    text = registry_file.read_text().replace("channels:", "# curated by the ML platform team\n"
                                             "channels:  # reviewed in PRs")
    registry_file.write_text(text)
    res = mx("registry", "promote", "acme/iris", "1.0.0", "--channel", "stable",
             "-r", registry_file)
    assert res.code == 0, res.err
    assert "promote acme/iris 1.0.0 to stable (was 1.1.0)" in res.out
    new = registry_file.read_text()
    assert new == text.replace("stable: 1.1.0", "stable: 1.0.0")  # one value, nothing else
    # a new channel and a model with no entry yet keep the flow style
    assert mx("registry", "promote", "acme/resnet", "0.1.0", "--channel", "lts",
              "-r", registry_file).code == 0
    assert "acme/resnet: {lts: 0.1.0}" in registry_file.read_text()
    assert "# curated by the ML platform team" in registry_file.read_text()
    out = world / "out"
    assert mx("index", "build", registry_file, "-o", out).code == 0
    doc = json.loads((out / "index/models/acme/iris.json").read_text())
    assert doc["channels"]["stable"] == "1.0.0"


def test_promote_unknown_version_is_refused(registry_file: Path, mx) -> None:  # type: ignore[no-untyped-def]
    before = registry_file.read_bytes()
    res = mx("registry", "promote", "acme/iris", "9.9.9", "-r", registry_file)
    assert res.code == 1
    assert "acme/iris 9.9.9: no such release in the registry's sources" in res.err
    assert "1.0.0, 1.1.0, 1.2.0, 2.0.0-rc.1" in res.err
    assert registry_file.read_bytes() == before
    res = mx("registry", "promote", "acme/iris", "1.2.0", "-r", registry_file)
    assert res.code == 1 and "acme/iris 1.2.0 is yanked" in res.err


def test_yank_twice_and_history(world: Path, registry_file: Path, mx) -> None:  # type: ignore[no-untyped-def]
    _as_repo(world)
    res = mx("registry", "yank", "acme/iris", "1.0.0", "--reason", "bad labels; use 1.1.0",
             "-r", registry_file)
    assert res.code == 0, res.err
    assert 'acme/iris: {1.2.0: "wrong weights; use 1.1.0", 1.0.0: bad labels; use 1.1.0}' \
        in registry_file.read_text()
    git(world, "commit", "-qam", "yank acme/iris 1.0.0")
    before = registry_file.read_bytes()
    res = mx("registry", "yank", "acme/iris", "1.0.0", "--reason", "again", "-r", registry_file)
    assert res.code == 1
    assert "acme/iris 1.0.0 is already yanked: 'bad labels; use 1.1.0'" in res.err
    assert registry_file.read_bytes() == before
    res = mx("registry", "yank", "acme/iris", "1.1.0", "--reason", "x", "-r", registry_file)
    assert res.code == 1 and "is on channel stable" in res.err
    assert mx("registry", "promote", "acme/iris", "2.0.0-rc.1", "--channel", "stable",
              "-r", registry_file).code == 0
    git(world, "-c", "user.name=Alice", "-c", "user.email=alice@example.org", "commit", "-qam",
        "promote 2.0.0-rc.1")
    res = mx("registry", "history", "acme/iris", "-r", registry_file, "--json")
    assert res.code == 0, res.err
    events = json.loads(res.out)
    actions = [(e["action"], e["version"], e["channel"]) for e in events]
    assert actions[:4] == [("promote", "2.0.0-rc.1", "canary"), ("promote", "1.1.0", "stable"),
                           ("yank", "1.2.0", None), ("yank", "1.0.0", None)]
    last = events[-1]
    assert (last["action"], last["version"], last["previous"], last["author"]) == \
        ("promote", "2.0.0-rc.1", "1.1.0", "Alice")
    head = git(world, "rev-parse", "HEAD").strip()
    assert last["commit"] == head
    text = mx("registry", "history", "acme/iris", "-r", registry_file).out
    assert f"{head[:12]}  Alice <alice@example.org>  promoted 2.0.0-rc.1 to stable " \
        "(was 1.1.0)" in text


def test_unknown_model_and_bad_version(registry_file: Path, mx) -> None:  # type: ignore[no-untyped-def]
    res = mx("registry", "yank", "acme/nope", "1.0.0", "--reason", "x", "-r", registry_file)
    assert res.code == 1 and "acme/nope 1.0.0: no such release" in res.err
    res = mx("registry", "promote", "acme/iris", "one", "--no-check", "-r", registry_file)
    assert res.code == 1 and "version 'one'" in res.err
