"""DVC as an artifact store: `.dvc` pointer files, DVC's config, cache and remote layout.

Read without the `dvc` package (which pulls some 50 others: celery, hydra, gitpython...):
the formats are small and documented.

- `model.onnx.dvc` beside the artifact (what `dvc add model.onnx` writes), YAML:
  `outs: [{md5: <32 hex>, size: N, hash: md5, path: model.onnx}]`. `hash: md5` marks DVC 3
  (a plain md5 of the bytes); without it the output is DVC 2's (`md5-dos2unix`: text files
  are hashed with CRLF read as LF).
- The cache (`.dvc/cache`) and a remote hold an object at `files/md5/<2>/<30>` (DVC 3)
  or `<2>/<30>` (DVC 2 outputs).
- `dvc add DIR` writes `DIR.dvc` whose output's md5 is `<32 hex>.dir`: the md5 of a JSON
  listing of the folder's files, stored as an object with that name (mx.dvcdir).
- `.dvc/config` (configobj's INI): `[core] remote = NAME` and `['remote "NAME"'] url = ...`;
  a relative local `url` is relative to the `.dvc/` folder.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from mx import yamlio
from mx.errors import ConfigError
from mx.fsutil import unsafe_relpath_reason
from mx.yamlbounds import YamlTooBig, bounded_composer

SUFFIX = ".dvc"
MAX_DVC_FILE = 64 << 10  # a one-output .dvc file is ~100 bytes; meta and desc fit easily
MAX_OBJECT_SIZE = 1 << 42  # 4 TiB: a larger `size` is a typo or an attack, not a model
MD5_RE = re.compile(r"[0-9a-f]{32}")  # fullmatch: `$` would take a final newline
CHUNK = 1 << 20


@dataclass(frozen=True)
class DvcPointer:
    md5: str
    size: int | None  # None: a file of a directory output, whose listing records no sizes
    legacy: bool  # DVC 2's md5-dos2unix, stored at <2>/<30>
    remote: str | None = None  # the output's own `remote:`, else the config's default
    directory: bool = False  # a directory output: `md5` names its listing (`<md5>.dir`)
    cap: int = MAX_OBJECT_SIZE  # the most bytes an object of unknown `size` may have

    @property
    def object_rel(self) -> str:
        """Where the object is under a cache or remote folder."""
        tail = f"{self.md5[:2]}/{self.md5[2:]}{'.dir' if self.directory else ''}"
        return tail if self.legacy else f"files/md5/{tail}"

    @property
    def key(self) -> str:
        """The object's name across DVC versions (a legacy md5 hashes other bytes)."""
        kind = "md5-dos2unix" if self.legacy else "md5"
        return f"{kind}:{self.md5}{'.dir' if self.directory else ''}"

    @property
    def limit(self) -> int:
        """The most bytes the object may have: its size, else the cap."""
        return self.size if self.size is not None else self.cap

    def matches(self, got: Digests) -> bool:
        """Whether hashed bytes are this object (its md5, and its size where known)."""
        return got.md5 == self.md5 and self.size in (None, got.size)

    def described(self) -> str:
        """`md5 X and N bytes` (or `md5 X` when the size is unknown), for messages."""
        return f"md5 {self.md5}" + (f" and {self.size} bytes" if self.size is not None else "")


def pointer_path(artifact_rel: str) -> str:
    """The `.dvc` file that tracks `artifact_rel` (`dvc add` writes it beside the file)."""
    return artifact_rel + SUFFIX


def parse_pointer(data: bytes, origin: str, name: str) -> DvcPointer:
    """The one output of the `.dvc` file `origin`, which must track `name` beside it (a file,
    or a folder: then the pointer is a `directory` one).

    Raises ConfigError with one line saying what is wrong."""
    if len(data) > MAX_DVC_FILE:
        raise ConfigError(f"over {MAX_DVC_FILE >> 10} KiB; a .dvc file is a small pointer",
                          path=origin)
    doc = load_yaml(yamlio.decode(data, origin, MAX_DVC_FILE), origin)
    outs = doc.get("outs") if isinstance(doc, dict) else None
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict):
        raise ConfigError("not a DVC pointer: needs `outs:` with exactly one output "
                          "(`dvc add` each artifact)", path=origin)
    out: dict[str, Any] = outs[0]
    path = out.get("path")
    if not isinstance(path, str):
        raise ConfigError("outs[0].path is missing", path=origin)
    why = unsafe_relpath_reason(path)
    if why is not None:
        raise ConfigError(f"outs[0].path {path!r} {why}", path=origin)
    if path != name:
        raise ConfigError(f"outs[0].path is {path!r}, not the artifact {name!r} beside it",
                          path=origin)
    return parse_digest(out, "outs[0]", origin)


def parse_digest(out: dict[str, Any], field: str, origin: str) -> DvcPointer:
    """The object an output names (`md5`, `size`, `hash`, `remote`), from a `.dvc` file or
    dvc.lock: `field` (`outs[0]`, `stages.NAME.outs[2]`) and `origin` name it in errors. A
    directory output (`md5: <hex>.dir`) gives a `directory` pointer to its listing, and
    `size` is the total of its files."""
    md5 = out.get("md5")
    directory = isinstance(md5, str) and md5.endswith(".dir")
    if isinstance(md5, str) and directory:
        md5 = md5.removesuffix(".dir")
    if not isinstance(md5, str) or not MD5_RE.fullmatch(md5):
        raise ConfigError(f"{field}.md5 {md5!r} is not 32 lower-case hex digits", path=origin)
    raw = out.get("size")
    size = int(raw) if isinstance(raw, str) and raw.isascii() and raw.isdigit() else -1
    if not 0 <= size <= MAX_OBJECT_SIZE:
        raise ConfigError(f"{field}.size {raw!r} is not a byte count from 0 to "
                          f"{MAX_OBJECT_SIZE} (4 TiB)", path=origin)
    algo = out.get("hash")
    if algo not in (None, "md5"):
        raise ConfigError(f"{field}.hash {algo!r}: mx reads md5 outputs (DVC 2 and 3)",
                          path=origin)
    remote = out.get("remote")
    if remote is not None and not isinstance(remote, str):
        raise ConfigError(f"{field}.remote is not a remote's name", path=origin)
    return DvcPointer(md5, size, legacy=algo is None, remote=remote, directory=directory)


def load_yaml(text: str, origin: str) -> Any:
    """The YAML document with every scalar a string, as written: an md5 of decimal digits
    (`00123...`) read as YAML 1.2 would be an integer that lost its leading zeros."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    y = YAML(typ="base", pure=True)
    y.Composer = bounded_composer()
    try:
        return y.load(text)
    except YamlTooBig as exc:
        raise ConfigError(str(exc), hint=exc.hint, path=origin) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(f"invalid YAML: {exc.problem or exc.context or 'malformed'}",
                          path=origin, line=mark.line + 1 if mark is not None else None) from None
    except YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=origin) from None


# -- hashing ------------------------------------------------------------------

_TEXT_CHARS = bytes(range(32, 127)) + b"\n\r\t\f\b"


def _is_text(block: bytes) -> bool:
    """DVC 2's test (dvc_data istextfile): the first 512 bytes hold no NUL and at most 30%
    bytes outside printable ASCII and common controls."""
    if not block:
        return True
    if b"\x00" in block:
        return False
    return len(block.translate(None, _TEXT_CHARS)) / len(block) <= 0.30


@dataclass(frozen=True)
class Digests:
    md5: str  # as DVC names the object (dos2unix for a legacy text file)
    sha256: str
    size: int


class ObjectHasher:
    """md5 (as DVC computes it for `legacy` or not), sha256 and size of bytes fed in order."""

    def __init__(self, legacy: bool) -> None:
        self.legacy = legacy
        self.reset()

    def reset(self) -> None:
        """Start over (a server that ignored a Range request sends everything again)."""
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha = hashlib.sha256()
        self.size = 0
        self._text: bool | None = None if self.legacy else False
        self._head = b""
        self._held: list[bytes] = []  # chunks seen before the first 512 bytes decide
        self._cr = False  # a text chunk ended in CR: is the next byte LF?

    def write(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self.size += len(chunk)
        if self._text is None:
            self._head += chunk[: 512 - len(self._head)]
            self._held.append(chunk)
            if len(self._head) < 512:
                return
            self._decide()
            return
        self._feed(chunk)

    def _decide(self) -> None:
        self._text = _is_text(self._head)
        held, self._held = self._held, []
        for c in held:
            self._feed(c)

    def _feed(self, chunk: bytes) -> None:
        if not self._text:
            self._md5.update(chunk)
            return
        if self._cr:
            chunk = b"\r" + chunk
            self._cr = False
        if chunk.endswith(b"\r"):
            chunk, self._cr = chunk[:-1], True
        self._md5.update(chunk.replace(b"\r\n", b"\n"))

    def result(self) -> Digests:
        if self._text is None:
            self._decide()
        if self._cr:
            self._md5.update(b"\r")
            self._cr = False
        return Digests(self._md5.hexdigest(), self._sha.hexdigest(), self.size)


def hash_stream(f: BinaryIO, legacy: bool) -> Digests:
    h = ObjectHasher(legacy)
    for chunk in iter(lambda: f.read(CHUNK), b""):
        h.write(chunk)
    return h.result()


def hash_file(path: Path, legacy: bool) -> Digests:
    with path.open("rb") as f:
        return hash_stream(f, legacy)


# -- repository: root, config, cache --------------------------------------------


def find_root(start: Path) -> Path | None:
    """The DVC repository (the folder holding `.dvc/`) at or above `start`, not above git's
    work tree."""
    for d in (start, *start.parents):
        if (d / ".dvc").is_dir():
            return d
        if (d / ".git").exists():
            return None
    return None


def cached_object(root: Path, pointer: DvcPointer) -> Path | None:
    """The object in the repository's default cache (`.dvc/cache`), if it is there."""
    path = root / ".dvc" / "cache" / pointer.object_rel
    return path if path.is_file() else None


def parse_config(text: str) -> tuple[str | None, dict[str, str]]:
    """(`core.remote`, {remote name: url}) from the text of a `.dvc/config`."""
    section = ""
    default: str | None = None
    remotes: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]").strip()
            if len(section) > 1 and section[0] == section[-1] == "'":
                section = section[1:-1].strip()  # configobj quotes `remote "name"`
            continue
        if "=" not in line:
            continue
        key, value = (p.strip() for p in line.split("=", 1))
        value = value.strip("'\"")
        m = re.fullmatch(r'remote\s+"(.+)"', section)
        if section == "core" and key == "remote":
            default = value
        elif m and key == "url":
            remotes[m[1]] = value
    return default, remotes


def remote_url(config_text: str, name: str | None) -> str | None:
    """The url of remote `name` (the default remote when None), as written."""
    default, remotes = parse_config(config_text)
    return remotes.get(name or default or "")


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_remote_dir(url: str, config_dir: PurePosixPath | Path) -> Path:
    """A local remote's folder: a relative url is relative to the `.dvc/` folder."""
    import urllib.parse

    if url.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    return Path(config_dir) / url


def object_url(url: str, pointer: DvcPointer) -> str:
    """An http(s) or s3 remote's URL for the object."""
    return f"{url.rstrip('/')}/{pointer.object_rel}"
