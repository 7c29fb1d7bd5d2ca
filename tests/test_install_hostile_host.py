"""`mx install` against a registry host that redirects to URLs no client can send: one
error line and exit 1 (or the next URL of the artifact), never exit 3 ("a bug in mx")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.servers import Host

BAD = "http://127.0.0.1:99999/x"  # a port out of range: ValueError in http.client/urllib


def test_an_artifact_redirected_off_any_url_falls_back_to_the_next(mx, host: Host,  # type: ignore[no-untyped-def]
                                                                    tmp_path: Path) -> None:
    doc = json.loads((host.root / "index/models/acme/iris.json").read_text())
    art = doc["versions"]["1.0.0"]["artifacts"][0]
    assert len(art["urls"]) > 1  # the mirror, then the lfs+ URL
    host.faults.redirect[f"/artifacts/sha256/{art['sha256']}"] = BAD
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 0, res.err
    assert (tmp_path / "mxhome" / "blobs" / "sha256" / art["sha256"]).exists()
    assert not list((tmp_path / "mxhome" / "tmp").iterdir())


def test_an_index_document_redirected_off_any_url_is_one_error(mx, host: Host) -> None:  # type: ignore[no-untyped-def]
    host.faults.redirect["/index/models/acme/iris.json"] = BAD
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 1, res.err
    assert "malformed URL" in res.err and "internal error" not in res.err


def test_a_token_with_its_trailing_newline_works_and_a_non_ascii_one_is_one_error(
        mx, host: Host, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A CI secret saved with its newline made http.client raise ValueError mid-install
    (exit 3), with the token in the message."""
    monkeypatch.setenv("MX_TOKEN", "s3cret\n")
    res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
    assert res.code == 0, res.err
    assert set(host.faults.authorization) == {"Bearer s3cret"}
    monkeypatch.setenv("MX_TOKEN", "s3cr\u20act")
    res = mx("install", "acme/iris@1.1.0", "--registry", host.url)
    assert res.code == 1 and "MX_TOKEN" in res.err
    assert "s3cr" not in res.err
