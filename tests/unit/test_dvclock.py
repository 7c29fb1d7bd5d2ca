"""mx.dvclock: dvc.lock and dvc.yaml read as DVC writes them, and refused when hostile."""

from __future__ import annotations

from pathlib import Path

import pytest

from mx import dvclock
from mx.dvclock import Pipelines, disk_reader
from mx.errors import ConfigError

MD5 = "0123456789abcdef0123456789abcdef"


def out(path: str, md5: str = MD5, size: str = "10", extra: str = "      hash: md5\n") -> str:
    return f"    - path: {path}\n{extra}      md5: {md5}\n      size: {size}\n"


def lock(**stages: str) -> str:
    body = "".join(f"  {name}:\n    cmd: make\n    outs:\n{outs}" for name, outs in stages.items())
    return f"schema: '2.0'\nstages:\n{body}"


def tree(tmp_path: Path, files: dict[str, str]) -> Pipelines:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return Pipelines(disk_reader(tmp_path))


def test_paths_are_relative_to_the_stage_folder_and_wdir(tmp_path: Path) -> None:
    # what DVC 3.67 wrote for `dvc stage add --wdir w -n w -o o.txt` in sub/
    pl = tree(tmp_path, {
        "sub/dvc.yaml": "stages:\n  make:\n    cmd: make\n    outs: [out.bin]\n"
                        "  w:\n    cmd: echo\n    wdir: w\n    outs: [o.txt]\n"
                        "  each:\n    foreach: [a, b]\n    do:\n      cmd: x\n      wdir: e\n",
        "sub/dvc.lock": lock(make=out("out.bin"), w=out("o.txt"), **{"each@a": out("a.bin")}),
    })
    assert pl.find("sub/out.bin").pointer.md5 == MD5  # type: ignore[union-attr]
    assert pl.find("sub/w/o.txt").field == "stages.w.outs[0]"  # type: ignore[union-attr]
    assert pl.find("sub/e/a.bin").field == "stages.each@a.outs[0]"  # type: ignore[union-attr]
    assert pl.find("sub/o.txt") is None and pl.find("out.bin") is None
    assert sorted(pl.files_under("sub", ["sub"])) == ["e/a.bin", "out.bin", "w/o.txt"]


def test_dvc2_output_is_legacy_and_nearest_lock_wins(tmp_path: Path) -> None:
    pl = tree(tmp_path, {
        "dvc.lock": lock(top=out("m/model.onnx", md5="f" * 32, extra="")),
        "m/dvc.lock": lock(near=out("model.onnx")),
    })
    near = pl.find("m/model.onnx")
    assert near is not None and near.origin == "m/dvc.lock" and near.pointer is not None
    assert not near.pointer.legacy and near.pointer.object_rel == f"files/md5/01/{MD5[2:]}"
    (tmp_path / "m" / "dvc.lock").unlink()
    far = Pipelines(disk_reader(tmp_path)).find("m/model.onnx")
    assert far is not None and far.pointer is not None and far.pointer.legacy


def test_a_bad_output_matters_only_to_its_own_artifact(tmp_path: Path) -> None:
    pl = tree(tmp_path, {"dvc.lock": lock(s=out("good.onnx") + out("bad.onnx", md5="nope")
                                          + out("d", md5=MD5 + ".dir")
                                          + out("e", md5="nope.dir"))})
    assert pl.find("good.onnx").pointer is not None  # type: ignore[union-attr]
    bad = pl.find("bad.onnx")
    assert bad is not None and bad.pointer is None
    assert bad.problem == "stages.s.outs[1].md5 'nope' is not 32 lower-case hex digits"
    # a file in a folder output: the folder's output (its listing names the file)
    inside = pl.find("d/x.onnx")
    assert inside is not None and inside.path == "d" and inside.pointer is not None
    assert inside.pointer.directory and inside.pointer.md5 == MD5
    broken = pl.find("e/x.onnx")
    assert broken is not None and broken.pointer is None and broken.directory
    assert broken.problem == "stages.s.outs[3].md5 'nope' is not 32 lower-case hex digits"


@pytest.mark.parametrize(("files", "says"), [
    ({"dvc.lock": lock(s=out("../x"))}, "dvc.lock: stages.s.outs[0].path '../x' contains '..'"),
    ({"dvc.lock": lock(s=out("/etc/x"))}, "dvc.lock: stages.s.outs[0].path '/etc/x' is absolute"),
    ({"dvc.lock": lock(s=out("s3://b/x"))}, "stages.s.outs[0].path 's3://b/x' is a URL"),
    ({"dvc.lock": lock(s=out(".git/config"))}, "points into .git"),
    ({"dvc.lock": lock(s="    - md5: x\n")}, "stages.s.outs[0].path is missing"),
    ({"dvc.lock": "s:\n  cmd: x\n  outs:\n  - path: x\n    md5: y\n"}, "a DVC 1 lock file"),
    ({"dvc.lock": "schema: '3.0'\n"}, "mx reads dvc.lock schema '2.0'"),
    ({"dvc.lock": "- a\n"}, "dvc.lock: the dvc.lock document is not a mapping"),
    ({"dvc.lock": "schema: '2.0'\nstages:\n  s:\n    outs: x\n"}, "stages.s.outs is not a list"),
    ({"dvc.lock": lock(s=out("x")), "dvc.yaml": "stages:\n  s:\n    wdir: ../up\n"},
     "dvc.yaml: stages.s.wdir '../up' contains '..'"),
    ({"dvc.lock": lock(s=out("x")), "dvc.yaml": "stages:\n  s:\n    wdir: ${dir}\n"},
     "is templated"),
    ({"dvc.lock": "schema: '2.0'\nstages: {'a\tb': {}}\n"}, "is not a name of at most"),
    ({"dvc.lock": lock(s=out("x")), "dvc.yaml": "stages:\n  s:\n    outs:\n"
                                                "    - x: {remote: [a]}\n"},
     "dvc.yaml: stages.s.outs[0].remote is not a remote's name"),
    ({"dvc.lock": lock(s=out("x")), "dvc.yaml": "stages:\n  s:\n    outs:\n"
                                                "    - ../x: {remote: r}\n"},
     "dvc.yaml: stages.s.outs[0] '../x' contains '..'"),
    # JSON and YAML escapes name what no file system can hold, or a name that breaks lines
    ({"dvc.lock": lock(s=out('"a\\ud800b"'))}, "is not valid Unicode"),
    ({"dvc.lock": lock(s=out('"a\\nb"'))}, "contains a control character"),
    # DVC refuses outputs that overlap: a file inside another output, or one path twice
    ({"dvc.lock": lock(s=out("a"), t=out("a/b"))},
     "stages.t.outs[0].path 'a/b' lies in stages.s.outs[0] 'a'"),
    ({"dvc.lock": lock(s=out("d/", md5=MD5 + ".dir") + out("d/x"))},
     "stages.s.outs[1].path 'd/x' lies in stages.s.outs[0] 'd'"),
    ({"dvc.lock": lock(s=out("x"), t=out("./x"))},
     "stages.t.outs[0].path './x' is also stages.s.outs[0]"),
])
def test_hostile_files_are_refused_in_one_line(tmp_path: Path, files: dict[str, str],
                                               says: str) -> None:
    pl = tree(tmp_path, files)
    with pytest.raises(ConfigError) as exc:
        pl.find("x")
    assert says in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    assert pl.files_under("", [""]) == {}  # signing skips what it cannot read


def test_an_outputs_own_remote_comes_from_dvc_yaml(tmp_path: Path) -> None:
    pl = tree(tmp_path, {
        "dvc.yaml": "stages:\n  s:\n    cmd: x\n    wdir: w\n    outs:\n"
                    "    - a.onnx:\n        remote: far\n        cache: true\n"
                    "    - b.onnx\n    - d/: {remote: near}\n"
                    "  t:\n    foreach: [1, 2]\n    do:\n      outs:\n"
                    "      - ${item}.bin: {remote: tpl}\n",
        "dvc.lock": lock(s=out("a.onnx") + out("b.onnx") + out("d/", md5=MD5 + ".dir"),
                         **{"t@1": out("1.bin")}),
    })
    assert pl.find("w/a.onnx").pointer.remote == "far"  # type: ignore[union-attr]
    assert pl.find("w/b.onnx").pointer.remote is None  # type: ignore[union-attr]
    assert pl.find("w/d/x.onnx").pointer.remote == "near"  # type: ignore[union-attr]
    assert pl.find("1.bin").pointer.remote is None  # type: ignore[union-attr]


def test_size_and_counts_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pl = tree(tmp_path, {"dvc.lock": "#" * (dvclock.MAX_FILE + 1)})
    with pytest.raises(ConfigError, match=r"over 1 MiB, the most mx reads of a dvc\.lock"):
        pl.find("x")
    monkeypatch.setattr(dvclock, "MAX_OUTS", 2)
    pl = tree(tmp_path, {"dvc.lock": lock(a=out("1") + out("2"), b=out("3"))})
    with pytest.raises(ConfigError, match="more than 2 outputs"):
        pl.find("x")
    monkeypatch.setattr(dvclock, "MAX_STAGES", 1)
    pl = tree(tmp_path, {"dvc.lock": lock(a=out("1"), b=out("3"))})
    with pytest.raises(ConfigError, match="more than 1 stages"):
        pl.find("x")


def test_a_large_git_blob_is_not_read(tmp_path: Path) -> None:
    import pygit2

    from mx import gitrepo

    repo = pygit2.init_repository(str(tmp_path / "r"))
    big = repo.create_blob(b"x" * 5000)
    builder = repo.TreeBuilder()
    builder.insert("dvc.lock", big, pygit2.enums.FileMode.BLOB)
    sig = pygit2.Signature("t", "t@example.invalid")
    commit = str(repo.create_commit("HEAD", sig, sig, "m", builder.write(), []))
    assert gitrepo.tree_entry_bounded(repo, commit, "dvc.lock", 4096) == bytes(4097)
    assert gitrepo.tree_entry_bounded(repo, commit, "dvc.lock", 5000) == b"x" * 5000
    assert gitrepo.tree_entry_bounded(repo, commit, "nope", 10) is None
