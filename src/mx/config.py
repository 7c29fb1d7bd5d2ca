"""Where mx keeps things, the limits every fetch obeys, and the user's config file.

Limits live in one dataclass (as python-tuf's ngclient does) so a test or an
embedding application can tighten them in one place.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mx.errors import ConfigError


@dataclass(frozen=True)
class Limits:
    max_index_bytes: int = 32 << 20  # one index document; they are small by design
    max_lfs_batch_bytes: int = 8 << 20
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 4  # per URL, on 5xx, timeouts and dropped connections
    backoff: float = 0.25  # seconds; doubled after each retry
    parallel_downloads: int = 4  # files at once
    # Ranged requests at once for one large file over HTTP(S) (1: one stream per file).
    parallel_parts: int = 4
    # A large file's first piece arriving at this many bytes a second or faster keeps the
    # file to one stream: the path does not limit a connection, so more would only cost
    # CPU (0: always use parallel_parts).
    one_stream_rate: int = 256 << 20
    chunk_size: int = 1 << 20
    # An index document fetched less than this many seconds ago is used without asking
    # the server again (unless the server's Cache-Control says otherwise, or --refresh).
    index_max_age: float = 60.0


@dataclass(frozen=True)
class Settings:
    home: Path
    registry: str | None
    offline: bool
    token: str | None
    limits: Limits = field(default_factory=Limits)
    trust: dict[str, Any] = field(default_factory=dict)
    require_signatures: bool = False  # the chosen registry's config says so
    # The chosen registry's root of trust: a root.json file, or its sha256 (else trust
    # on first use), and whether an index without signed metadata may be read at all.
    root_file: Path | None = None
    root_sha256: str | None = None
    allow_unsigned_index: bool = False


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _token(value: str | None) -> str | None:
    """MX_TOKEN as it can go in a header: surrounding whitespace dropped (a secret saved
    with its trailing newline), and refused, without echoing it, if it holds characters a
    header cannot carry (http.client would fail on them mid-install, token in the text)."""
    token = (value or "").strip()
    if not token:
        return None
    if not re.fullmatch(r"[\x21-\x7e]+", token):
        raise ConfigError("MX_TOKEN holds a space, a control character or a non-ASCII "
                          "character; a bearer token cannot",
                          hint="set MX_TOKEN to the token alone")
    return token


def default_home() -> Path:
    env = os.environ.get("MX_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return Path(base) / "mx"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mx", appauthor=False))


def config_path() -> Path:
    env = os.environ.get("MX_CONFIG")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mx" / "config.toml"


def read_user_config(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def registry_url(name_or_url: str, config: dict[str, Any]) -> str:
    """A registry given by URL, path, or a name from `[registries.<name>]`."""
    regs = _table(config, "registries")
    if name_or_url in regs:
        url = regs[name_or_url].get("url") if isinstance(regs[name_or_url], dict) else None
        if not isinstance(url, str):
            raise ConfigError(f"{config_path()}: registries.{name_or_url}.url is missing")
        return url
    if "://" not in name_or_url:
        p = Path(name_or_url).expanduser()
        if p.exists():
            return p.resolve().as_uri() + "/"
        raise ConfigError(
            f"registry {name_or_url!r} is neither a URL, a local folder, nor a name in "
            f"{config_path()}",
            hint="pass --registry http://host/ or set MX_REGISTRY",
        )
    return name_or_url


def _registry_entry(url: str | None, config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The `[registries.<name>]` table whose url is `url` (name and table), else ("", {})."""
    if url is None:
        return "", {}
    registries = _table(config, "registries")
    for name, entry in registries.items():
        if isinstance(entry, dict) and str(entry.get("url", "")).rstrip("/") == url.rstrip("/"):
            return str(name), entry
    return "", {}


def _table(config: dict[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{config_path()}: {key} = {value!r} must be a table ([{key}])")
    return value


def _flag(entry: dict[str, Any], key: str, name: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):  # bool("no") is True: never guess
        raise ConfigError(f"{config_path()}: registries.{name}.{key} = {value!r} must be "
                          "true or false")
    return value


SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


def _root_pin(name: str, entry: dict[str, Any]) -> tuple[Path | None, str | None]:
    where = f"{config_path()}: registries.{name}"
    root, digest = entry.get("root"), entry.get("root_sha256")
    if root is not None and not isinstance(root, str):
        raise ConfigError(f"{where}.root must be the path of a root.json file")
    if digest is not None and (not isinstance(digest, str) or not SHA256_HEX.match(digest)):
        raise ConfigError(f"{where}.root_sha256 = {digest!r} is not 64 hex digits")
    root_file = Path(root).expanduser() if root else None
    if root_file is not None and not root_file.is_absolute():
        root_file = config_path().parent / root_file
    return root_file, digest.lower() if isinstance(digest, str) else None


# (least, most) each setting may be: past these a value is a typo or a hostile file, and
# would otherwise fail deep inside the HTTP stack (time_t overflow, a 0-worker pool).
_DAY = 86_400.0
LIMIT_RANGES: dict[str, tuple[float, float]] = {
    "max_index_bytes": (1, 1 << 40), "max_lfs_batch_bytes": (1, 1 << 40),
    "connect_timeout": (0.001, _DAY), "read_timeout": (0.001, _DAY),
    "retries": (0, 100), "backoff": (0, 3600.0), "parallel_downloads": (1, 256),
    "parallel_parts": (1, 64), "one_stream_rate": (0, 1 << 40),
    "chunk_size": (1, 1 << 30), "index_max_age": (0, 365 * _DAY),
}


def _limits(table: Any) -> Limits:
    """`[limits]` in config.toml overrides the defaults, field by field."""
    if not isinstance(table, dict):
        raise ConfigError(f"{config_path()}: [limits] must be a table")
    known = {f.name: f.type for f in fields(Limits)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{config_path()}: limits.{key} is not a setting",
                              hint="known: " + ", ".join(sorted(known)))
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{config_path()}: limits.{key} = {value!r} is not a "
                              "non-negative number")
        least, most = LIMIT_RANGES.get(key, (0, float("inf")))
        if not least <= value <= most:  # NaN fails this too
            raise ConfigError(f"{config_path()}: limits.{key} = {value!r} is outside "
                              f"{least:g}..{most:g}")
        values[key] = int(value) if known[key] in ("int", int) else float(value)
    return Limits(**values)


def load_settings(
    registry: str | None = None, offline: bool | None = None, home: Path | None = None,
    project_registry: str | None = None, allow_unsigned_index: bool | None = None,
) -> Settings:
    """Settings from arguments, then the environment, then mx.toml, then the config file."""
    config = read_user_config()
    default = config.get("default_registry")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{config_path()}: default_registry = {default!r} must be a string")
    chosen = registry or os.environ.get("MX_REGISTRY") or project_registry or default
    url = registry_url(chosen, config) if chosen else None
    limits = _limits(config.get("limits", {}))
    ttl = os.environ.get("MX_INDEX_TTL")
    if ttl:
        try:
            limits = replace(limits, index_max_age=float(ttl))
        except ValueError:
            raise ConfigError(f"MX_INDEX_TTL={ttl!r} is not a number of seconds") from None
    parts = os.environ.get("MX_PARALLEL_PARTS")
    if parts:
        least, most = LIMIT_RANGES["parallel_parts"]
        if not parts.strip().isdigit() or not least <= int(parts) <= most:
            raise ConfigError(f"MX_PARALLEL_PARTS={parts!r} is not a whole number from "
                              f"{least:g} to {most:g}")
        limits = replace(limits, parallel_parts=int(parts))
    entry_name, entry = _registry_entry(url, config)
    root_file, root_sha256 = _root_pin(entry_name, entry)
    return Settings(
        require_signatures=_flag(entry, "require_signatures", entry_name),
        root_file=root_file, root_sha256=root_sha256,
        allow_unsigned_index=(bool(allow_unsigned_index)
                              or _flag(entry, "allow_unsigned_index", entry_name)
                              or _truthy(os.environ.get("MX_ALLOW_UNSIGNED_INDEX"))),
        limits=limits,
        home=home or default_home(),
        registry=url,
        offline=offline if offline is not None else _truthy(os.environ.get("MX_OFFLINE")),
        token=_token(os.environ.get("MX_TOKEN")),
        trust=dict(_table(config, "trust")),
    )
