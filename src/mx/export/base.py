"""What every exporter shares: the model it exports, its options, staging and the result.

An export is written into a staging directory beside its destination and renamed into
place only when complete, so a failed export leaves the destination as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mx.errors import ConfigError
from mx.fsutil import sha256_file
from mx.names import DEFAULT_VARIANT


@dataclass
class ExportOptions:
    model_name: str | None = None  # the name engines serve it under (default: name part)
    max_batch_size: int = 32
    max_queue_delay_us: int = 2000
    gpu: bool = False
    instances: int = 1
    storage_uri: str | None = None  # kserve: where the model repository will be uploaded
    int8: bool = True  # edge: include the int8 variant
    force: bool = False  # replace an existing export
    image: str | None = None  # docker: the image tag KServe runs [default: from the name]
    fetch_at_start: bool = False  # docker: install by mx.lock when the container starts


@dataclass
class ModelSource:
    """One release (or a local model directory) and a way to get its artifacts."""

    name: str
    version: str
    variant: str
    manifest: dict[str, Any]
    onnx: Path
    fetch: Callable[[str, str], Path]  # (format, variant) -> local file
    files: dict[str, Path] = field(default_factory=dict)  # the installed folder: path -> file
    lock: dict[str, Any] | None = None  # its mx.lock entry; None for a local model directory

    @property
    def framework(self) -> str | None:
        return (self.manifest.get("source") or {}).get("framework")

    def has(self, fmt: str, variant: str) -> bool:
        return any(a.get("format") == fmt and a.get("variant", DEFAULT_VARIANT) == variant
                   for a in self.manifest.get("artifacts", []))

    def variants(self, fmt: str) -> list[str]:
        return sorted({a.get("variant", DEFAULT_VARIANT) for a in self.manifest.get("artifacts", [])
                       if a.get("format") == fmt})


@dataclass
class ExportResult:
    target: str
    model: str
    version: str
    path: Path
    files: list[Path] = field(default_factory=list)  # relative to path
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "model": self.model, "version": self.version,
                "path": str(self.path), "files": [str(f) for f in self.files],
                "notes": self.notes}


class Exporter(Protocol):
    name: str

    def destination(self, source: ModelSource, out: Path, opts: ExportOptions) -> Path:
        """The directory this export owns (and replaces as a whole)."""
        ...

    def write(self, source: ModelSource, stage: Path, opts: ExportOptions) -> list[str]:
        """Fill `stage`; return notes for the user."""
        ...


def run_export(exporter: Exporter, source: ModelSource, out: Path,
               opts: ExportOptions) -> ExportResult:
    dest = exporter.destination(source, out, opts)
    if dest.exists() and any(dest.iterdir()) and not opts.force:
        raise ConfigError(f"{dest} already exists", hint="pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.mx-export-"))
    try:
        notes = exporter.write(source, stage, opts)
        old = dest.parent / f".{dest.name}.mx-old"
        if dest.exists():
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
        stage.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    files = sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file())
    return ExportResult(exporter.name, source.name, source.version, dest, files, notes)


def copy_model(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def digest(path: Path) -> dict[str, Any]:
    sha, size = sha256_file(path)
    return {"sha256": sha, "size": size}
