"""mx's one transport against a real static host: the retry policy (Retry-After, jitter),
caps, and the TLS trust store shared by every kind of request."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from mx.client.partfile import PartWriter
from mx.config import Limits
from mx.errors import FetchError, SizeLimitError
from mx.http import Transport, trust_store
from mx.httpbase import _retry_after
from tests.support.servers import static_host
from tests.support.sinks import Collect


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "doc.json").write_bytes(b'{"a": 1}')
    (root / "blob").write_bytes(bytes(range(256)) * 64)
    return root


def test_retry_after_is_honoured_for_documents_and_artifacts(files: Path,
                                                             tmp_path: Path) -> None:
    with static_host(files) as host:
        host.faults.status["/doc.json"] = [503, 429]
        host.faults.status["/blob"] = [503]
        transport = Transport(Limits(backoff=0.001))
        slept: list[float] = []
        transport.sleep = slept.append
        assert transport.get(host.url + "doc.json", 100).data == b'{"a": 1}'
        with (tmp_path / "out").open("wb") as f:
            sink = PartWriter(f.fileno())
            transport.download(host.url + "blob", sink, 256 * 64)
            sink.close()
        assert (tmp_path / "out").read_bytes() == (files / "blob").read_bytes()
        transport.close()
    assert slept == [2.0, 2.0, 2.0]  # the server's Retry-After, not the backoff


def test_backoff_has_jitter_and_a_bound(files: Path) -> None:
    with static_host(files) as host:
        host.faults.status["/doc.json"] = [500] * 10
        transport = Transport(Limits(backoff=1.0, retries=3))
        slept: list[float] = []
        transport.sleep = slept.append
        with pytest.raises(FetchError, match="gave up after 3 retries") as caught:
            transport.get(host.url + "doc.json", 100)
    assert caught.value.url == host.url + "doc.json"
    assert len(slept) == 3
    for attempt, delay in enumerate(slept):
        assert 2 ** attempt / 2 <= delay <= 2 ** attempt


def test_status_and_size_are_fields_not_text(files: Path) -> None:
    with static_host(files) as host:
        transport = Transport()
        with pytest.raises(FetchError) as missing:
            transport.get(host.url + "nope.json", 100)
        assert missing.value.status == 404
        with pytest.raises(SizeLimitError):
            transport.get(host.url + "doc.json", 3)
    with pytest.raises(FetchError) as local:
        Transport().get((files / "nope.json").as_uri(), 100)
    assert local.value.status == 404


def test_retry_after_parsing() -> None:
    assert _retry_after("7") == 7.0
    assert _retry_after("100000") == 60.0  # capped
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert _retry_after("soon") is None and _retry_after(None) is None


def test_one_trust_store_honours_ssl_cert_file(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(bogus))
    with pytest.raises(ssl.SSLError):
        trust_store()  # the variable is read (a real CA file there would be used)
    monkeypatch.delenv("SSL_CERT_FILE")
    assert trust_store().verify_mode == ssl.CERT_REQUIRED


def test_a_resumed_download_asks_for_the_rest_on_every_retry(files: Path) -> None:
    whole = (files / "blob").read_bytes()
    with static_host(files) as host:
        host.faults.truncate["/blob"] = 1  # the resumed request drops half-way
        transport = Transport(Limits(backoff=0.001))
        sink = Collect(whole[:5000])  # what an earlier, killed process wrote
        transport.download(host.url + "blob", sink, len(whole), offset=5000)
        ranges = [r for p, r, _ in host.faults.requests if p == "/blob"]
    assert bytes(sink.data) == whole
    assert ranges[0] == "bytes=5000-"
    assert ranges[1] is not None and int(ranges[1][6:-1]) > 5000  # after what arrived


def test_a_host_that_announces_more_than_it_sends(files: Path) -> None:
    whole = (files / "blob").read_bytes()
    with static_host(files) as host:
        host.faults.truncate["/blob"] = 1
        transport = Transport(Limits(backoff=0.001, retries=1))
        sink = Collect()
        # The sink needs only the first half: once it holds that, a dropped connection is
        # the end of the transfer, and the caller's sha256 decides.
        transport.download(host.url + "blob", sink, len(whole) // 2)
    assert bytes(sink.data) == whole[: len(whole) // 2]


def test_drops_after_progress_do_not_use_up_the_retries(tmp_path: Path) -> None:
    """A long download on a flaky line: each drop that follows at least 1 MiB of progress
    starts the retry count over, so four drops get through with two retries allowed."""
    root = tmp_path / "www"
    root.mkdir()
    whole = bytes(range(256)) * (8 << 12)  # 8 MiB
    (root / "big").write_bytes(whole)
    with static_host(root) as host:
        host.faults.truncate["/big"] = 4  # halves: 4 MiB, 2, 1, then 0.5 (no progress)
        transport = Transport(Limits(backoff=0.001, retries=2))
        slept: list[float] = []
        transport.sleep = slept.append
        sink = Collect()
        transport.download(host.url + "big", sink, len(whole))
        transport.close()
    assert bytes(sink.data) == whole and len(slept) == 4
    with static_host(root) as host:
        host.faults.truncate["/big"] = 3
        transport = Transport(Limits(backoff=0.001, retries=2))
        transport.sleep = lambda s: None
        sink = Collect(whole[: (8 << 20) - 4096])  # little is left: drops bring no progress
        with pytest.raises(FetchError, match="gave up after 2 retries"):
            transport.download(host.url + "big", sink, len(whole), offset=len(sink.data))
