"""The benchmark results file (`benchmarks:` in mx.yaml): one JSON document, keyed by
hardware, so CPU and GPU runners add to the same file without overwriting each other."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from mx.errors import ConfigError
from mx.fsutil import atomic_write_bytes

FORMAT = 1


def empty(model: str) -> dict[str, Any]:
    return {"mx_bench": FORMAT, "model": model, "hardware": {}}


def load(path: Path, model: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return empty(model)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a benchmark results file ({exc})",
                          hint="move it aside; mx bench writes a new one") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("hardware"), dict):
        raise ConfigError(f"{path}: not a benchmark results file (no hardware map)")
    if int(doc.get("mx_bench", 0)) > FORMAT:
        raise ConfigError(f"{path}: mx_bench {doc['mx_bench']} is newer than this mx reads")
    return doc


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("artifact", "batch", "threads", "shape")
    return all(a.get(k) == b.get(k) for k in keys)


def merge(doc: dict[str, Any], key: str, hardware: dict[str, Any],
          result: dict[str, Any]) -> None:
    entry = doc["hardware"].setdefault(key, {**hardware, "results": []})
    entry.update(hardware)
    entry["results"] = [r for r in entry["results"] if not _same(r, result)] + [result]
    entry["results"].sort(key=lambda r: (r["artifact"], r["batch"], r["threads"],
                                         json.dumps(r.get("shape", {}), sort_keys=True)))


def save(path: Path, doc: dict[str, Any]) -> None:
    doc["hardware"] = dict(sorted(doc["hardware"].items()))
    atomic_write_bytes(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())


def schema() -> dict[str, Any]:
    text = resources.files("mx").joinpath("schemas/bench-results.schema.json") \
        .read_text(encoding="utf-8")
    return dict(json.loads(text))
