"""Fetch index documents: one small GET per model, checked against the registry's signed
metadata and the typed index model, cached for offline use.

A document is used only after it (1) matches the length and sha256 that the signed TUF
targets give it, unless the registry is unsigned and the user allowed that, and (2) passes
`mx.indexdoc`'s typed model. The cache keeps the document with the sha256 it was verified
at: within its max-age it is used with no request; after that, a metadata refresh says
whether it changed, and it is fetched again only if it did.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx.client.metadata import RegistryMetadata, RootPin, SignedTarget
from mx.errors import FetchError, IndexFormatError, IntegrityError, OfflineError, SizeLimitError
from mx.fsutil import atomic_write_bytes
from mx.http import Transport, join_url


def registry_key(base_url: str) -> str:
    """A readable, collision-free folder name for a registry URL."""
    stripped = re.sub(r"^[a-z0-9+.-]+://", "", base_url.rstrip("/"))
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", stripped).strip("_")[:48]
    return f"{readable}-{hashlib.sha256(base_url.rstrip('/').encode()).hexdigest()[:10]}"


def normalise_base(url: str) -> str:
    return url if url.endswith("/") else url + "/"


@dataclass
class Document:
    """A verified, validated index document and what the signed metadata says of it."""

    data: dict[str, Any]  # the document, normalised by the typed model
    custom: dict[str, Any] = field(default_factory=dict)  # the target's signed custom data
    signed: bool = False  # False only for an unsigned registry the user allowed

    def signers(self) -> list[dict[str, Any]] | None:
        """The namespace's release signers named by signed metadata (None: unsigned index)."""
        if not self.signed:
            return None
        mx = self.custom.get("mx")
        found = mx.get("signers") if isinstance(mx, dict) else None
        return [s for s in found if isinstance(s, dict)] if isinstance(found, list) else []


@dataclass
class IndexClient:
    base_url: str
    home: Path
    transport: Transport
    offline: bool = False
    refresh: bool = False  # revalidate even a fresh cached document
    pin: RootPin = field(default_factory=RootPin)

    def __post_init__(self) -> None:
        self.base_url = normalise_base(self.base_url)
        key = registry_key(self.base_url)
        self.cache_dir = self.home / "index" / key
        self.metadata = RegistryMetadata(self.base_url, self.home / "tuf" / key,
                                         self.transport, self.pin)
        if self.metadata.pin_changed():
            # Documents verified under a root the user has since replaced by a pin are
            # not evidence of anything: they are fetched and verified again.
            shutil.rmtree(self.cache_dir, ignore_errors=True)

    @property
    def notices(self) -> list[str]:
        return self.metadata.notices

    def url(self, rel: str) -> str:
        return join_url(self.base_url, rel)

    def model_document(self, name: str) -> Document:
        ns, short = name.split("/")
        rel = f"index/models/{ns}/{short}.json"
        doc = self._get(rel, f"model {name}", "model")
        if doc.data["name"] != name:
            raise IndexFormatError(f"{self.url(rel)}: names {doc.data['name']!r}, not {name}",
                                   hint="the registry's index is malformed")
        return doc

    def model(self, name: str) -> dict[str, Any]:
        return self.model_document(name).data

    def search_listing(self) -> list[dict[str, Any]]:
        doc = self._get("index/search.json", "search listing", "search")
        models: list[dict[str, Any]] = doc.data["models"]
        return models

    def _get(self, rel: str, what: str, kind: str) -> Document:
        cached_path = self.cache_dir / (rel + ".cache.json")
        cached = _read_cached(cached_path)
        if self.offline:
            if cached is None:
                raise OfflineError(f"{what}: not in the offline cache ({self.url(rel)})",
                                   hint="run once online, or unset MX_OFFLINE / --offline")
            return _document(cached)
        now = time.time()
        if cached is not None and not self.refresh and now < cached.get("fresh_until", 0):
            return _document(cached)  # verified moments ago: no request at all
        target = self.metadata.target(rel)
        max_age = self.transport.limits.index_max_age
        if target is not None and cached is not None and cached.get("sha256") == target.sha256:
            cached.update(fresh_until=now + max_age, custom=target.custom, signed=True)
            atomic_write_bytes(cached_path, json.dumps(cached).encode())
            return _document(cached)
        got = self._fetch(rel, what, target, cached)
        if got is None:  # 304 Not Modified
            if target is not None or cached is None:
                # Only the ETag of an unsigned registry's document is ever sent: a 304 on
                # the signed path would keep a document the signed metadata says changed.
                raise IntegrityError(
                    f"{self.url(rel)}: does not match the registry's signed metadata (the "
                    "host answered 304 Not Modified to a request it could not have matched)",
                    hint="the host may be holding back a newer document (a freeze attack)")
            cached["fresh_until"] = now + max_age
            atomic_write_bytes(cached_path, json.dumps(cached).encode())
            return _document(cached)
        data, etag, server_max_age = got
        if target is not None:
            target.check(data, self.url(rel))
        else:
            max_age = server_max_age if server_max_age is not None else max_age
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):
            raise IndexFormatError(f"{self.url(rel)}: not valid JSON",
                                   hint="the index on the server is damaged") from None
        # The typed model pulls in pydantic (a fifth of a second to import): only a document
        # that is new to this cache pays for it, never an install of something cached.
        from mx.indexdoc import ModelDocument, SearchListing, parse

        model = ModelDocument if kind == "model" else SearchListing
        doc = parse(model, raw, self.url(rel)).model_dump(mode="json")
        wrapper = {"url": self.url(rel), "etag": etag, "fresh_until": now + max_age,
                   "sha256": hashlib.sha256(data).hexdigest(), "doc": doc,
                   "custom": target.custom if target else {}, "signed": target is not None}
        atomic_write_bytes(cached_path, json.dumps(wrapper).encode())
        return _document(wrapper)

    def _fetch(self, rel: str, what: str, target: SignedTarget | None,
               cached: dict[str, Any] | None) -> tuple[bytes, str | None, float | None] | None:
        limit = target.length if target is not None else self.transport.limits.max_index_bytes
        etag = cached.get("etag") if cached is not None and target is None else None
        try:
            got = self.transport.get(self.url(rel), limit, etag=etag)
        except SizeLimitError:
            if target is None:
                raise
            raise IntegrityError(
                f"{self.url(rel)}: does not match the registry's signed metadata (longer "
                f"than the signed {target.length} bytes)",
                hint="the host serves a document the registry did not publish") from None
        except FetchError as exc:
            if exc.status == 404:
                raise FetchError(f"{what}: not in the registry at {self.base_url} (HTTP 404)",
                                 hint="check the name with `mx search`, or the registry URL",
                                 url=self.url(rel), status=404) from None
            raise
        if got.status == 304:
            return None
        return got.data, got.etag, got.max_age


def _document(wrapper: dict[str, Any]) -> Document:
    return Document(wrapper["doc"], wrapper.get("custom") or {}, bool(wrapper.get("signed")))


def _read_cached(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    # Only what this version wrote (validated, with its digest) is reused.
    return data if isinstance(data, dict) and "doc" in data and "sha256" in data else None
