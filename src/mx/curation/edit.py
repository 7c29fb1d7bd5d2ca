"""`mx registry promote` / `yank` / `unyank`: one key in registry.yaml, nothing else moves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mx import yamlio
from mx.errors import ConfigError
from mx.fsutil import atomic_write_bytes
from mx.index_builder.registry import validate_registry
from mx.names import check_model_name
from mx.semver import Version


@dataclass(frozen=True)
class Edit:
    registry: Path
    summary: str  # one line for the CLI and for a commit message
    previous: str | None  # what the key held before


def _mapping(doc: Any, key: str) -> Any:
    from ruamel.yaml.comments import CommentedMap

    value = doc.get(key)
    if value is None:
        value = CommentedMap()
        doc[key] = value
    if not isinstance(value, dict):
        raise ConfigError(f"registry.yaml: {key} is a mapping of model name to entries")
    return value


def _check(name: str, version: str, known: set[str] | None) -> str:
    try:
        check_model_name(name)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    try:
        canonical = str(Version.parse(version))
    except ValueError as exc:
        raise ConfigError(f"version {version!r}: {exc}", hint="e.g. 1.4.0") from None
    if known is not None and canonical not in known:
        listed = ", ".join(sorted(known, key=Version.parse)) or "none"
        raise ConfigError(f"{name} {canonical}: no such release in the registry's sources "
                          f"(released: {listed})",
                          hint="tag the release in the model repo first, or check the version")
    return canonical


def _save(path: Path, doc: Any, text: str) -> None:
    validate_registry(doc, path)  # never write a file the builder would reject
    atomic_write_bytes(path, yamlio.dump_text(doc, like=text).encode("utf-8"))


def _load(path: Path) -> tuple[Any, str]:
    try:
        text = yamlio.read_text(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file", hint="name it with -r PATH") from None
    doc = yamlio.load_text(text, str(path))
    validate_registry(doc, path)  # with file:line errors
    return doc, text


def promote(path: Path, name: str, version: str, channel: str,
            known: set[str] | None) -> Edit:
    if not channel or not channel.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"--channel {channel!r}: letters, digits, '-' and '_' only")
    doc, text = _load(path)
    version = _check(name, version, known)
    yanked = (doc.get("yanked") or {}).get(name) or {}
    if version in {str(k) for k in yanked}:
        raise ConfigError(f"{name} {version} is yanked; a channel cannot point at it",
                          hint=f"unyank it first: mx registry unyank {name} {version}")
    channels = _mapping(doc, "channels")
    entry = channels.get(name)
    if entry is None:
        from ruamel.yaml.comments import CommentedMap

        entry = CommentedMap()
        entry.fa.set_flow_style()  # like the rest: {stable: 1.4.0}
        channels[name] = entry
    previous = entry.get(channel)
    if previous is not None and str(previous) == version:
        raise ConfigError(f"{name}: channel {channel} already points at {version}; "
                          "nothing to change")
    entry[channel] = version
    _save(path, doc, text)
    was = f" (was {previous})" if previous is not None else ""
    return Edit(path, f"promote {name} {version} to {channel}{was}",
                None if previous is None else str(previous))


def yank(path: Path, name: str, version: str, reason: str, known: set[str] | None) -> Edit:
    if not reason.strip():
        raise ConfigError("--reason: say why, e.g. \"wrong tokenizer; use 1.3.1\"")
    doc, text = _load(path)
    version = _check(name, version, known)
    entry = _mapping(doc, "yanked").get(name)
    if entry is not None and version in {str(k) for k in entry}:
        raise ConfigError(f"{name} {version} is already yanked: {entry[version]!r}",
                          hint=f"to change the reason, unyank it first: "
                          f"mx registry unyank {name} {version}")
    pointing = [ch for ch, v in ((doc.get("channels") or {}).get(name) or {}).items()
                if str(v) == version]
    if pointing:
        raise ConfigError(f"{name} {version} is on channel {', '.join(map(str, pointing))}",
                          hint="promote another version to that channel first")
    if entry is None:
        from ruamel.yaml.comments import CommentedMap

        entry = CommentedMap()
        entry.fa.set_flow_style()
        doc["yanked"][name] = entry
    entry[version] = reason.strip()
    _save(path, doc, text)
    return Edit(path, f"yank {name} {version}: {reason.strip()}", None)


def unyank(path: Path, name: str, version: str) -> Edit:
    doc, text = _load(path)
    version = _check(name, version, None)
    entry = (doc.get("yanked") or {}).get(name)
    if entry is None or version not in {str(k) for k in entry}:
        raise ConfigError(f"{name} {version} is not yanked")
    key = next(k for k in entry if str(k) == version)
    reason = str(entry.pop(key))
    if not entry:
        del doc["yanked"][name]
    _save(path, doc, text)
    return Edit(path, f"unyank {name} {version}", reason)
