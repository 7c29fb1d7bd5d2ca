"""DVC folder listings (mx.dvcdir) and the rule that finds a file's pointer (mx.dvctrack):
hostile listings, bounds, DVC 2 and 3 layouts."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from mx import dvcdir, dvcfiles, dvctrack
from mx.dvcfiles import DvcPointer
from mx.dvclock import Pipelines
from mx.errors import ConfigError, DvcProblem


def folder_of(entries: object, size: int = 1000, legacy: bool = False,
              raw: bytes | None = None) -> tuple[bytes, DvcPointer]:
    data = raw if raw is not None else json.dumps(entries, sort_keys=True).encode()
    return data, DvcPointer(hashlib.md5(data).hexdigest(), size, legacy=legacy, directory=True)


def test_listing_as_dvc_writes_it() -> None:
    data, folder = folder_of([{"md5": "a" * 32, "relpath": "model.onnx"},
                              {"md5": "b" * 32, "relpath": "sub/vocab.txt"}])
    files = dvcdir.parse_listing(data, folder, "weights.dvc")
    assert set(files) == {"model.onnx", "sub/vocab.txt"}
    model = files["model.onnx"]
    assert (model.md5, model.size, model.cap, model.limit) == ("a" * 32, None, 1000, 1000)
    assert model.object_rel == f"files/md5/aa/{'a' * 30}"
    assert folder.object_rel == f"files/md5/{folder.md5[:2]}/{folder.md5[2:]}.dir"
    assert folder.key.endswith(".dir") and not model.directory


def test_dvc2_folder_layout_and_member_hashes() -> None:
    data, folder = folder_of([{"md5": "c" * 32, "relpath": "a.txt"}], legacy=True)
    assert folder.object_rel == f"{folder.md5[:2]}/{folder.md5[2:]}.dir"
    member = dvcdir.parse_listing(data, folder, "w.dvc")["a.txt"]
    assert member.legacy and member.key == "md5-dos2unix:" + "c" * 32


def test_sizes_from_a_listing_written_with_meta() -> None:
    data, folder = folder_of([{"md5": "a" * 32, "relpath": "m", "size": 600},
                              {"md5": "b" * 32, "relpath": "n", "size": 400}])
    files = dvcdir.parse_listing(data, folder, "w.dvc")
    assert files["m"].size == 600 and files["m"].matches(
        dvcfiles.Digests("a" * 32, "x", 600)) and not files["m"].matches(
        dvcfiles.Digests("a" * 32, "x", 601))
    data, folder = folder_of([{"md5": "a" * 32, "relpath": "m", "size": 600},
                              {"md5": "b" * 32, "relpath": "n", "size": 401}])
    with pytest.raises(ConfigError, match="1001 bytes of files, more than the 1000"):
        dvcdir.parse_listing(data, folder, "w.dvc")


@pytest.mark.parametrize("entries, says", [
    ({"relpath": "a"}, "not a JSON array"),
    ([{"md5": "a" * 32, "relpath": "../x"}], "contains '..'"),
    ([{"md5": "a" * 32, "relpath": "/etc/passwd"}], "is absolute"),
    ([{"md5": "a" * 32, "relpath": ".git/config"}], "points into .git"),
    ([{"md5": "a" * 32, "relpath": "a/./b"}], "not a plain relative path"),
    ([{"md5": "a" * 32, "relpath": "a//b"}], "not a plain relative path"),
    ([{"md5": "a" * 32, "relpath": "a\\b"}], "backslash"),
    ([{"md5": "a" * 32}], "relpath is missing"),
    ([{"md5": "A" * 32, "relpath": "a"}], "not 32 lower-case hex"),
    ([{"md5": 12, "relpath": "a"}], "not 32 lower-case hex"),
    ([{"md5": "a" * 32, "relpath": "a", "size": -1}], "size '-1'"),
    ([{"md5": "a" * 32, "relpath": "a", "size": True}], "size 'True'"),
    ([{"md5": "a" * 32, "relpath": "a"}, {"md5": "b" * 32, "relpath": "a"}], "twice"),
    (["a"], "is not an object"),
    # JSON escapes: a name no file system can hold (a crash where a path is made of it),
    # or one that breaks the one-line messages it is named in
    ([{"md5": "a" * 32, "relpath": "a\ud800"}], "is not valid Unicode"),
    ([{"md5": "a" * 32, "relpath": "a\nb"}], "contains a control character"),
    ([{"md5": "a" * 32, "relpath": "a\x7fb"}], "contains a control character"),
    # a file and a folder of one name: no folder DVC hashed holds both
    ([{"md5": "a" * 32, "relpath": "a"}, {"md5": "b" * 32, "relpath": "a/b"}],
     "'a/b' lies in the file 'a'"),
    ([{"md5": "b" * 32, "relpath": "a/b/c"}, {"md5": "a" * 32, "relpath": "a/b"}],
     "'a/b/c' lies in the file 'a/b'"),
])
def test_hostile_listings_are_refused_in_one_line(entries: object, says: str) -> None:
    data, folder = folder_of(entries)
    with pytest.raises(ConfigError, match=says) as exc:
        dvcdir.parse_listing(data, folder, "weights.dvc")
    assert "\n" not in str(exc.value) and "weights.dvc" in str(exc.value)


def test_listing_must_have_the_md5_the_pointer_names() -> None:
    data, folder = folder_of([{"md5": "a" * 32, "relpath": "a"}])
    with pytest.raises(ConfigError, match="not the listing the pointer names"):
        dvcdir.parse_listing(data.replace(b'"a"', b'"b"'), folder, "w.dvc")


def test_bounds_bytes_entries_and_depth(monkeypatch: pytest.MonkeyPatch) -> None:
    deep, folder = folder_of(None, raw=b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(ConfigError, match="is not JSON"):
        dvcdir.parse_listing(deep, folder, "w.dvc")
    monkeypatch.setattr(dvcdir, "MAX_FILES", 3)
    data, folder = folder_of([{"md5": "a" * 32, "relpath": str(i)} for i in range(4)])
    with pytest.raises(ConfigError, match="more than 3 files"):
        dvcdir.parse_listing(data, folder, "w.dvc")
    monkeypatch.setattr(dvcdir, "MAX_LISTING", 10)
    with pytest.raises(ConfigError, match="over 0 MiB"):
        dvcdir.parse_listing(data, folder, "w.dvc")


def tree(files: dict[str, bytes]) -> dvctrack.Reader:
    def read(rel: str, limit: int) -> bytes | None:
        return files.get(rel)
    return read


def test_find_a_file_of_a_tracked_folder_within_the_model() -> None:
    data, folder = folder_of([{"md5": "a" * 32, "relpath": "sub/model.onnx"}], size=5)
    pointer = (f"outs:\n- md5: {folder.md5}.dir\n  size: 5\n  nfiles: 1\n  hash: md5\n"
               "  path: weights\n").encode()
    reads: list[str] = []

    def listing(directory: DvcPointer, shown: str) -> bytes:
        reads.append(shown)
        return data

    files = {"m/weights.dvc": pointer}
    listings = dvctrack.Listings(listing)
    got = dvctrack.find("m/weights/sub/model.onnx", "m", tree(files),
                        Pipelines(tree(files)), listings)
    assert got is not None and got.pointer.md5 == "a" * 32 and got.pointer.cap == 5
    assert got.shown == "m/weights.dvc (sub/model.onnx)" and got.redo == "`dvc add m/weights`"
    # read once, then from memory
    dvctrack.find("m/weights/sub/model.onnx", "m", tree(files), Pipelines(tree(files)), listings)
    assert reads == ["m/weights.dvc"]
    # a `.dvc` above the model directory is not looked at
    assert dvctrack.find("m/weights/sub/model.onnx", "m/weights", tree(files),
                         Pipelines(tree(files)), listings) is None
    with pytest.raises(ConfigError, match=r"has no file 'other\.onnx'"):
        dvctrack.find("m/weights/other.onnx", "m", tree(files), Pipelines(tree(files)), listings)


def test_find_refuses_a_folder_listed_as_a_file() -> None:
    pointer = f"outs:\n- md5: {'a' * 32}.dir\n  size: 5\n  path: model.onnx\n".encode()
    files = {"model.onnx.dvc": pointer}

    def listing(directory: DvcPointer, shown: str) -> bytes:
        raise DvcProblem("not here")

    with pytest.raises(ConfigError, match="tracks a folder"):
        dvctrack.find("model.onnx", "", tree(files), Pipelines(tree(files)),
                      dvctrack.Listings(listing))


def test_a_listing_read_for_one_remote_is_not_reused_for_another() -> None:
    """Two releases' pointers name one listing (the folder did not change) but different
    remotes (the output's `remote:` moved): each file's object is looked for on its own
    release's remote, though the listing is parsed from memory."""
    data, folder = folder_of([{"md5": "a" * 32, "relpath": "m.onnx"}])
    memo: dict[str, dict[str, DvcPointer]] = {}
    old = dvctrack.Listings(lambda d, s: data, memo).files(
        dataclasses.replace(folder, remote="old"), "w.dvc")
    new = dvctrack.Listings(lambda d, s: data, memo).files(
        dataclasses.replace(folder, remote="new"), "w.dvc")
    assert (old["m.onnx"].remote, new["m.onnx"].remote) == ("old", "new")


@pytest.mark.parametrize("md5", ["a" * 32 + "\n", "a" * 32 + "\n.dir"])
def test_an_md5_with_a_trailing_newline_is_refused(md5: str) -> None:
    """`$` matches before a final newline: an md5 of `<hex>\\n` would name no object and
    break the one-line messages that name it."""
    text = json.dumps({"outs": [{"md5": md5, "size": "5", "path": "w"}]})
    with pytest.raises(ConfigError, match="is not 32 lower-case hex digits"):
        dvcfiles.parse_pointer(text.encode(), "w.dvc", "w")
    data, folder = folder_of([{"md5": md5, "relpath": "a"}])
    with pytest.raises(ConfigError, match="is not 32 lower-case hex digits"):
        dvcdir.parse_listing(data, folder, "w.dvc")
