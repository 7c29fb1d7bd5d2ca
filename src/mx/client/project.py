"""`mx.toml` (what a project wants) and `mx.lock` (exactly what it got)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mx.client.install import ClientSession, InstalledModel, install_requirement, materialize
from mx.client.spec import Requirement, parse_requirement
from mx.errors import ConfigError
from mx.fsutil import write_if_changed
from mx.http import join_url
from mx.indexdoc import (
    MAX_ARTIFACTS,
    MAX_URLS,
    Format,
    ModelName,
    RelPath,
    Sha256,
    Size,
    Url,
    Variant,
    VersionStr,
    describe,
)
from mx.semver import Range, Version

LOCK_VERSION = 1
LOCK_HEADER = "# Written by `mx install`: exact versions, hashes and URLs. Do not edit.\n"


@dataclass(frozen=True)
class Dependency:
    req: Requirement
    variant: str | None
    format: str | None


def read_project(path: Path) -> tuple[str | None, list[Dependency]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file", hint="create mx.toml with a [models] table, "
                          "or pass a model: mx install ns/name@^1.0") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    registry = data.get("registry")
    models = data.get("models", {})
    if not isinstance(models, dict) or not models:
        raise ConfigError(f"{path}: [models] is empty; list models as \"ns/name\" = \"^1.0\"")
    wanted = []
    for name, value in sorted(models.items()):
        if isinstance(value, str):
            value = {"version": value}
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: models.{name}: expected a range string or a table")
        req = parse_requirement(f"{name}@{value.get('version', 'latest')}")
        wanted.append(Dependency(req, value.get("variant"), value.get("format")))
    return registry if isinstance(registry, str) else None, wanted


def read_lock(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}", hint="delete it and run mx install"
                          ) from None
    if data.get("version") != LOCK_VERSION:
        raise ConfigError(f"{path}: lock format version {data.get('version')!r} is not "
                          f"{LOCK_VERSION}", hint="delete it and run mx install")
    try:
        parsed = LockDocument.model_validate({"model": data.get("model", [])})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe(exc)}",
                          hint="delete it and run mx install") from None
    return {m.name: m.model_dump(mode="json") for m in parsed.model}


class LockedFile(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    path: RelPath
    format: Format | None = None
    sha256: Sha256
    size: Size
    urls: list[Url] = Field(max_length=MAX_URLS)


class LockedModel(BaseModel):
    """One [[model]] of mx.lock: every value that becomes a cache path is checked."""

    model_config = ConfigDict(extra="ignore", strict=True)
    name: ModelName
    version: VersionStr
    variant: Variant
    registry: Url
    requested: str
    file: list[LockedFile] = Field(max_length=MAX_ARTIFACTS)


class LockDocument(BaseModel):
    model: list[LockedModel] = Field(max_length=10_000)


def _lock_satisfies(entry: dict[str, Any], want: Dependency) -> bool:
    if want.variant is not None and entry.get("variant") != want.variant:
        return False
    if want.format is not None and {f.get("format") for f in entry["file"]} != {want.format}:
        return False
    sel = want.req.selector
    if sel == "latest" or sel[:1].isalpha():
        return entry.get("requested") == sel
    return Range.parse(sel).contains(Version.parse(entry["version"]))


def install_project(session: ClientSession, project_dir: Path,
                    locked: bool) -> list[InstalledModel]:
    _, wanted = read_project(project_dir / "mx.toml")
    lock_path = project_dir / "mx.lock"
    lock = read_lock(lock_path)
    installed: list[InstalledModel] = []
    entries: list[dict[str, Any]] = []
    for want in wanted:
        entry = lock.get(want.req.name)
        if entry is not None and _lock_satisfies(entry, want):
            files = [{"path": f["path"], "format": f.get("format"), "sha256": f["sha256"],
                      "size": f["size"], "urls": f["urls"]} for f in entry["file"]]
            inst = materialize(session, entry["registry"], entry["name"], entry["version"],
                               entry["variant"], files, None, None)
            entries.append(entry)
        elif locked:
            raise ConfigError(f"mx.lock: no entry for {want.req} that satisfies mx.toml",
                              hint="run `mx install` without --locked to update mx.lock")
        else:
            inst = install_requirement(session, want.req, want.variant, want.format)
            entries.append(_lock_entry(inst, want))
        installed.append(inst)
    if not locked:
        write_if_changed(lock_path, render_lock(entries).encode("utf-8"))
    return installed


def _lock_entry(inst: InstalledModel, want: Dependency) -> dict[str, Any]:
    return lock_entry(inst, want.req.selector)


def lock_entry(inst: InstalledModel, requested: str) -> dict[str, Any]:
    """The [[model]] of mx.lock recording `inst`, asked for as `requested` (a range)."""
    return {
        "name": inst.name, "version": inst.version, "variant": inst.variant,
        "registry": inst.registry, "requested": requested,
        "file": [{"path": a["path"], "format": a.get("format"), "sha256": a["sha256"],
                  "size": a["size"],
                  "urls": [join_url(inst.registry, u) for u in a["urls"]]}
                 for a in inst.artifacts],
    }


def render_lock(entries: list[dict[str, Any]]) -> str:
    import tomli_w

    body = tomli_w.dumps({"version": LOCK_VERSION,
                          "model": sorted(entries, key=lambda e: e["name"])})
    return LOCK_HEADER + body
