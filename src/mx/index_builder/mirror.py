"""Make sure every LFS object an index names exists, and copy it under artifacts/ when mirroring.

DVC objects too: their sha256 was computed when they were collected (mx.index_builder.dvc);
one with no URL a client can fetch (on this machine only) is mirrored even when the
registry does not mirror."""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mx.client.partfile import PartWriter, fetch_resumable
from mx.errors import BuildError
from mx.fsutil import atomic_write_bytes, write_if_changed
from mx.http import Transport
from mx.index_builder.collect import ArtifactRef, Release
from mx.lfs import Pointer, local_object, object_in_local_repo


@dataclass
class Origin:
    """Where one object's bytes can be read: a local file or an href from a batch answer."""

    local: Path | None = None
    href: str | None = None
    header: dict[str, str] | None = None


def mirrored_path(out: Path, sha256: str) -> Path:
    return out / "artifacts" / "sha256" / sha256


class ObjectLocator:
    def __init__(self, transport: Transport, state_file: Path) -> None:
        self.transport = transport
        self.state_file = state_file
        try:
            self.verified: dict[str, set[str]] = {
                k: set(v) for k, v in json.loads(state_file.read_text()).items()}
        except (FileNotFoundError, ValueError):
            self.verified = {}
        self.forced: dict[str, Origin] = {}  # mirrored whatever the registry says

    def save(self) -> None:
        data = {k: sorted(v) for k, v in sorted(self.verified.items())}
        atomic_write_bytes(self.state_file, json.dumps(data).encode())

    def locate(self, releases: list[Release], out: Path, mirror: bool) -> dict[str, Origin]:
        """Origin for each object that must be copied; raise BuildError naming a missing one."""
        need: dict[str, Origin] = {}
        remote: dict[str, list[tuple[Release, ArtifactRef]]] = {}
        for rel in releases:
            for art in rel.artifacts:
                if art.blob is not None or art.sha256 in need:
                    continue
                target = mirrored_path(out, art.sha256)
                if art.dvc is not None and not art.mirrored(mirror):
                    continue  # published at its remote URL; the bytes were read once already
                if art.mirrored(mirror) and target.is_file() and target.stat().st_size == art.size:
                    continue  # already published: read nothing again
                if art.dvc is not None:
                    need[art.sha256] = self._dvc_origin(rel, art)
                    if not mirror:
                        self.forced[art.sha256] = need[art.sha256]
                    continue
                local = next((p for gd in rel.source.git_dirs
                              if (p := local_object(gd, art.sha256)).is_file()), None)
                if local is None and art.lfs_endpoint and art.lfs_endpoint.startswith("file:"):
                    local = object_in_local_repo(art.lfs_endpoint, art.sha256)
                if local is not None:
                    need[art.sha256] = Origin(local=local)
                elif art.lfs_endpoint and art.lfs_endpoint.startswith("file:"):
                    raise BuildError(f"{rel.where}, {art.path}: LFS object {art.sha256} is "
                                     f"missing from {art.lfs_endpoint}",
                                     hint="run `git lfs push --all` to the source, or "
                                          "`git lfs fetch --all` in it")
                elif art.lfs_endpoint is None:
                    raise BuildError(f"{rel.where}, {art.path}: LFS object {art.sha256} is "
                                     "missing: no local copy and no LFS server is known",
                                     hint="set lfs.url in .lfsconfig, or `lfs:` on the source")
                elif mirror or art.sha256 not in self.verified.get(art.lfs_endpoint, set()):
                    remote.setdefault(art.lfs_endpoint, []).append((rel, art))
        for endpoint, wanted in sorted(remote.items()):
            pointers = {a.sha256: Pointer(a.sha256, a.size) for _, a in wanted}
            answer = self.transport.lfs_batch(endpoint, list(pointers.values()))
            for rel, art in wanted:
                got = answer.get(art.sha256)
                if not got or "error" in got or not got.get("href"):
                    why = (got or {}).get("error", {}).get("message", "not in the batch answer")
                    raise BuildError(f"{rel.where}, {art.path}: LFS object {art.sha256} is "
                                     f"missing on {endpoint} ({why})",
                                     hint="push it with `git lfs push --all` from the model repo")
                self.verified.setdefault(endpoint, set()).add(art.sha256)
                need[art.sha256] = Origin(href=got["href"], header=got.get("header"))
        return need

    @staticmethod
    def _dvc_origin(rel: Release, art: ArtifactRef) -> Origin:
        assert art.dvc is not None
        if art.dvc.local is not None and art.dvc.local.is_file():
            return Origin(local=art.dvc.local)
        if art.dvc.url is not None:
            return Origin(href=art.dvc.url)
        raise BuildError(f"{rel.where}, {art.path}: DVC object {art.dvc.key} is no longer in "
                         "the source's DVC cache or local remote",
                         hint="`dvc push` it, or `dvc fetch` in the source")

    def mirror(self, releases: list[Release], need: dict[str, Origin], out: Path,
               tmp: Path) -> int:
        """Copy objects into artifacts/sha256/, verifying each; returns how many were written.

        Temp files go to `tmp` (outside `out`, on its filesystem): a killed build leaves
        nothing half-written in what is published."""
        sizes = {a.sha256: a.size for r in releases for a in r.artifacts}
        need = {**self.forced, **need}
        written = 0
        for rel in releases:
            for art in rel.artifacts:
                if art.blob is not None and write_if_changed(mirrored_path(out, art.sha256),
                                                             art.blob, tmp_dir=tmp):
                    written += 1

        def one(oid: str) -> None:
            origin = need[oid]

            def fill(w: PartWriter) -> None:
                if origin.local is not None:
                    with origin.local.open("rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            w.write(chunk)
                else:
                    assert origin.href is not None
                    # the part file is a FileSink: an HTTP body lands in it directly
                    self.transport.download(origin.href, w, sizes[oid], headers=origin.header)

            # A part of this process's own: builds sharing `tmp` never write one file.
            tmp.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=tmp, prefix=f"{oid[:16]}.{os.getpid()}.",
                                        suffix=".part")
            os.close(fd)
            try:
                fetch_resumable(mirrored_path(out, oid), oid, sizes[oid], Path(name), fill,
                                f"LFS object {oid}")
            except BaseException:
                Path(name).unlink(missing_ok=True)  # nothing half-written is left
                raise

        with ThreadPoolExecutor(max_workers=self.transport.limits.parallel_downloads) as pool:
            for _ in pool.map(one, sorted(need)):
                written += 1
        return written
