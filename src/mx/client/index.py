"""Fetch index documents: one small GET per model, revalidated with ETags, cached for offline."""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mx.errors import FetchError, IndexFormatError, OfflineError
from mx.fsutil import atomic_write_bytes
from mx.http import Transport

SUPPORTED_MAJOR = 1


def registry_key(base_url: str) -> str:
    """A readable, collision-free folder name for a registry URL."""
    stripped = re.sub(r"^[a-z0-9+.-]+://", "", base_url.rstrip("/"))
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", stripped).strip("_")[:48]
    return f"{readable}-{hashlib.sha256(base_url.rstrip('/').encode()).hexdigest()[:10]}"


def normalise_base(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def check_format(doc: Any, origin: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise IndexFormatError(f"{origin}: not an index document (expected a JSON object)")
    fmt = str(doc.get("mx_index", "1.0"))
    major = fmt.split(".", 1)[0]
    if not major.isdigit() or int(major) > SUPPORTED_MAJOR:
        raise IndexFormatError(
            f"{origin}: index format mx_index {fmt} is newer than this mx understands "
            f"({SUPPORTED_MAJOR}.x)", hint="upgrade mx (pip install -U mx)")
    return doc


def check_model_doc(raw: Any, origin: str, name: str) -> dict[str, Any]:
    doc = check_format(raw, origin)
    if doc.get("name") != name or not isinstance(doc.get("versions"), dict):
        raise IndexFormatError(f"{origin}: not the index document of {name}")
    for version, record in doc["versions"].items():
        arts = record.get("artifacts") if isinstance(record, dict) else None
        if not isinstance(arts, list) or not all(
            isinstance(a, dict) and isinstance(a.get("sha256"), str)
            and isinstance(a.get("size"), int) and isinstance(a.get("path"), str)
            and isinstance(a.get("urls"), list) for a in arts):
            raise IndexFormatError(f"{origin}: version {version} has malformed artifacts")
    return doc


@dataclass
class IndexClient:
    base_url: str
    home: Path
    transport: Transport
    offline: bool = False
    refresh: bool = False  # revalidate even a fresh cached document

    def __post_init__(self) -> None:
        self.base_url = normalise_base(self.base_url)
        self.cache_dir = self.home / "index" / registry_key(self.base_url)

    def url(self, rel: str) -> str:
        return urllib.parse.urljoin(self.base_url, rel)

    def model(self, name: str) -> dict[str, Any]:
        ns, short = name.split("/")
        rel = f"index/models/{ns}/{short}.json"
        raw = self._get(rel, f"model {name}")
        return check_model_doc(raw, self.url(rel), name)

    def search_listing(self) -> list[dict[str, Any]]:
        raw = check_format(self._get("index/search.json", "search listing"),
                           self.url("index/search.json"))
        models = raw.get("models")
        if not isinstance(models, list):
            raise IndexFormatError(f"{self.url('index/search.json')}: no models list")
        return [m for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]

    def _get(self, rel: str, what: str) -> Any:
        cached_path = self.cache_dir / (rel + ".cache.json")
        cached = _read_cached(cached_path)
        if self.offline:
            if cached is None:
                raise OfflineError(f"{what}: not in the offline cache ({self.url(rel)})",
                                   hint="run once online, or unset MX_OFFLINE / --offline")
            return cached["doc"]
        now = time.time()
        if cached is not None and not self.refresh and now < cached.get("fresh_until", 0):
            return cached["doc"]  # fetched moments ago: no request at all
        try:
            got = self.transport.get(self.url(rel), self.transport.limits.max_index_bytes,
                                     etag=cached["etag"] if cached else None)
        except FetchError as exc:
            if "HTTP 404" in str(exc):
                raise FetchError(f"{what}: not in the registry at {self.base_url} (HTTP 404)",
                                 hint="check the name with `mx search`, or the registry URL"
                                 ) from None
            raise
        max_age = got.max_age if got.max_age is not None else \
            self.transport.limits.index_max_age
        if got.status == 304 and cached is not None:
            cached["fresh_until"] = now + max_age
            atomic_write_bytes(cached_path, json.dumps(cached).encode())
            return cached["doc"]
        try:
            doc = json.loads(got.data)
        except ValueError:
            raise IndexFormatError(f"{self.url(rel)}: not valid JSON",
                                   hint="the index on the server is damaged") from None
        wrapper = {"url": self.url(rel), "etag": got.etag, "fresh_until": now + max_age,
                   "doc": doc}
        atomic_write_bytes(cached_path, json.dumps(wrapper).encode())
        return doc


def _read_cached(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
        return data if isinstance(data, dict) and "doc" in data else None
    except (FileNotFoundError, ValueError):
        return None
