"""Weight files read from their headers: safetensors (single and sharded) and GGUF.

Pure and bounded: only header bytes are read, each read is bounded by the file's size and
by limits on lengths and counts, and nothing is unpickled or mapped. A malformed header
raises `ConfigError` whose path is the file and whose detail starts with the byte offset
(`offset N: ...`), so `mx validate` and `mx check` report it as one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx.names import MANIFEST_FILE

INDEX_SUFFIX = ".safetensors.index.json"


@dataclass
class WeightsInfo:
    """What a weight file's header says: its tensors' parameter count and types."""

    format: str  # safetensors | gguf
    tensors: int = 0
    parameters: int = 0
    dtypes: dict[str, int] = field(default_factory=dict)  # dtype -> parameters of that type
    metadata: dict[str, str] = field(default_factory=dict)  # __metadata__ / GGUF scalars
    shards: list[str] = field(default_factory=list)  # for an index: the shards it names
    names: dict[str, str] = field(default_factory=dict)  # tensor -> dtype (safetensors)

    def add(self, name: str, dtype: str, count: int) -> None:
        self.tensors += 1
        self.parameters += count
        self.dtypes[dtype] = self.dtypes.get(dtype, 0) + count

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.format, "tensors": self.tensors,
                               "parameters": self.parameters, "dtypes": dict(self.dtypes)}
        if self.shards:
            out["shards"] = list(self.shards)
        return out


def kind_of(rel: str) -> str | None:
    """`safetensors`, `gguf` or `index` for a file these parsers read, else None."""
    low = rel.lower()
    if low.endswith(INDEX_SUFFIX):
        return "index"
    if low.endswith(".safetensors"):
        return "safetensors"
    if low.endswith(".gguf"):
        return "gguf"
    return None


def describe(model_dir: Path, rel: str, kind: str | None = None) -> WeightsInfo:
    """The header of `model_dir/rel`, checked; an index is checked against its shards.
    `kind` (safetensors, gguf, index) overrides what the file name says.

    Raises ConfigError naming the file and offset for a malformed header."""
    # the parsers import WeightsInfo from this package: imported here, once it exists
    from mx.weights import gguf, safetensors, shards

    kind = kind or kind_of(rel)
    path = model_dir / rel
    if kind == "safetensors":
        return safetensors.read(path)
    if kind == "gguf":
        return gguf.read(path)
    if kind == "index":
        return shards.read_index(model_dir, rel)
    raise ValueError(f"{rel}: not a weight file mx reads")


def find_in(model_dir: Path, limit: int = 10_000) -> list[str]:
    """Weight files (by name) under `model_dir`, relative and sorted; hidden folders, links
    and folders of other models (with their own mx.yaml) are not followed, and at most
    `limit` entries are looked at."""
    import os

    found: list[str] = []
    seen = 0
    for root, dirs, files in os.walk(model_dir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not (Path(root) / d / MANIFEST_FILE).exists())
        for name in sorted(files):
            seen += 1
            if seen > limit:
                return found
            path = Path(root) / name
            if kind_of(name) and not path.is_symlink():
                found.append(path.relative_to(model_dir).as_posix())
    return found
