"""The content-addressed cache under $MX_HOME (DESIGN section 5).

blobs/sha256/<hex> are immutable and read-only; models/<registry>/<ns>/<name>/<version>/
<variant>/<path> are links to them, and a `<variant>.record.json` beside each variant
folder says what it holds. A variant folder appears by one rename, so it is complete or absent.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mx.errors import MxError
from mx.fsutil import atomic_write_bytes, sha256_file

CACHEDIR_TAG = (b"Signature: 8a477f597d28d172789f06886806bc55\n"
                b"# This file is a cache directory tag created by mx.\n"
                b"# For information about cache directory tags see https://bford.info/cachedir/\n")


@dataclass
class Cache:
    home: Path

    @property
    def blobs(self) -> Path:
        return self.home / "blobs" / "sha256"

    @property
    def tmp(self) -> Path:
        return self.home / "tmp"

    @property
    def locks(self) -> Path:
        return self.home / "locks"

    def ensure(self) -> None:
        for d in (self.blobs, self.tmp, self.locks):
            d.mkdir(parents=True, exist_ok=True)
        tag = self.home / "CACHEDIR.TAG"
        if not tag.exists():
            atomic_write_bytes(tag, CACHEDIR_TAG)

    def blob(self, sha256: str) -> Path:
        return self.blobs / sha256

    def has_blob(self, sha256: str, size: int) -> bool:
        try:
            return self.blob(sha256).stat().st_size == size
        except FileNotFoundError:
            return False

    def variant_dir(self, registry: str, name: str, version: str, variant: str) -> Path:
        return self.home / "models" / registry / name / version / variant

    def record_path(self, variant_dir: Path) -> Path:
        return variant_dir.with_name(variant_dir.name + ".record.json")

    def read_record(self, variant_dir: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(self.record_path(variant_dir).read_bytes())
            return data if isinstance(data, dict) else None
        except (FileNotFoundError, ValueError):
            return None

    def installed_files(self, variant_dir: Path, artifacts: list[dict[str, Any]]) -> bool:
        """True when every artifact is linked in the variant folder with the right size and
        the folder's record says it holds exactly that sha256 at that path.

        The digest matters: the folder is named by registry, model, version and variant,
        and another install (an `mx.lock` from anywhere) may have filled it with other
        bytes of the same size; those must be replaced, not handed out as this release."""
        record = self.read_record(variant_dir)
        files = record.get("files") if record is not None else None
        if not isinstance(files, dict):
            return False
        try:
            return all(files.get(a["path"]) == a["sha256"]
                       and (variant_dir / a["path"]).stat().st_size == a["size"]
                       for a in artifacts)
        except OSError:
            return False

    def link_snapshot(self, variant_dir: Path, files: dict[str, str],
                      record: dict[str, Any]) -> None:
        """Make `variant_dir` hold `files` (path -> sha256) by building it aside, then renaming."""
        old = self.read_record(variant_dir) if variant_dir.exists() else None
        wanted = dict(old.get("files", {})) if old else {}
        wanted.update(files)
        # Staged beside its final place, so relative symlinks stay right after the rename.
        variant_dir.parent.mkdir(parents=True, exist_ok=True)
        stage = variant_dir.with_name(f".{variant_dir.name}.stage-{uuid.uuid4().hex[:8]}")
        try:
            for rel, sha in sorted(wanted.items()):
                link_file(self.blob(sha), stage / rel)
            record = {**record, "files": dict(sorted(wanted.items()))}
            atomic_write_bytes(self.record_path(variant_dir),
                               json.dumps(record, sort_keys=True, indent=1).encode())
            if variant_dir.exists():
                retired = self.tmp / f"retired-{uuid.uuid4().hex[:8]}"
                os.replace(variant_dir, retired)
                shutil.rmtree(retired, ignore_errors=True)
            os.replace(stage, variant_dir)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    # -- cache commands ---------------------------------------------------------

    def installed(self) -> list[dict[str, Any]]:
        out = []
        root = self.home / "models"
        for rec_path in sorted(root.glob("*/*/*/*/*.record.json")):
            variant_dir = rec_path.with_name(rec_path.name.removesuffix(".record.json"))
            rec = self.read_record(variant_dir)
            if rec is None or not variant_dir.is_dir():
                continue
            size = sum(self.blob(s).stat().st_size for s in rec.get("files", {}).values()
                       if self.blob(s).exists())
            sig = rec.get("signature") or {}
            out.append({"registry": rec.get("registry"), "name": rec.get("name"),
                        "version": rec.get("version"), "variant": rec.get("variant"),
                        "path": str(variant_dir), "size": size,
                        "files": rec.get("files", {}), "signature": sig.get("sha256")})
        return out

    def verify(self, repair: bool = False) -> list[str]:
        """Re-hash every blob; list (and with `repair`, remove) the bad ones."""
        bad: list[str] = []
        if not self.blobs.exists():
            return bad
        for blob in sorted(self.blobs.iterdir()):
            digest, _ = sha256_file(blob)
            if digest != blob.name:
                bad.append(blob.name)
        if repair and bad:
            for rec in self.installed():
                if set(rec["files"].values()) & set(bad):
                    variant_dir = Path(rec["path"])
                    shutil.rmtree(variant_dir, ignore_errors=True)
                    self.record_path(variant_dir).unlink(missing_ok=True)
            for name in bad:
                self.blob(name).unlink(missing_ok=True)
        return bad

    def prune(self) -> tuple[int, int]:
        """Remove blobs no installed model uses, and stale temp files: (files, bytes)."""
        installed = self.installed()
        used = {s for rec in installed for s in rec["files"].values()}
        used |= {rec["signature"] for rec in installed if rec["signature"]}
        count = freed = 0
        if self.blobs.exists():
            for blob in self.blobs.iterdir():
                if blob.name not in used:
                    freed += blob.stat().st_size
                    blob.unlink()
                    count += 1
        if self.tmp.exists():
            cutoff = time.time() - 3600  # a download in flight writes at least hourly
            for entry in self.tmp.iterdir():
                if entry.stat().st_mtime < cutoff:
                    freed += entry.stat().st_size if entry.is_file() else 0
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                    count += 1
        return count, freed

    def clean(self) -> None:
        if not self.home.exists():
            return
        if not (self.home / "CACHEDIR.TAG").exists() and any(self.home.iterdir()):
            raise MxError(f"{self.home}: has no CACHEDIR.TAG, so it is not an mx cache; "
                          "nothing was removed", hint="check MX_HOME")
        for entry in self.home.iterdir():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def link_file(src: Path, dest: Path) -> None:
    """Hard link, else relative symlink, else copy (DESIGN section 5)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}")
    try:
        os.link(src, tmp)
    except OSError:
        try:
            os.symlink(os.path.relpath(src, dest.parent), tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
