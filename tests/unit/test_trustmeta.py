"""The builder's TUF metadata on its own (no HTTP): what is signed, when it is re-signed,
and rotations; read back with python-tuf's own Metadata API."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata

from mx.errors import BuildError
from mx.index_builder.keys import KeyRing, generate
from mx.index_builder.trustmeta import load_current, refresh_timestamp, write_metadata

NOW = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
SIGNERS = {"acme": [{"issuer": "https://issuer.example", "identity": "ci@acme.example"}]}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    root = tmp_path / "out"
    for rel, data in {"index/models/acme/iris.json": b"{}", "index/search.json": b"[]",
                      "cards/acme/iris/1.0.0.md": b"# card", "artifacts/sha256/x": b"blob",
                      "index.html": b"<html>"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture
def keys(tmp_path: Path) -> KeyRing:
    generate(tmp_path / "keys")
    return KeyRing(tmp_path / "keys")


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "tuf").iterdir())}


def test_targets_cover_what_clients_read_and_name_the_signers(out: Path,
                                                              keys: KeyRing) -> None:
    result = write_metadata(out, keys, SIGNERS, now=NOW)
    assert result.written == ["root", "targets", "snapshot", "timestamp"]
    targets = load_current(out / "tuf")["targets"].signed.targets
    assert sorted(targets) == ["cards/acme/iris/1.0.0.md", "index/models/acme/iris.json",
                               "index/search.json"]  # not the mirror, not the site
    assert targets["index/models/acme/iris.json"].custom == {"mx": {"signers":
                                                                    SIGNERS["acme"]}}
    assert targets["index/search.json"].custom is None
    ts = Metadata.from_file(str(out / "tuf/timestamp.json"))
    assert ts.signed.expires == datetime(2026, 6, 8, tzinfo=UTC)  # 7 days from the UTC day


def test_same_state_same_bytes_and_no_rewrite(out: Path, keys: KeyRing, tmp_path: Path) -> None:
    write_metadata(out, keys, SIGNERS, now=NOW)
    first = files(out)
    again = write_metadata(out, keys, SIGNERS, now=NOW + timedelta(hours=5))
    assert again.written == [] and files(out) == first
    other = tmp_path / "other"
    shutil.copytree(out, other)
    shutil.rmtree(other / "tuf")
    write_metadata(other, keys, SIGNERS, now=NOW + timedelta(hours=5))  # same UTC day
    assert files(other) == first


def test_a_change_re_signs_up_the_chain_and_expiry_is_renewed(out: Path,
                                                             keys: KeyRing) -> None:
    write_metadata(out, keys, SIGNERS, now=NOW)
    (out / "cards/acme/iris/1.0.0.md").write_bytes(b"# changed")
    assert write_metadata(out, keys, SIGNERS, now=NOW).written == [
        "targets", "snapshot", "timestamp"]
    late = NOW + timedelta(days=6, hours=12)  # under a day before the timestamp expires
    assert write_metadata(out, keys, SIGNERS, now=late).written == ["timestamp"]
    assert refresh_timestamp(out, keys, now=late) == 4


def test_root_rotation_needs_a_key_the_old_root_trusted(out: Path, keys: KeyRing) -> None:
    write_metadata(out, keys, SIGNERS, now=NOW)
    (keys.folder / "root.pem").unlink()
    generate(keys.folder)  # a new root key, and the old one is gone
    with pytest.raises(BuildError, match="no key the published root trusts"):
        write_metadata(out, KeyRing(keys.folder), SIGNERS, now=NOW)


def test_an_offline_root_key_is_not_needed_for_ordinary_builds(out: Path,
                                                               keys: KeyRing) -> None:
    write_metadata(out, keys, SIGNERS, now=NOW)
    (keys.folder / "root.pem").unlink()
    (out / "index/search.json").write_bytes(b"[1]")
    assert write_metadata(out, KeyRing(keys.folder), SIGNERS, now=NOW).written == [
        "targets", "snapshot", "timestamp"]


def test_keyless_roles_are_named_by_identity_and_need_an_oidc_token(
        out: Path, keys: KeyRing, monkeypatch: pytest.MonkeyPatch) -> None:
    from mx.errors import ConfigError
    from mx.index_builder.keys import make_keyless

    for var in ("GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL", "SIGSTORE_ID_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    write_metadata(out, keys, SIGNERS, now=NOW)
    identity = "https://github.com/acme/registry/.github/workflows/publish.yml@refs/heads/main"
    make_keyless(keys.folder, identity)
    ring = KeyRing(keys.folder)
    key = ring.public_key("timestamp")
    assert key.keytype == "sigstore-oidc" and key.keyval["identity"] == identity
    assert not (keys.folder / "timestamp.pem").exists()
    # The new root naming the identity needs only the root key; the online roles it then
    # re-signs need the CI job's token, which this machine has not: one clear error.
    before = files(out)
    with pytest.raises(ConfigError) as caught:
        write_metadata(out, ring, SIGNERS, now=NOW)
    assert files(out) == before  # nothing half-signed is published
    assert "keyless" in caught.value.message and "OIDC" in caught.value.message
    assert "id-token: write" in str(caught.value.hint)
    with pytest.raises(ConfigError, match="root stays a key"):
        make_keyless(keys.folder, identity, roles=("root",))
