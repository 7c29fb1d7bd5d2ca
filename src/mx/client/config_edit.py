"""Edits to the user's config.toml: `mx registry add`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from mx.config import SHA256_HEX, config_path, read_user_config
from mx.errors import ConfigError
from mx.fsutil import atomic_write_bytes

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def add_registry(name: str, url: str, root_file: Path | None, root_sha256: str | None,
                 allow_unsigned_index: bool, require_signatures: bool,
                 make_default: bool) -> Path:
    """Write `[registries.<name>]` (replacing one of that name); returns the file written.

    A pinned root file is copied beside config.toml, so the pin does not depend on where
    the user downloaded it."""
    import tomli_w

    if not _NAME.match(name):
        raise ConfigError(f"registry name {name!r}: use letters, digits, '_' or '-'")
    if "://" not in url:
        raise ConfigError(f"{url!r} is not a URL", hint="e.g. https://models.acme.example/")
    if root_file is not None and root_sha256 is not None:
        raise ConfigError("give --root or --root-sha256, not both")
    if root_sha256 is not None and not SHA256_HEX.match(root_sha256):
        raise ConfigError(f"--root-sha256 {root_sha256!r} is not 64 hex digits")
    path = config_path()
    config = read_user_config(path)
    registries = config.setdefault("registries", {})
    if not isinstance(registries, dict):
        raise ConfigError(f"{path}: [registries] must be a table")
    entry: dict[str, Any] = {"url": url}
    if root_file is not None:
        pinned = path.parent / "roots" / f"{name}.root.json"
        pinned.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root_file, pinned)
        entry["root"] = str(pinned)
    if root_sha256 is not None:
        entry["root_sha256"] = root_sha256.lower()
    if allow_unsigned_index:
        entry["allow_unsigned_index"] = True
    if require_signatures:
        entry["require_signatures"] = True
    registries[name] = entry
    if make_default:
        config["default_registry"] = name
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, tomli_w.dumps(config).encode())
    return path
