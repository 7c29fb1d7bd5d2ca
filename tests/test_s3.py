"""Object storage against a real S3 API over HTTP (moto's server on 127.0.0.1): publishing
with `mx index build -o s3://...`, and installs from s3:// URLs with the AWS credential chain."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3  # moto[server] and obstore are test dependencies (the test extra)
import moto.server as moto_server
import pytest

from tests.conftest import mx_subprocess
from tests.support.servers import free_port, static_host

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "mx-test-key", "AWS_SECRET_ACCESS_KEY": "mx-test-secret"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@dataclass
class Bucket:
    name: str
    client: Any  # a boto3 S3 client: another implementation than mx's, to check mx's work

    def keys(self, prefix: str = "") -> set[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name,
                                                                      Prefix=prefix)
        return {o["Key"][len(prefix):] for page in pages for o in page.get("Contents", [])}

    def head(self, key: str) -> dict[str, Any]:
        return dict(self.client.head_object(Bucket=self.name, Key=key))

    def read(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.name, Key=key)["Body"].read())

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=data)


@pytest.fixture
def bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A private bucket of its own, and the AWS settings (env) to reach it."""
    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint,
                       "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    name = f"mx-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    client.create_bucket(Bucket=name)
    return Bucket(name, client)


def build(mx, registry_file: Path, url: str, *extra: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    res = mx("index", "build", registry_file, "-o", url, "--json", *extra)
    assert res.code == 0, res.err
    published: dict[str, Any] = json.loads(res.out)["published"]
    return published


def test_publish_to_s3(mx, registry_file: Path, bucket: Bucket) -> None:  # type: ignore[no-untyped-def]
    url = f"s3://{bucket.name}/registry"
    first = build(mx, registry_file, url)
    keys = bucket.keys("registry/")
    for key in ("index/models/acme/iris.json", "index/models/acme/resnet.json",
                "index/search.json", "index/config.json", "cards/acme/iris/1.1.0.md",
                "tuf/root.json", "tuf/timestamp.json", "tuf/1.root.json", "index.html",
                "models/acme/iris.html"):
        assert key in keys, key
    assert set(first["uploaded"]) == keys and not first["deleted"]
    artifacts = sorted(k for k in keys if k.startswith("artifacts/sha256/"))
    assert artifacts
    # What each key holds is the staged bytes; an artifact is what its name says.
    blob = bucket.read("registry/" + artifacts[0])
    assert hashlib.sha256(blob).hexdigest() == artifacts[0].rsplit("/", 1)[1]

    def head(key: str) -> tuple[str, str]:
        h = bucket.head("registry/" + key)
        return h["ContentType"], h["CacheControl"]

    assert head("index/models/acme/iris.json") == ("application/json", "public, max-age=60")
    assert head("tuf/timestamp.json") == ("application/json", "no-cache")
    assert head("tuf/1.root.json")[1] == "public, max-age=31536000, immutable"
    assert head(artifacts[0]) == ("application/octet-stream",
                                  "public, max-age=31536000, immutable")
    assert head("index.html")[0] == "text/html; charset=utf-8"
    assert head("cards/acme/iris/1.1.0.md")[0] == "text/markdown; charset=utf-8"

    # Dependency order: what a document names is uploaded before it, TUF metadata last.
    order = first["uploaded"]
    assert order.index(artifacts[0]) < order.index("cards/acme/iris/1.1.0.md")
    assert order.index("cards/acme/iris/1.1.0.md") < order.index("index/models/acme/iris.json")
    assert order.index("index/models/acme/iris.json") < order.index("index/search.json")
    assert max(order.index(k) for k in order if not k.startswith("tuf/")) < min(
        order.index(k) for k in order if k.startswith("tuf/"))
    assert order[-1] == "tuf/timestamp.json"

    # Nothing changed: nothing is uploaded.
    again = build(mx, registry_file, url)
    assert again["uploaded"] == [] and again["deleted"] == []
    assert again["unchanged"] == len(keys)


def test_publish_uploads_only_changes_and_deletes_stale(  # type: ignore[no-untyped-def]
        mx, registry_file: Path, bucket: Bucket) -> None:
    url = f"s3://{bucket.name}/r/"
    build(mx, registry_file, url, "--no-site")
    # A new build cache (a fresh CI runner) continues the bucket's TUF metadata and finds
    # every object there already (single-part ETags against MD5s, artifacts by name).
    fresh = build(mx, registry_file, url, "--no-site", "--cache-dir",
                  registry_file.parent / "other-cache")
    assert fresh["tuf_synced"] > 0 and fresh["uploaded"] == [] and fresh["deleted"] == []

    # The scheduled timestamp job re-signs the bucket's timestamp alone; the next build
    # continues from it (it does not sign a second timestamp of the same version).
    res = mx("index", "timestamp", url)
    assert res.code == 0, res.err
    refreshed = json.loads(bucket.read("r/tuf/timestamp.json"))["signed"]["version"]
    assert res.out.strip() == f"{url}: timestamp version {refreshed}"
    after = build(mx, registry_file, url, "--no-site")
    assert after["tuf_synced"] > 0 and after["uploaded"] == []
    bucket.write("r/left-over.txt", b"not from this build")
    tuf_before = {k for k in bucket.keys("r/") if k.startswith("tuf/")}

    # One model changes (a yank in registry.yaml): its document, the listing and the TUF
    # metadata go up again; the other model's document and every artifact stay.
    text = registry_file.read_text()
    registry_file.write_text(text.replace('1.2.0: "wrong weights; use 1.1.0"',
                                          '1.2.0: "wrong weights; use 1.1.0", '
                                          '1.0.0: "superseded"'))
    changed = build(mx, registry_file, url, "--no-site")
    up = set(changed["uploaded"])
    assert "index/models/acme/iris.json" in up and "tuf/timestamp.json" in up
    assert "index/models/acme/resnet.json" not in up
    assert not any(k.startswith(("artifacts/", "cards/", "manifests/")) for k in up)
    assert up <= {"index/models/acme/iris.json", "index/search.json"} | {
        k for k in up if k.startswith("tuf/")}
    assert changed["deleted"] == ["left-over.txt"]
    assert "left-over.txt" not in bucket.keys("r/")
    assert json.loads(bucket.read("r/index/models/acme/iris.json"))["versions"]["1.0.0"][
        "yanked"] is True
    assert tuf_before < bucket.keys("r/")  # earlier metadata versions stay for clients

    # A model leaves the registry: its objects are deleted, after everything is uploaded.
    registry_file.write_text(registry_file.read_text().replace(
        "  - repo: repos/mono\n    models: [vision/resnet]\n", ""))
    gone = build(mx, registry_file, url, "--no-site")
    assert "index/models/acme/resnet.json" in gone["deleted"]
    assert "cards/acme/resnet/0.1.0.md" in gone["deleted"]
    assert not any(k.startswith("index/models/acme/resnet") for k in bucket.keys("r/"))

    # An object changed behind the publisher's back is put back on the next build.
    bucket.write("r/index/search.json", b"{}")
    fixed = build(mx, registry_file, url, "--no-site")
    assert fixed["uploaded"] == ["index/search.json"]


def _publish_with_artifacts_in_bucket(mx, world: Path, bucket: Bucket) -> Path:  # type: ignore[no-untyped-def]
    """Build with artifacts_url pointing at the private bucket, publish there, and return
    a public copy of the documents (no artifacts) to serve over HTTP."""
    registry_file = world / "registry.yaml"
    registry_file.write_text(registry_file.read_text().replace(
        "mirror_artifacts: true", f"mirror_artifacts: true\nartifacts_url: s3://{bucket.name}/m"))
    build(mx, registry_file, f"s3://{bucket.name}/m", "--no-site")
    doc = json.loads(bucket.read("m/index/models/acme/iris.json"))
    art = doc["versions"]["1.1.0"]["artifacts"][0]
    assert art["urls"][0] == f"s3://{bucket.name}/m/artifacts/sha256/{art['sha256']}"
    # The LFS stores of the model repositories are the second URL of each artifact: gone,
    # so that what an install gets comes from the bucket.
    for repo in ("iris", "mono"):
        shutil.rmtree(world / "repos" / repo / ".git" / "lfs" / "objects")
    public = world / "public"
    for key in bucket.keys("m/"):
        if not key.startswith("artifacts/"):
            (public / key).parent.mkdir(parents=True, exist_ok=True)
            (public / key).write_bytes(bucket.read("m/" + key))
    return public


def test_install_artifacts_from_private_bucket(  # type: ignore[no-untyped-def]
        mx, world: Path, bucket: Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    public = _publish_with_artifacts_in_bucket(mx, world, bucket)
    with static_host(public) as host:
        for var in CREDENTIALS:
            monkeypatch.delenv(var)
        res = mx("install", "acme/iris@1.1.0", "--registry", host.url)
        assert res.code == 1
        assert f"s3://{bucket.name}/m/artifacts/sha256/" in res.err
        assert "access denied (HTTP 403)" in res.err
        assert "AWS_ACCESS_KEY_ID" in res.err and "mx-test-secret" not in res.err

        for key, value in CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        res = mx("install", "acme/iris@1.1.0", "--registry", host.url, "--json")
        assert res.code == 0, res.err
        [got] = json.loads(res.out)
        path = Path(got["files"]["model.onnx"])
        doc = json.loads((public / "index/models/acme/iris.json").read_text())
        art = doc["versions"]["1.1.0"]["artifacts"][0]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == art["sha256"]

        # A tampered object (same size, other bytes) is refused by its sha256.
        other = doc["versions"]["1.0.0"]["artifacts"][0]
        key = f"m/artifacts/sha256/{other['sha256']}"
        data = bytearray(bucket.read(key))
        data[-1] ^= 0xFF
        bucket.write(key, bytes(data))
        res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
        assert res.code == 1
        assert "sha256" in res.err
        assert not (tmp_path / "mxhome" / "blobs" / "sha256" / other["sha256"]).exists()

        # One that grew is cut off at the promised size.
        bucket.write(key, bytes(data) + b"more")
        res = mx("install", "acme/iris@1.0.0", "--registry", host.url)
        assert res.code == 1 and "the index promised" in res.err


def test_registry_on_s3(mx, registry_file: Path, bucket: Bucket,  # type: ignore[no-untyped-def]
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry whose base URL is s3:// (documents and TUF metadata read from the bucket
    with the same credentials)."""
    build(mx, registry_file, f"s3://{bucket.name}/reg", "--no-site")
    url = f"s3://{bucket.name}/reg/"
    res = mx("install", "acme/iris@^1", "--registry", url, "--json")
    assert res.code == 0, res.err
    [got] = json.loads(res.out)
    assert got["version"] == "1.1.0" and got["signed"] is True

    for var in CREDENTIALS:
        monkeypatch.delenv(var)
    # A process of its own: the AWS chain is read from its environment.
    proc = mx_subprocess("install", "acme/resnet@0.1.0", "--registry", url, "--refresh")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("error: ") and "access denied (HTTP 403)" in lines[0], lines
    assert any(line.startswith("hint: ") and "AWS_ACCESS_KEY_ID" in line for line in lines)
    assert "Traceback" not in proc.stderr


def test_aws_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mx.objstore import aws_config

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
                "AWS_DEFAULT_REGION", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    assert aws_config() == {"skip_signature": True, "region": "us-east-1"}

    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n"
        "[ci]\naws_access_key_id = C\naws_secret_access_key = CS\naws_session_token = T\n")
    (tmp_path / "config").write_text(
        "[profile ci]\nregion = eu-west-1\nendpoint_url = https://minio.example\n")
    assert aws_config()["access_key_id"] == "D"
    monkeypatch.setenv("AWS_PROFILE", "ci")
    assert aws_config() == {"access_key_id": "C", "secret_access_key": "CS",
                            "session_token": "T", "region": "eu-west-1",
                            "endpoint": "https://minio.example"}
    # The environment goes first.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "E")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ES")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    got = aws_config()
    assert (got["access_key_id"], got["endpoint"], got["region"]) == (
        "E", "http://127.0.0.1:9", "ap-south-1")
    assert "session_token" not in got


def test_transport_resumes_and_retries(bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    from obstore.exceptions import GenericError

    from mx import objstore
    from mx.config import Limits
    from mx.errors import FetchError
    from mx.http import Transport

    data = bytes(range(256)) * 40
    bucket.write("blob", data)

    class Sink:
        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, chunk: bytes) -> None:
            self.data += chunk

        def reset(self) -> None:
            self.data.clear()

    transport = Transport(Limits(backoff=0.001))
    transport.sleep = lambda s: None
    sink = Sink()
    transport.download(f"s3://{bucket.name}/blob", sink, len(data), offset=1000)
    assert bytes(sink.data) == data[1000:]

    real, calls = objstore.read, []

    def flaky(store, key, offset, chunk_size):  # type: ignore[no-untyped-def]
        calls.append(offset)
        if len(calls) == 1:
            raise GenericError("Server returned non-2xx status code: 503 Slow Down")
        return real(store, key, offset, chunk_size)

    monkeypatch.setattr(objstore, "read", flaky)
    sink = Sink()
    transport.download(f"s3://{bucket.name}/blob", sink, len(data))
    assert bytes(sink.data) == data and calls == [0, 0]

    with pytest.raises(FetchError) as err:
        transport.download(f"s3://{bucket.name}/missing", Sink(), 10)
    assert err.value.status == 404 and err.value.url == f"s3://{bucket.name}/missing"


def test_transport_takes_the_object_length_under_a_cap(bucket: Bucket) -> None:
    """`exact=False` reaches the s3 path through the public API: the size is a cap."""
    from mx.errors import IntegrityError
    from mx.http import Transport
    from tests.support.sinks import Collect

    data = bytes(range(256)) * 40
    bucket.write("blob", data)
    transport = Transport()
    sink = Collect()
    transport.download(f"s3://{bucket.name}/blob", sink, 2 * len(data), exact=False)
    assert bytes(sink.data) == data
    sink = Collect()
    with pytest.raises(IntegrityError, match=f"the object is {len(data)} bytes"):
        transport.download(f"s3://{bucket.name}/blob", sink, len(data) - 1, exact=False)
    assert bytes(sink.data) == b""


def test_large_objects_come_in_ranged_parts(bucket: Bucket, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An s3:// artifact of several pieces is fetched in parallel ranged gets (a flaky
    one retried), hashed in order; an object of another size is refused."""
    from obstore.exceptions import GenericError

    from mx import objstore
    from mx.client import parallel
    from mx.config import Limits
    from mx.errors import IntegrityError
    from mx.http import Transport

    data = b"".join(hashlib.sha256(str(i).encode()).digest() * 32768 for i in range(20))
    bucket.write("big", data)  # 20 MiB: three pieces of 8 MiB
    url, sha = f"s3://{bucket.name}/big", hashlib.sha256(data).hexdigest()
    transport = Transport(Limits(backoff=0.001, parallel_parts=4, one_stream_rate=0))
    transport.sleep = lambda s: None
    assert parallel.wants_parallel(url, len(data), 4)
    real, ranges = objstore.read_range, []

    def flaky(store, key, start, end, chunk_size):  # type: ignore[no-untyped-def]
        ranges.append((start, end))
        if len(ranges) == 2:
            raise GenericError("Server returned non-2xx status code: 503 Slow Down")
        return real(store, key, start, end, chunk_size)

    monkeypatch.setattr(objstore, "read_range", flaky)
    dest = tmp_path / "blob"
    parallel.fetch(transport, url, dest, sha, len(data), tmp_path / "x.part",
                   lambda n: None, "big")
    assert dest.read_bytes() == data
    piece = parallel.piece_size(len(data), 4)
    assert sorted(set(ranges)) == [(a, min(a + piece, len(data)))
                                   for a in range(0, len(data), piece)]
    assert len(ranges) == len(set(ranges)) + 1  # the one that failed, asked again

    bucket.write("big", data[:-1])  # the bucket's object is not the one indexed
    with pytest.raises(IntegrityError, match="the index promised"):
        parallel.fetch(transport, url, tmp_path / "again", sha, len(data),
                       tmp_path / "y.part", lambda n: None, "big")
    assert not (tmp_path / "y.part").exists() and not (tmp_path / "again").exists()


def test_missing_extra_is_named(mx, registry_file: Path,  # type: ignore[no-untyped-def]
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from mx import extras

    monkeypatch.setitem(extras.EXTRAS, "s3", ("mx_no_such_module",))
    res = mx("index", "build", registry_file, "-o", "s3://bucket/x")
    assert res.code == 1
    assert "needs the 's3' extra" in res.err and "mx[s3]" in res.err
