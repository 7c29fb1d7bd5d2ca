"""Git LFS: pointer files, the local object store, the batch API endpoint.

Network calls go through `mx.http`; this module only knows the formats.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

POINTER_MAX = 1024
_POINTER_RE = re.compile(
    rb"^version https://git-lfs\.github\.com/spec/v1\n"
    rb"(?:[a-z0-9.-]+ .*\n)*?"
    rb"oid sha256:(?P<oid>[0-9a-f]{64})\n"
    rb"size (?P<size>\d+)\n"
)
LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"

# The patterns `mx init` writes to .gitattributes (docs/formats.md, mx.yaml), plus `*.keras` and the
# tar that `mx convert --to savedmodel` writes.
DEFAULT_PATTERNS = (
    "*.onnx", "*.ort", "*.pt", "*.safetensors", "*.tflite", "*.pb", "*.bin", "*.h5", "*.npz",
    "*.keras", "*.savedmodel.tar", "variables/**",
)


@dataclass(frozen=True)
class Pointer:
    oid: str
    size: int


def parse_pointer(data: bytes) -> Pointer | None:
    """The pointer in `data`, or None when `data` is not an LFS pointer file."""
    if len(data) > POINTER_MAX or not data.startswith(b"version https://git-lfs"):
        return None
    m = _POINTER_RE.match(data)
    if not m:
        return None
    return Pointer(m["oid"].decode(), int(m["size"]))


def looks_like_pointer(path: Path) -> bool:
    try:
        if path.stat().st_size > POINTER_MAX:
            return False
        return parse_pointer(path.read_bytes()) is not None
    except OSError:
        return False


def local_object(git_dir: Path, oid: str) -> Path:
    """Where git-lfs keeps an object under a repository's git directory."""
    return git_dir / "lfs" / "objects" / oid[:2] / oid[2:4] / oid


def object_in_local_repo(url: str, oid: str) -> Path | None:
    """The object in the LFS store of the repository a `file://` URL names (bare, or a
    work tree with its `.git`), or None."""
    import urllib.parse

    root = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    for git_dir in (root, root / ".git"):
        path = local_object(git_dir, oid)
        if path.is_file():
            return path
    return None


def endpoint_for_remote(url: str) -> str:
    """The LFS endpoint git-lfs derives from a remote URL (or the URL itself if it is one)."""
    url = url.rstrip("/")
    if url.endswith("/info/lfs"):
        return url
    if url.endswith(".git"):
        return url + "/info/lfs"
    return url + ".git/info/lfs"


def lfs_url_from_config(text: str) -> str | None:
    """`lfs.url` from the text of a `.lfsconfig` file (git config syntax)."""
    section = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]").strip().lower()
            continue
        if "=" in line:
            key, value = (p.strip() for p in line.split("=", 1))
            if (section, key.lower()) == ("lfs", "url"):
                return value.strip('"')
    return None


def gitattributes_lfs_patterns(text: str) -> list[str]:
    """Patterns that a .gitattributes file routes through the LFS filter."""
    out = []
    for raw in text.splitlines():
        parts = raw.split()
        if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            out.append(parts[0])
    return out


def matches_any(path: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """gitattributes-style matching, close enough for LFS routing checks."""
    p = PurePosixPath(path)
    for pat in patterns:
        if "/" not in pat.rstrip("/"):
            if fnmatch.fnmatchcase(p.name, pat):
                return True
        elif pat.endswith("/**"):
            prefix = pat[:-3].lstrip("/")
            if path.startswith(prefix + "/") or f"/{prefix}/" in f"/{path}":
                return True
        elif fnmatch.fnmatchcase(path, pat.lstrip("/")):
            return True
    return False


def batch_request(objects: list[Pointer], operation: str = "download") -> dict[str, object]:
    return {
        "operation": operation,
        "transfers": ["basic"],
        "objects": [{"oid": o.oid, "size": o.size} for o in objects],
        "hash_algo": "sha256",
    }
