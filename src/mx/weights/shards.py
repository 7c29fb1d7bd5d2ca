"""Sharded safetensors: `*.safetensors.index.json` against the shards it names.

The index (`{"metadata": {...}, "weight_map": {tensor: shard file}}`, as transformers writes
it) must name shards inside the model directory that exist; every tensor it maps must be in
that shard, and every tensor of every shard must be in the map, pointing at that shard. A
shard that is still a Git LFS pointer is skipped (`skipped` lists it).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from mx import lfs
from mx.errors import ConfigError
from mx.fsutil import resolve_inside, unsafe_relpath_reason
from mx.weights import WeightsInfo, safetensors

MAX_INDEX = 64 << 20
MAX_SHARDS = 10_000
HINT = "write the index again with the shards (transformers' save_pretrained does)"


def _fail(path: Path, msg: str) -> ConfigError:
    return ConfigError(msg, hint=HINT, path=str(path))


def load_index(path: Path) -> dict[str, str]:
    """The weight map of an index file (tensor -> shard path), bounded and typed."""
    size = path.stat().st_size
    if size > MAX_INDEX:
        raise _fail(path, f"{size} bytes, over the limit of {MAX_INDEX} for an index")
    raw = path.read_bytes()[:MAX_INDEX]
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _fail(path, f"offset {exc.start}: not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise _fail(path, f"offset {exc.pos}: not valid JSON ({exc.msg})") from None
    wmap = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(wmap, dict) or not wmap:
        raise _fail(path, "weight_map: missing, or not an object of tensor names to shards")
    bad = next((k for k, v in wmap.items() if not isinstance(v, str)), None)
    if bad is not None:
        raise _fail(path, f"weight_map.{bad}: {wmap[bad]!r} is not a shard file name")
    return dict(wmap)


def read_index(model_dir: Path, rel: str) -> WeightsInfo:
    """Check the index `model_dir/rel` and its shards; the info sums the shards."""
    path = model_dir / rel
    wmap = load_index(path)
    base = PurePosixPath(rel).parent
    by_shard: dict[str, list[str]] = {}
    for tensor, shard in wmap.items():
        by_shard.setdefault(shard, []).append(tensor)
    if len(by_shard) > MAX_SHARDS:
        raise _fail(path, f"weight_map names {len(by_shard)} shards, over the limit of "
                          f"{MAX_SHARDS}")
    info = WeightsInfo("safetensors", shards=sorted(by_shard))
    for shard in sorted(by_shard):
        target = _shard_path(path, model_dir, base, shard, by_shard[shard][0])
        if lfs.looks_like_pointer(target):
            info.metadata[f"skipped:{shard}"] = "Git LFS pointer"
            continue
        st = safetensors.read(target)
        mapped = set(by_shard[shard])
        missing = sorted(mapped - set(st.names))
        if missing:
            raise _fail(path, f"weight_map.{missing[0]}: not a tensor of {shard} "
                              f"({len(missing)} mapped tensors are missing from it)")
        unmapped = sorted(set(st.names) - mapped)
        if unmapped:
            where = wmap.get(unmapped[0])
            said = f"maps it to {where}" if where else "does not name it"
            raise _fail(path, f"tensor {unmapped[0]!r} of {shard}: the weight_map {said}")
        for dtype, count in st.dtypes.items():
            info.dtypes[dtype] = info.dtypes.get(dtype, 0) + count
        info.tensors += st.tensors
        info.parameters += st.parameters
    return info


def _shard_path(path: Path, model_dir: Path, base: PurePosixPath, shard: str,
                tensor: str) -> Path:
    reason = unsafe_relpath_reason(shard)
    if reason:
        raise _fail(path, f"weight_map.{tensor}: shard {shard!r} {reason}; shards are "
                          "files beside the index")
    rel = (base / shard).as_posix()
    target = resolve_inside(model_dir, rel)
    if target is None:
        raise _fail(path, f"weight_map.{tensor}: shard {shard!r} resolves outside the model "
                          "directory (a link)")
    if not target.is_file():
        raise _fail(path, f"weight_map.{tensor}: shard {shard!r} does not exist beside the "
                          "index")
    return target
