"""S3-compatible object storage: where mx meets obstore (the `mx[s3]` extra).

One place knows the library, the AWS configuration chain and how a store's errors become
mx errors; `mx.http.Transport` reads `s3://` artifact URLs through it, and the index
builder's publisher (`mx.index_builder.publish_s3`) writes through it.

Why obstore (Rust's object_store), measured with bench/s3_clients.py against a local moto
server (100 puts and gets of 1 KiB, one 64 MiB object; seconds, low-high of two runs):

                  import    100 puts   100 gets   put 64 MiB  get 64 MiB
    obstore 0.12  0.3-0.4   0.95-0.99  0.58-0.90  1.25-1.68   0.16-0.27
    boto3 1.44    1.2-2.4   1.81-3.07  1.91-1.97  1.05-1.42   0.19-0.25
    s3fs 2025.12  1.2-1.6   2.13-4.06  2.36-3.00  0.82-0.90   0.77-0.78

(import includes making 64 MiB of random test data.) Small objects, which are most of what
a publish writes, go two to three times faster; large ones are a wash against moto. Install
weight: obstore is one 16 MB wheel with no dependencies beyond typing-extensions; boto3 is
four packages, 35 MB; s3fs pulls aiobotocore, botocore and aiohttp, 49 MB, and pins fsspec.

Configuration is the standard AWS chain, read here (object_store reads only part of it):
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else the profile AWS_PROFILE
(or "default") of ~/.aws/credentials and ~/.aws/config (AWS_SHARED_CREDENTIALS_FILE,
AWS_CONFIG_FILE); AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (or the profile's endpoint_url);
AWS_REGION or AWS_DEFAULT_REGION (or the profile's region). Web-identity and container
credentials are left to object_store when their variables are set. With no credentials at
all, requests go unsigned (a public bucket reads; a private one answers 403). Credentials
are never logged or put in a message.
"""

from __future__ import annotations

import configparser
import os
import re
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mx import __version__
from mx.errors import FetchError, MxError
from mx.extras import require

if TYPE_CHECKING:
    from obstore.store import S3Store

CREDENTIALS_HINT = ("a private bucket: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
                    "AWS_PROFILE), and AWS_ENDPOINT_URL for S3-compatible storage")


def split_url(url: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key); the key may be empty (a bucket's root)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise FetchError(f"{url}: not an s3://bucket/key URL", url=url)
    return parts.netloc, urllib.parse.unquote(parts.path.lstrip("/"))


def _profile_files() -> tuple[dict[str, str], dict[str, str]]:
    """(credentials, config) of the AWS profile in use, from the shared files."""
    profile = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE") or "default"
    home = Path.home() / ".aws"
    creds_file = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or home / "credentials")
    config_file = Path(os.environ.get("AWS_CONFIG_FILE") or home / "config")

    def section(path: Path, name: str) -> dict[str, str]:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            return {}
        return dict(parser[name]) if parser.has_section(name) else {}

    config_name = profile if profile == "default" else f"profile {profile}"
    config = section(config_file, config_name) or section(config_file, profile)
    return section(creds_file, profile), config


def aws_config() -> dict[str, Any]:
    """obstore S3 settings from the standard AWS chain (see the module's docstring)."""
    env = os.environ
    creds, profile = _profile_files()
    out: dict[str, Any] = {}
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    token = env.get("AWS_SESSION_TOKEN")
    if not (key and secret):
        key = creds.get("aws_access_key_id") or profile.get("aws_access_key_id")
        secret = creds.get("aws_secret_access_key") or profile.get("aws_secret_access_key")
        token = creds.get("aws_session_token") or profile.get("aws_session_token")
    if key and secret:
        out.update(access_key_id=key, secret_access_key=secret)
        if token:
            out["session_token"] = token
    elif not any(env.get(v) for v in ("AWS_WEB_IDENTITY_TOKEN_FILE",
                                      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                      "AWS_CONTAINER_CREDENTIALS_FULL_URI")):
        # Nothing configured: unsigned requests, rather than object_store probing the EC2
        # instance metadata endpoint (seconds of timeouts off EC2).
        out["skip_signature"] = True
    endpoint = (env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
                or profile.get("endpoint_url"))
    if endpoint:
        out["endpoint"] = endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or profile.get("region")
    out["region"] = region or "us-east-1"
    return out


def open_bucket(bucket: str, retries: int = 0, connect_timeout: float = 10.0,
                read_timeout: float = 60.0) -> S3Store:
    """A store for `bucket`. `retries` are object_store's own (the transport retries
    reads itself, with mx's one policy, and passes 0)."""
    require("s3", "s3:// URLs")
    from obstore.store import S3Store

    config = aws_config()
    # object_store's `timeout` bounds a whole request, body included (30 s by default):
    # a multi-GB artifact must not be cut off by it. Stalls are caught by `read_timeout`,
    # which restarts with every read, as the http transport's does.
    client: dict[str, Any] = {"connect_timeout": timedelta(seconds=connect_timeout),
                              "read_timeout": timedelta(seconds=read_timeout),
                              "timeout": timedelta(days=1),
                              "user_agent": f"mx/{__version__}"}
    if str(config.get("endpoint", "")).startswith("http://"):
        client["allow_http"] = True
    retry: dict[str, Any] = {"max_retries": retries,
                             "retry_timeout": timedelta(seconds=max(read_timeout, 60.0))}
    try:
        return S3Store(bucket, config=config, client_options=client,  # type: ignore[arg-type]
                       retry_config=retry)  # type: ignore[arg-type]
    except Exception as exc:  # a bad endpoint URL or region: name the setting, not the keys
        raise MxError(f"s3://{bucket}: the S3 configuration is not usable "
                      f"({type(exc).__name__})",
                      hint="check AWS_ENDPOINT_URL and AWS_REGION") from None


_STATUS = re.compile(r"status code: (\d{3})")


def status_of(exc: BaseException) -> int | None:
    """The HTTP status a store error carries (object_store puts it in its message)."""
    name = type(exc).__name__
    if name == "NotFoundError" or isinstance(exc, FileNotFoundError):
        return 404
    if name == "PermissionDeniedError":
        return 403
    if name == "UnauthenticatedError":
        return 401
    found = _STATUS.search(str(exc))
    return int(found.group(1)) if found else None


def is_store_error(exc: BaseException) -> bool:
    try:
        from obstore.exceptions import BaseError
    except ImportError:  # pragma: no cover - the extra is required before any store exists
        return False
    return isinstance(exc, BaseError | FileNotFoundError)


def describe(exc: BaseException) -> str:
    """A store error in a few words ("access denied (HTTP 403)"), never the store's
    multi-line text (which quotes whole requests)."""
    status = status_of(exc)
    if status is None:
        return f"no answer ({type(exc).__name__})"
    what = {404: "not found", 403: "access denied", 401: "not authenticated"}.get(status)
    return f"{what} (HTTP {status})" if what else f"HTTP {status}"


def fetch_error(url: str, exc: BaseException, doing: str = "") -> FetchError:
    """One line for a store error, with its status and a hint."""
    status = status_of(exc)
    hint = (CREDENTIALS_HINT if status in (401, 403) else
            "the object is not in the bucket; was the index published completely?"
            if status == 404 else None)
    prefix = f"{doing}: " if doing else ""
    return FetchError(f"{url}: {prefix}{describe(exc)}", hint=hint, url=url, status=status)


def retryable(exc: BaseException) -> bool:
    """Worth another try: a 5xx, a 429, a dropped connection (no status at all)."""
    status = status_of(exc)
    return status is None or status >= 500 or status == 429


@dataclass
class Listed:
    size: int
    etag: str | None


class Stores:
    """One store per bucket, shared by threads."""

    def __init__(self, retries: int = 0, connect_timeout: float = 10.0,
                 read_timeout: float = 60.0) -> None:
        self._stores: dict[str, S3Store] = {}
        self._lock = threading.Lock()
        self._args = (retries, connect_timeout, read_timeout)

    def get(self, bucket: str) -> S3Store:
        with self._lock:
            if bucket not in self._stores:
                self._stores[bucket] = open_bucket(bucket, *self._args)
            return self._stores[bucket]


def read(store: S3Store, key: str, offset: int, chunk_size: int) -> tuple[int, Iterator[bytes]]:
    """(the object's size, its bytes from `offset` on). Store errors pass through."""
    import obstore

    options: dict[str, Any] = {"range": {"offset": offset}} if offset else {}
    result = obstore.get(store, key, options=options)  # type: ignore[arg-type]

    def chunks() -> Iterator[bytes]:
        for chunk in result.stream(min_chunk_size=chunk_size):
            yield bytes(chunk)

    return int(result.meta["size"]), chunks()


def read_range(store: S3Store, key: str, start: int, end: int,
               chunk_size: int) -> tuple[int, Iterator[bytes]]:
    """(the object's size, its bytes [start, end)). Store errors pass through."""
    import obstore

    result = obstore.get(store, key, options={"range": (start, end)})

    def chunks() -> Iterator[bytes]:
        for chunk in result.stream(min_chunk_size=chunk_size):
            yield bytes(chunk)

    return int(result.meta["size"]), chunks()


def list_objects(store: S3Store, prefix: str) -> dict[str, Listed]:
    """Every object under `prefix` (keys relative to it)."""
    import obstore

    found: dict[str, Listed] = {}
    for batch in obstore.list(store, prefix=prefix or None, chunk_size=1000):
        for meta in batch:
            path = str(meta["path"])
            found[path[len(prefix):]] = Listed(int(meta["size"]), meta.get("e_tag"))
    return found


def put_file(store: S3Store, key: str, path: Path, content_type: str,
             cache_control: str) -> str | None:
    """Upload `path` as `key` (multipart when large); the ETag the store gave it."""
    import obstore

    attributes = {"Content-Type": content_type, "Cache-Control": cache_control}
    size = path.stat().st_size
    if size <= 8 << 20:
        got = obstore.put(store, key, path.read_bytes(), attributes=attributes)
    else:
        got = obstore.put(store, key, path, attributes=attributes, chunk_size=8 << 20)
    return got.get("e_tag")


def delete(store: S3Store, keys: list[str]) -> None:
    import obstore

    if keys:
        obstore.delete(store, keys)


def get_bytes(store: S3Store, key: str) -> bytes:
    import obstore

    return bytes(obstore.get(store, key).bytes())
