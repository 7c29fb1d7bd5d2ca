"""The client with a simulated host plugged in as its fetcher (as python-tuf's tests plug a
repository simulator into ngclient): install, verification and what is asked for, with no
server and no git. The registry's files are made in memory and signed by the real builder
code; the simulator serves them, or tampers with them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mx.client.install import ClientSession, install_requirement
from mx.client.spec import parse_requirement
from mx.config import Limits, Settings
from mx.errors import FetchError, IntegrityError, TrustError
from mx.http import Fetched, Sink, Transport
from mx.index_builder.keys import KeyRing, generate
from mx.index_builder.trustmeta import write_metadata

BASE = "https://models.example/"
WEIGHTS = b"not really onnx, but bytes with a digest" * 100


class SimulatedHost(Transport):
    """Serves `files` (path -> bytes) for BASE; records every URL asked for."""

    def __init__(self, root: Path) -> None:
        super().__init__(Limits(retries=0))
        self.root = root
        self.asked: list[str] = []
        self.tamper: dict[str, bytes] = {}

    def _bytes(self, url: str) -> bytes:
        self.asked.append(url)
        rel = url.removeprefix(BASE)
        if rel in self.tamper:
            return self.tamper[rel]
        path = self.root / rel
        if not url.startswith(BASE) or not path.is_file():
            raise FetchError(f"{url}: HTTP 404", url=url, status=404)
        return path.read_bytes()

    def get(self, url: str, max_bytes: int, etag: str | None = None) -> Fetched:
        return Fetched(200, self._bytes(url)[: max_bytes + 1], None)

    def download(self, url: str, sink: Sink, size: int, progress: object = None,
                 headers: dict[str, str] | None = None, offset: int = 0) -> None:
        data = self._bytes(url)
        sink.reset()
        sink.write(data[:size])


@pytest.fixture
def host(tmp_path: Path) -> SimulatedHost:
    root = tmp_path / "site"
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    (root / "artifacts/sha256").mkdir(parents=True)
    (root / "artifacts/sha256" / sha).write_bytes(WEIGHTS)
    doc = {"mx_index": "1.0", "name": "acme/tiny", "channels": {},
           "versions": {"1.0.0": {
               "tag": "v1.0.0", "commit": "0" * 40, "created": "2026-01-01T00:00:00Z",
               "manifest": {"name": "acme/tiny", "version": "1.0.0"}, "signature": None,
               "artifacts": [{"path": "model.onnx", "format": "onnx", "size": len(WEIGHTS),
                              "sha256": sha, "urls": [f"artifacts/sha256/{sha}"]}]}}}
    (root / "index/models/acme").mkdir(parents=True)
    (root / "index/models/acme/tiny.json").write_text(json.dumps(doc))
    generate(tmp_path / "keys")
    write_metadata(root, KeyRing(tmp_path / "keys"), {})
    return SimulatedHost(root)


def install(host: SimulatedHost, home: Path) -> Path:
    settings = Settings(home=home, registry=BASE, offline=False, token=None,
                        limits=Limits(index_max_age=0))
    session = ClientSession(settings, fetcher=host)
    installed = install_requirement(session, parse_requirement("acme/tiny@^1"))
    return installed.files["model.onnx"]


def test_install_through_a_plugged_in_fetcher(host: SimulatedHost, tmp_path: Path) -> None:
    path = install(host, tmp_path / "home")
    assert path.read_bytes() == WEIGHTS
    asked = [u.removeprefix(BASE) for u in host.asked]
    assert asked[:3] == ["tuf/root.json", "tuf/2.root.json", "tuf/timestamp.json"]
    assert asked[-2:] == ["index/models/acme/tiny.json",
                          f"artifacts/sha256/{hashlib.sha256(WEIGHTS).hexdigest()}"]


def test_tampered_bytes_are_refused_at_each_layer(host: SimulatedHost, tmp_path: Path) -> None:
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    host.tamper[f"artifacts/sha256/{sha}"] = WEIGHTS[::-1]
    with pytest.raises(IntegrityError, match="sha256"):
        install(host, tmp_path / "a")
    host.tamper = {"index/models/acme/tiny.json": b"{}"}
    with pytest.raises(IntegrityError, match="does not match the registry's signed metadata"):
        install(host, tmp_path / "b")
    host.tamper = {"tuf/timestamp.json": b'{"signed": {}, "signatures": []}'}
    with pytest.raises(TrustError, match="signed metadata"):
        install(host, tmp_path / "c")
