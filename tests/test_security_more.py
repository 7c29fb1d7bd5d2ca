"""More of the hostile host, plus a hostile model author and a hostile mx.lock: what got
through the checks of tests/test_security.py, each shown against a served copy of a built
registry with mx run as a process (helpers from tests/test_security.py).
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mx.index_builder.keys import KeyRing, generate
from mx.index_builder.trustmeta import write_metadata
from tests.conftest import mx_subprocess
from tests.support.examples import make_model_repo, sign_all_releases
from tests.support.servers import Host, static_host
from tests.test_security import (
    DOC,
    edit_doc,
    install,
    refused,
    release_signers,
    unsign,
    v110,
)


@pytest.fixture
def site(tmp_path: Path, built: Path) -> Iterator[tuple[Host, Path]]:
    """A copy of the built registry behind a static host; tests change the copy."""
    root = tmp_path / "served"
    shutil.copytree(built, root)
    with static_host(root) as host:
        yield host, root


def unsigned_releases(root: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """An unsigned index (the user allowed it) whose releases carry no signature either:
    then the typed model is the only check between the host's strings and the cache."""
    unsign(root)

    def edit(doc: dict[str, Any]) -> None:
        for record in doc["versions"].values():
            record["signature"] = None
        change(doc)

    edit_doc(root, edit)


UNSIGNED = ("--allow-unsigned-index",)


# -- a root pinned after first use ----------------------------------------------------------

def test_root_pinned_after_first_use_replaces_the_first_use_root(
        site: tuple[Host, Path], tmp_path: Path, world: Path,
        mx) -> None:  # type: ignore[no-untyped-def]
    # The first contact went to a hostile host (or network) that signed the index with its
    # own keys; trust on first use took its root. The user then pins the registry's real
    # root as the README says: the pin must win over what was taken on first use.
    host, root = site
    genuine = tmp_path / "genuine-root.json"
    shutil.copyfile(root / "tuf/root.json", genuine)
    keys = tmp_path / "intruder-keys"
    generate(keys)
    unsign(root)
    edit_doc(root, lambda d: d["channels"].update(stable="1.0.0"))
    write_metadata(root, KeyRing(keys), release_signers(world))
    code, _, err = install(host.url)
    assert code == 0 and "trusting the root" in err, err
    assert mx("registry", "add", "acme", host.url, "--root", genuine).code == 0
    refused(tmp_path, host.url, "signed metadata", spec="acme/iris@1.0.0")


def test_pin_of_the_first_use_root_is_kept_and_any_other_pin_enforced(
        site: tuple[Host, Path], tmp_path: Path, mx) -> None:  # type: ignore[no-untyped-def]
    host, _ = site
    code, _, err = install(host.url)
    assert code == 0, err
    digest = err.split("--root-sha256 ")[1].split("`")[0]
    assert mx("registry", "add", "acme", host.url, "--root-sha256", digest).code == 0
    code, _, err = install(host.url, spec="acme/iris@1.0.0")
    assert code == 0 and "trusting the root" not in err, err
    assert mx("registry", "add", "acme", host.url, "--root-sha256", "ab" * 32).code == 0
    refused(tmp_path, host.url, "pinned sha256", spec="acme/resnet")


# -- 304 Not Modified on the signed path ---------------------------------------------------

def test_not_modified_cannot_freeze_a_signed_document(
        site: tuple[Host, Path], tmp_path: Path, index_keys: Path, world: Path) -> None:
    # The publisher yanks 1.1.0 and signs the new state; the host answers 304 for the
    # document, so the client would keep its cached copy, in which 1.1.0 is not yanked.
    host, root = site
    code, _, err = install(host.url)
    assert code == 0, err
    edit_doc(root, lambda d: v110(d).update(yanked=True, yanked_reason="bad weights"))
    write_metadata(root, KeyRing(index_keys), release_signers(world))
    host.faults.status["/" + DOC] = [304] * 8
    shutil.rmtree(tmp_path / "mxhome" / "models")
    refused(tmp_path, host.url, DOC, "304", spec="acme/iris@~1.1")
    proc = mx_subprocess("info", "acme/iris", "--registry", host.url)
    assert proc.returncode == 1 and "304" in proc.stderr, proc.stderr


def test_not_modified_without_a_cached_copy_is_one_line(site: tuple[Host, Path],
                                                        tmp_path: Path) -> None:
    host, root = site
    unsign(root)
    host.faults.status["/" + DOC] = [304] * 8
    refused(tmp_path, host.url, DOC, "304", args=UNSIGNED)


def test_unsigned_registry_still_revalidates_with_its_etag(site: tuple[Host, Path]) -> None:
    host, root = site
    unsign(root)
    for spec in ("acme/iris@1.1.0", "acme/iris@1.0.0"):
        code, _, err = install(host.url, *UNSIGNED, spec=spec)
        assert code == 0, err
    asked = [etag for path, _, etag in host.faults.requests if path == "/" + DOC]
    assert len(asked) == 2 and asked[0] is None and asked[1]


def test_redirect_off_http_names_its_target(site: tuple[Host, Path], tmp_path: Path) -> None:
    host, _ = site
    host.faults.redirect["/tuf/root.json"] = "file:///etc/passwd"
    refused(tmp_path, host.url, "redirect not followed", "file:///etc/passwd")


# -- mx.lock and the shared cache -------------------------------------------------------------

def test_a_lock_file_cannot_poison_the_cache_for_other_installs(
        site: tuple[Host, Path], tmp_path: Path) -> None:
    # A project's mx.lock (from a pull request, a cloned repo) names the registry, a real
    # version, and its own bytes of the right size for model.onnx. `mx install --locked`
    # installs exactly that, as documented; but a later plain `mx install` of the same
    # version from the signed index must not hand those bytes out as the release.
    host, root = site
    record = v110(json.loads((root / DOC).read_text()))
    art = record["artifacts"][0]
    evil = tmp_path / "evil.onnx"
    evil.write_bytes(b"E" * art["size"])
    files = [("model.onnx", hashlib.sha256(evil.read_bytes()).hexdigest(), art["size"],
              evil.as_uri())]
    for path, ref in (("README.md", record["card"]), ("mx.yaml", record["manifest_file"])):
        files.append((path, ref["sha256"], ref["size"], host.url + ref["url"]))
    project = tmp_path / "project"
    project.mkdir()
    (project / "mx.toml").write_text(f'registry = "{host.url}"\n[models]\n'
                                     '"acme/iris" = "1.1.0"\n')
    (project / "mx.lock").write_text(
        'version = 1\n[[model]]\nname = "acme/iris"\nversion = "1.1.0"\nvariant = "fp32"\n'
        f'registry = "{host.url}"\nrequested = "1.1.0"\n'
        + "".join(f'[[model.file]]\npath = "{p}"\nsha256 = "{s}"\nsize = {n}\nurls = ["{u}"]\n'
                  for p, s, n, u in files))
    proc = mx_subprocess("install", "--locked", cwd=project)
    assert proc.returncode == 0, proc.stderr
    code, out, err = install(host.url, "--json")
    assert code == 0, err
    [result] = json.loads(out)
    installed = Path(result["files"]["model.onnx"]).read_bytes()
    assert hashlib.sha256(installed).hexdigest() == art["sha256"]
    assert result["signed"] is True


# -- build metadata: two releases, one version --------------------------------------------------

def test_build_metadata_cannot_publish_a_second_release_of_a_version(
        world: Path, registry_file: Path, mx) -> None:  # type: ignore[no-untyped-def]
    # A model author tags v1.1.0+rebuild with other weights: SemVer precedence ignores
    # build metadata, so clients asking for 1.1.0 (or ~1.1) got the rebuild, and a yank of
    # 1.1.0 in registry.yaml would not have applied to it.
    repo = world / "repos" / "iris"
    make_model_repo(repo, "acme/iris", ["1.1.0+rebuild"])
    sign_all_releases(repo, world / "keys" / "acme.pem")
    result = mx("index", "build", registry_file, "-o", world / "site")
    assert result.code == 1, result.err
    assert "build metadata" in result.err and "v1.1.0" in result.err


def test_build_metadata_twin_in_a_document_is_refused(
        site: tuple[Host, Path], tmp_path: Path) -> None:
    host, root = site
    unsign(root)
    edit_doc(root, lambda d: d["versions"].update(
        {"1.1.0+evil": copy.deepcopy(d["versions"]["1.2.0"])}))
    refused(tmp_path, host.url, DOC, "build metadata", args=UNSIGNED)


# -- names the cache cannot hold ---------------------------------------------------------------

def _second(doc: dict[str, Any], **change: Any) -> None:
    v110(doc)["artifacts"].append({**v110(doc)["artifacts"][0], **change})


LAYOUT: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    # a variant folder named like the record file of another: moved fp32's record away,
    # and `mx cache ls` crashed on it from then on
    "variant-named-like-a-record": (
        lambda d: _second(d, variant="fp32.record.json"), "record file"),
    "file-and-folder": (lambda d: _second(d, path="model.onnx/x"), "also a folder"),
    "card-under-an-artifact": (
        lambda d: v110(d)["manifest"].update(card="model.onnx/README.md"), "also a folder"),
    "case-twins": (lambda d: _second(d, path="MODEL.onnx", format="ort"), "only in case"),
    "name-too-long": (lambda d: v110(d)["artifacts"][0].update(path="a" * 240 + ".onnx"),
                      "longer than"),
    "version-too-long": (lambda d: d["versions"].update(
        {"1.1.1-" + "a" * 240: copy.deepcopy(v110(d))}), "longer than"),
    # `.GIT` is `.git` on macOS and Windows: `mx install --to .` would replace .git/config
    "dot-git-folded": (lambda d: v110(d)["artifacts"][0].update(path=".GIT/config"), ".git"),
    "dot-git-trailing-dot": (lambda d: v110(d)["artifacts"][0].update(path=".git./config"),
                             ".git"),
}


@pytest.mark.parametrize("case", sorted(LAYOUT))
def test_names_the_cache_cannot_hold_are_refused_in_one_line(
        case: str, site: tuple[Host, Path], tmp_path: Path) -> None:
    host, root = site
    change, needle = LAYOUT[case]
    unsigned_releases(root, change)
    spec = "acme/iris@1.1.1-" + "a" * 240 if case == "version-too-long" else "acme/iris@1.1.0"
    refused(tmp_path, host.url, DOC, needle, spec=spec,
            args=(*UNSIGNED, "--to", str(tmp_path / "mxhome" / "to")))


def test_a_record_named_variant_is_refused_by_the_manifest() -> None:
    from pydantic import ValidationError

    from mx.manifest import Artifact

    with pytest.raises(ValidationError, match="record"):
        Artifact.model_validate({"path": "m.onnx", "format": "onnx",
                                 "variant": "fp32.record.json"})


# -- what a host can send is exit 1, never 3 --------------------------------------------------

@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"signed": {"version": Infinity}}'],
                         ids=["deep", "infinity"])
def test_hostile_root_with_a_pinned_sha256_is_one_line(
        body: bytes, site: tuple[Host, Path], tmp_path: Path,
        mx) -> None:  # type: ignore[no-untyped-def]
    host, root = site
    assert mx("registry", "add", "acme", host.url, "--root-sha256", "ab" * 32).code == 0
    (root / "tuf/root.json").write_bytes(body)
    refused(tmp_path, host.url, "pinned sha256")


DOCUMENTS: dict[str, bytes] = {
    "deeply-nested": b"[" * 100_000,
    "huge-format-number": json.dumps({"mx_index": "9" * 5000}).encode(),
}


@pytest.mark.parametrize("case", sorted(DOCUMENTS))
def test_hostile_unsigned_documents_are_one_line(
        case: str, site: tuple[Host, Path], tmp_path: Path) -> None:
    host, root = site
    unsign(root)
    (root / DOC).write_bytes(DOCUMENTS[case])
    refused(tmp_path, host.url, DOC, args=UNSIGNED)
    (root / "index/search.json").write_bytes(DOCUMENTS[case])
    proc = mx_subprocess("search", "iris", "--registry", host.url, *UNSIGNED)
    assert proc.returncode == 1 and "internal error" not in proc.stderr, proc.stderr


# -- a folder in the working directory named like a model ------------------------------------

def test_a_folder_named_like_a_model_does_not_shadow_the_registry(
        site: tuple[Host, Path], tmp_path: Path, world: Path) -> None:
    # A checkout that holds `acme/iris/mx.yaml` (a model monorepo's working copy, or a
    # planted folder) makes `mx run acme/iris` run that folder, unsigned and unverified,
    # instead of the registry's release.
    host, _ = site
    planted = tmp_path / "checkout"
    shutil.copytree(world / "repos" / "iris", planted / "acme" / "iris",
                    ignore=shutil.ignore_patterns(".git"))
    rows = tmp_path / "rows.npy"
    import numpy as np

    np.save(rows, np.zeros((1, 4), dtype=np.float32))
    proc = mx_subprocess("run", "acme/iris", "--registry", host.url, "-i", rows,
                         "-o", tmp_path / "out.npy", cwd=planted)
    assert proc.returncode == 0, proc.stderr
    assert host.faults.requests, "the registry was never asked: the folder was run"
