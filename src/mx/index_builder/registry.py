"""`registry.yaml` (schema `registry: 1`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mx import yamlio
from mx.cardrules import CardPolicy
from mx.errors import ConfigError
from mx.fsutil import atomic_write_bytes
from mx.index_builder.giturl import check_repo
from mx.names import check_model_name

REGISTRY_MAJOR = 1


class Signer(BaseModel):
    model_config = ConfigDict(extra="allow")
    issuer: str | None = None
    identity: str | None = None
    public_key: str | None = None


class Namespace(BaseModel):
    model_config = ConfigDict(extra="allow")
    signers: list[Signer] = Field(default_factory=list)


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    repo: str = Field(min_length=1)
    models: list[str] | None = None  # monorepo: model directories to take ("." = root)
    web: str | None = None  # browsable URL of the repo, for links
    lfs: str | None = None  # Git LFS endpoint, when neither .lfsconfig nor the URL gives it

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        return check_repo(v)  # before any git command line sees it


class Registry(BaseModel):
    model_config = ConfigDict(extra="allow")
    registry: int
    name: str
    base_url: str | None = None
    mirror_artifacts: bool = False
    # Where clients fetch mirrored artifacts, when not beside the index documents: the
    # index then lists <artifacts_url>artifacts/sha256/<hex> (an s3:// bucket, private or
    # not, or another https host). The builder writes them under artifacts/ all the same.
    artifacts_url: str | None = None
    allow_unsigned: bool = False  # list unsigned releases as unsigned instead of refusing
    trust_config: str | None = None  # Sigstore ClientTrustConfig JSON for offline keyless
    sources: list[SourceSpec] = Field(default_factory=list)
    namespaces: dict[str, Namespace] = Field(default_factory=dict)
    channels: dict[str, dict[str, str]] = Field(default_factory=dict)
    yanked: dict[str, dict[str, str]] = Field(default_factory=dict)
    card: CardPolicy = Field(default_factory=CardPolicy)  # what every release's card needs
    # The site's lifecycle sections and audit page read this many of registry.yaml's newest
    # commits (a long history stays fast to build).
    history_commits: int = Field(default=500, ge=1, le=100_000)

    @field_validator("registry")
    @classmethod
    def _major(cls, v: int) -> int:
        if v != REGISTRY_MAJOR:
            raise ValueError(f"registry: {v} is not a format this mx understands (registry: 1)")
        return v

    @field_validator("artifacts_url")
    @classmethod
    def _artifacts_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        scheme = v.partition("://")[0].lower()
        if scheme not in ("https", "http", "s3") or "://" not in v or any(
                c.isspace() for c in v) or "?" in v or "#" in v:
            raise ValueError(f"{v!r} is not an https://, http:// or s3:// URL of a folder")
        return v if v.endswith("/") else v + "/"

    @field_validator("channels", "yanked")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            check_model_name(name)
        return {k: {str(a): str(b) for a, b in (inner or {}).items()} for k, inner in v.items()}


def load_registry(path: Path, parsed: Path | None = None) -> Registry:
    """Read registry.yaml. With `parsed` (a file of the builder's cache), an unchanged file
    is not parsed again: YAML parsing is a millisecond a source, the typed check of what
    was parsed far less."""
    if parsed is None:
        return validate_registry(yamlio.load_file(path), path)
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return validate_registry(yamlio.load_file(path), path)  # says what is wrong
    # <sha256 of registry.yaml> NUL <the Registry as JSON>
    try:
        head, _, body = parsed.read_bytes().partition(b"\0")
        if head.decode() == digest:
            return Registry.model_validate_json(body)
    except (FileNotFoundError, ValueError):  # ValidationError is a ValueError
        pass
    registry = validate_registry(yamlio.load_file(path), path)
    atomic_write_bytes(parsed, digest.encode() + b"\0" + registry.model_dump_json().encode())
    return registry


def validate_registry(doc: Any, path: Path) -> Registry:
    """A parsed (round-trip) registry.yaml as a Registry; errors say file:line."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}:1: registry.yaml is a YAML mapping (registry: 1, ...)")
    try:
        return Registry.model_validate(yamlio.to_plain(doc))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = yamlio.line_of(doc, loc)
        where = f"{path}:{line}" if line else str(path)
        field = ".".join(str(p) for p in loc) or "(top level)"
        raise ConfigError(f"{where}: {field}: {str(err['msg']).removeprefix('Value error, ')}",
                          hint="see docs/formats.md (registry.yaml) for the format") from None
