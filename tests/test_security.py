"""A hostile host: modified copies of a correctly built, signed registry served over HTTP,
and `mx install` run as a process against them with the default configuration.

Every attack must end in exit 1 with one line, nothing created, changed or deleted outside
$MX_HOME, and no credential reaching a second server.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mx.index_builder.keys import KeyRing, generate
from mx.index_builder.trustmeta import refresh_timestamp, write_metadata
from mx.sign.policy import TrustedKey
from tests.conftest import mx_subprocess
from tests.support.servers import Host, static_host

DOC = "index/models/acme/iris.json"


@pytest.fixture
def served(tmp_path: Path, built: Path) -> Iterator[tuple[Host, Path]]:
    """A copy of the built registry behind a static host; tests change the copy."""
    root = tmp_path / "served"
    shutil.copytree(built, root)
    with static_host(root) as host:
        yield host, root


def outside(tmp_path: Path) -> dict[str, bytes]:
    """Every file under the test's folder except the cache: what an attack must not touch."""
    skip = {"mxhome", "served"}
    return {p.relative_to(tmp_path).as_posix(): p.read_bytes()
            for p in sorted(tmp_path.rglob("*"))
            if p.is_file() and p.relative_to(tmp_path).parts[0] not in skip}


def install(url: str, *args: str, spec: str = "acme/iris@1.1.0",
            env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = mx_subprocess("install", spec, "--registry", url, *args, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def refused(tmp_path: Path, url: str, *needles: str, args: tuple[str, ...] = (),
            spec: str = "acme/iris@1.1.0") -> str:
    before = outside(tmp_path)
    models = tmp_path / "mxhome" / "models"
    linked = sorted(models.rglob("*")) if models.exists() else []
    code, _, err = install(url, *args, spec=spec)
    assert code == 1, err
    lines = [line for line in err.splitlines() if not line.startswith("warning:")]
    assert lines[0].startswith("error: "), err
    assert len(lines) <= 2 and all(not line.startswith("hint") or i == 1
                                   for i, line in enumerate(lines)), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert outside(tmp_path) == before
    assert (sorted(models.rglob("*")) if models.exists() else []) == linked
    return lines[0]


def edit_doc(root: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = root / DOC
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def v110(doc: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = doc["versions"]["1.1.0"]
    return record


def unsign(root: Path) -> None:
    shutil.rmtree(root / "tuf")


# -- what used to work: each attack on the document --------------------------------------

ATTACKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "path-escape": lambda d: v110(d)["artifacts"][0].update(path="../../../../elsewhere/x"),
    "absolute-path": lambda d: v110(d)["artifacts"][0].update(path="/tmp/mx-owned"),
    "empty-path": lambda d: v110(d)["artifacts"][0].update(path=""),
    "sha-as-path": lambda d: v110(d)["artifacts"][0].update(sha256="../../../../etc/passwd"),
    "variant-escape": lambda d: [a.update(variant="../../../../some/dir")
                                 for a in v110(d)["artifacts"]],
    "urls-garbage": lambda d: v110(d)["artifacts"][0].update(urls=[None, 5]),
    "version-key-escape": lambda d: d["versions"].update({"1.1.0/../x": v110(d)}),
    "channels-list": lambda d: d.update(channels=["stable"]),
    "card-path-escape": lambda d: v110(d)["manifest"].update(card="../../x.md"),
}

FIELD = {"path-escape": "contains '..'", "absolute-path": "is absolute",
         "empty-path": "path", "sha-as-path": "sha256", "variant-escape": "variant",
         "urls-garbage": "urls", "version-key-escape": "1.1.0/../x",
         "channels-list": "channels", "card-path-escape": "card"}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_tampered_document_is_refused_by_signed_metadata(
        attack: str, served: tuple[Host, Path], tmp_path: Path) -> None:
    host, root = served
    edit_doc(root, ATTACKS[attack])
    refused(tmp_path, host.url, DOC, "does not match the registry's signed metadata")


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_malformed_document_is_refused_by_the_typed_model(
        attack: str, served: tuple[Host, Path], tmp_path: Path) -> None:
    # Even a registry the user reads unsigned never gets a path built from these values.
    host, root = served
    unsign(root)
    edit_doc(root, ATTACKS[attack])
    first = refused(tmp_path, host.url, DOC, FIELD[attack], args=("--allow-unsigned-index",))
    assert "internal error" not in first


def test_stripped_signature_and_swapped_artifact(served: tuple[Host, Path],
                                                 tmp_path: Path) -> None:
    host, root = served
    evil = b"not the model"
    (root / "artifacts/sha256/evil").write_bytes(evil)
    import hashlib

    def swap(doc: dict[str, Any]) -> None:
        v110(doc)["signature"] = None
        art = v110(doc)["artifacts"][0]
        art.update(sha256=hashlib.sha256(evil).hexdigest(), size=len(evil),
                   urls=["artifacts/sha256/evil"])

    edit_doc(root, swap)
    refused(tmp_path, host.url, "does not match the registry's signed metadata")


def test_signer_named_by_the_host_is_not_trusted(served: tuple[Host, Path], tmp_path: Path,
                                                  world: Path) -> None:
    # The host names its own key as the release's signer: the document no longer verifies.
    host, root = served
    intruder = (world / "keys/intruder.pub").read_text()
    edit_doc(root, lambda d: v110(d)["signature"].update(
        signer={"public_key": intruder, "key_id": "0" * 64}))
    refused(tmp_path, host.url, "does not match the registry's signed metadata")


def test_swapped_bundle_is_refused(served: tuple[Host, Path], tmp_path: Path) -> None:
    # A bundle replaced on the host no longer matches the sha256 of the signed document.
    host, root = served
    bundle = root / "signatures/acme/iris/1.1.0.sigstore.json"
    bundle.write_bytes(bundle.read_bytes() + b" ")
    refused(tmp_path, host.url, "1.1.0.sigstore.json", "promised")


def test_channel_repointed_and_yank_removed(served: tuple[Host, Path], tmp_path: Path) -> None:
    host, root = served

    def downgrade(doc: dict[str, Any]) -> None:
        doc["channels"]["stable"] = "1.0.0"
        doc["versions"]["1.2.0"]["yanked"] = False

    edit_doc(root, downgrade)
    refused(tmp_path, host.url, "signed metadata", spec="acme/iris@stable")


def test_unsigned_registry_needs_explicit_consent(served: tuple[Host, Path],
                                                  tmp_path: Path) -> None:
    host, root = served
    unsign(root)
    first = refused(tmp_path, host.url, "publishes no signed metadata")
    assert "tuf/root.json" in first
    code, _, err = install(host.url, "--allow-unsigned-index")
    assert code == 0, err
    assert "reading its index unverified (allow_unsigned_index)" in err


def test_first_use_is_announced_once_and_metadata_cannot_be_dropped(
        served: tuple[Host, Path], tmp_path: Path) -> None:
    host, root = served
    code, _, err = install(host.url)
    assert code == 0, err
    assert err.count("trusting the root of") == 1 and "--root-sha256" in err
    code, _, err = install(host.url, spec="acme/iris@1.0.0")
    assert code == 0 and "trusting the root" not in err
    unsign(root)  # a host that drops the metadata after first use
    refused(tmp_path, host.url, "could not be fetched", spec="acme/resnet",
            args=("--allow-unsigned-index",))


# -- TUF's own list -----------------------------------------------------------------------

def release_signers(world: Path) -> dict[str, list[dict[str, Any]]]:
    """What the builder puts in the targets metadata for namespace acme."""
    pem = (world / "keys/acme.pub").read_bytes()
    return {"acme": [TrustedKey(pem, "acme.pub").to_json()]}


def replace_tree(root: Path, other: Path) -> None:
    shutil.rmtree(root)
    shutil.copytree(other, root)


def test_rollback_is_refused(served: tuple[Host, Path], tmp_path: Path,
                             index_keys: Path) -> None:
    host, root = served
    old = tmp_path / "old"
    shutil.copytree(root, old)
    refresh_timestamp(root, KeyRing(index_keys))
    assert install(host.url)[0] == 0  # the client has seen the newer timestamp
    replace_tree(root, old)
    shutil.rmtree(tmp_path / "mxhome" / "index")  # so the old documents must be fetched
    shutil.rmtree(tmp_path / "mxhome" / "models")
    refused(tmp_path, host.url, "older than what this client already trusts")


def test_freeze_expired_timestamp_is_refused(served: tuple[Host, Path], tmp_path: Path,
                                             index_keys: Path) -> None:
    host, root = served
    refresh_timestamp(root, KeyRing(index_keys),
                      now=datetime.now(UTC) - timedelta(days=8))
    refused(tmp_path, host.url, "has expired")


def test_mix_and_match_is_refused(served: tuple[Host, Path], tmp_path: Path,
                                  built: Path, index_keys: Path) -> None:
    host, root = served
    # The host serves the current metadata with another version's targets file.
    tuf = root / "tuf"
    snap_v = json.loads((tuf / "timestamp.json").read_text())["signed"]["meta"][
        "snapshot.json"]["version"]
    targets_v = json.loads((tuf / f"{snap_v}.snapshot.json").read_text())["signed"]["meta"][
        "targets.json"]["version"]
    edit_doc(root, lambda d: d["channels"].update(stable="1.0.0"))
    write_metadata(root, KeyRing(index_keys), {"acme": []})  # a genuine later state
    new_snap = json.loads((tuf / "timestamp.json").read_text())["signed"]["meta"][
        "snapshot.json"]["version"]
    assert new_snap == snap_v + 1
    shutil.copyfile(tuf / f"{targets_v}.targets.json", tuf / f"{targets_v + 1}.targets.json")
    refused(tmp_path, host.url, "signed metadata")


def test_endless_metadata_and_documents_are_cut_off(served: tuple[Host, Path],
                                                    tmp_path: Path) -> None:
    host, _ = served
    host.faults.endless.add("/tuf/timestamp.json")
    refused(tmp_path, host.url, "larger than allowed")
    host.faults.endless.clear()
    host.faults.endless.add("/" + DOC)
    refused(tmp_path, host.url, "longer than the signed")


def test_wrong_model_document_is_refused(served: tuple[Host, Path], tmp_path: Path) -> None:
    host, root = served
    shutil.copyfile(root / "index/models/acme/resnet.json", root / DOC)
    refused(tmp_path, host.url, "does not match the registry's signed metadata")


def test_malicious_mirror_bytes_are_refused(served: tuple[Host, Path], tmp_path: Path) -> None:
    host, root = served
    doc = json.loads((root / DOC).read_text())
    art = v110(doc)["artifacts"][0]
    blob = root / art["urls"][0]
    blob.chmod(0o644)
    blob.write_bytes(bytes(art["size"]))  # same size, other bytes
    refused(tmp_path, host.url, "sha256")


def test_root_rotation_is_followed_from_a_pinned_root(served: tuple[Host, Path],
                                                      tmp_path: Path, index_keys: Path,
                                                      world: Path, mx) -> None:  # type: ignore[no-untyped-def]
    host, root = served
    pinned = tmp_path / "pinned-root.json"
    shutil.copyfile(root / "tuf/root.json", pinned)
    assert mx("registry", "add", "acme", host.url, "--root", pinned).code == 0
    # The publisher rotates the root key: the new root is signed by old and new keys.
    keys = tmp_path / "new-keys"
    shutil.copytree(index_keys, keys)
    os.replace(keys / "root.pem", keys / "root.old.pem")
    generate(keys)
    result = write_metadata(root, KeyRing(keys), release_signers(world))
    assert "root" in result.written and result.versions["root"] == 2
    code, _, err = install(host.url)
    assert code == 0, err
    assert "trusting the root" not in err  # pinned, not trusted on first use


def test_root_not_countersigned_by_the_old_key_is_refused(
        served: tuple[Host, Path], tmp_path: Path, index_keys: Path) -> None:
    host, root = served
    assert install(host.url)[0] == 0
    # Someone with fresh keys publishes a "version 2" root the old root never approved.
    keys = tmp_path / "intruder-keys"
    generate(keys)
    shutil.copyfile(root / "tuf/root.json", tmp_path / "keep.json")
    shutil.rmtree(root / "tuf")
    write_metadata(root, KeyRing(keys), {"acme": []})
    write_metadata(root, KeyRing(keys), {"acme": []},
                   now=datetime.now(UTC) + timedelta(days=400))  # root v2, renewed
    shutil.rmtree(tmp_path / "mxhome" / "index")
    shutil.rmtree(tmp_path / "mxhome" / "models")
    refused(tmp_path, host.url, "signed metadata")


def test_compromised_timestamp_key_is_recovered_by_rotation(
        served: tuple[Host, Path], tmp_path: Path, index_keys: Path, world: Path) -> None:
    host, root = served
    assert install(host.url)[0] == 0
    good = tmp_path / "good"
    shutil.copytree(root, good)
    # The attacker, holding the timestamp key, pushes the client to a huge version.
    from tuf.api.metadata import Metadata

    ts = Metadata.from_file(str(root / "tuf/timestamp.json"))
    ts.signed.version = 9999
    ts.signed.snapshot_meta.version = 9999
    ts.sign(KeyRing(index_keys).signer("timestamp"))
    (root / "tuf/timestamp.json").write_bytes(ts.to_bytes())
    refused(tmp_path, host.url, "signed metadata", spec="acme/iris@1.0.0")
    # The publisher rotates the timestamp key; the client recovers.
    replace_tree(root, good)
    keys = tmp_path / "rotated"
    shutil.copytree(index_keys, keys)
    (keys / "timestamp.pem").unlink()
    generate(keys)
    assert "root" in write_metadata(root, KeyRing(keys), release_signers(world)).written
    code, _, err = install(host.url, spec="acme/iris@1.0.0")
    assert code == 0, err


# -- credentials never cross origins --------------------------------------------------------

def test_credentials_do_not_follow_redirects(served: tuple[Host, Path], tmp_path: Path,
                                             built: Path) -> None:
    host, root = served
    other_root = tmp_path / "other"
    shutil.copytree(root, other_root)
    with static_host(other_root) as other:
        host.faults.redirect["/" + DOC] = other.url + DOC
        doc = json.loads((root / DOC).read_text())
        blob = v110(doc)["artifacts"][0]["urls"][0]
        host.faults.redirect["/" + blob] = other.url + blob
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login user password secret\n")
        netrc.chmod(0o600)
        code, _, err = install(host.url, env={"MX_TOKEN": "tok-123", "NETRC": str(netrc)})
        assert code == 0, err
        assert any(a for a in host.faults.authorization), "the registry gets its credentials"
        assert other.faults.requests, "the redirects were followed"
        assert all(a is None for a in other.faults.authorization)


def test_redirect_loops_are_one_line(served: tuple[Host, Path], tmp_path: Path) -> None:
    host, root = served
    host.faults.redirect["/" + DOC] = "/" + DOC
    refused(tmp_path, host.url, "redirects")
    host.faults.redirect.clear()
    doc = json.loads((root / DOC).read_text())
    art = v110(doc)["artifacts"][0]
    blob = "/" + art["urls"][0]
    host.faults.redirect[blob] = blob
    from mx.client.partfile import PartWriter
    from mx.errors import FetchError
    from mx.http import Transport

    with (tmp_path / "sink").open("wb") as f, pytest.raises(FetchError, match="redirects"):
        Transport().download(host.url + blob[1:], PartWriter(f.fileno()), art["size"])


def test_https_to_http_redirect_is_refused() -> None:
    from mx.errors import FetchError
    from mx.http import check_redirect

    with pytest.raises(FetchError, match="from https to plain http"):
        check_redirect("https://models.example/a", "http://models.example/a")
    with pytest.raises(FetchError, match="not an HTTP URL"):
        check_redirect("https://models.example/a", "file:///etc/passwd")
    check_redirect("http://models.example/a", "https://cdn.example/a")


def test_index_keys_and_timestamp_commands(served: tuple[Host, Path], tmp_path: Path,
                                           index_keys: Path, mx) -> None:  # type: ignore[no-untyped-def]
    host, root = served
    res = mx("index", "keys", tmp_path / "k")
    assert res.code == 0 and "created root.pem, targets.pem" in res.out
    assert oct((tmp_path / "k/root.pem").stat().st_mode & 0o777) == "0o600"
    assert "nothing created" in mx("index", "keys", tmp_path / "k").out
    assert install(host.url)[0] == 0
    before = json.loads((root / "tuf/timestamp.json").read_text())["signed"]["version"]
    res = mx("index", "timestamp", root, "--keys", index_keys)
    assert res.code == 0 and f"timestamp version {before + 1}" in res.out
    code, _, err = install(host.url, "--refresh", spec="acme/iris@1.0.0")
    assert code == 0, err
    # A timestamp signed with a key the root does not name is refused.
    assert mx("index", "timestamp", root, "--keys", tmp_path / "k").code == 0
    refused(tmp_path, host.url, "not signed by the registry's keys", args=("--refresh",),
            spec="acme/iris@1.0.0")
