"""Which DVC pointer tracks a file: the one rule `mx validate`, `mx sign` and the index
builder share.

A file at `PATH` that DVC tracks is, in this order:
1. `PATH.dvc`'s output (`dvc add PATH`);
2. a file of a tracked folder: `DIR.dvc` for a folder `DIR` holding `PATH`, the nearest
   first, within the model directory (`dvc add DIR`), read through the folder's listing;
3. a stage output in the nearest dvc.lock at or above `PATH`'s folder that lists it, or a
   file of a directory output there (mx.dvclock).

Where the bytes come from differs (a work tree, a tag's tree; a DVC cache, a remote), so
the callers pass readers: `read` for repository files, `listing` for a directory's listing
object (it raises DvcProblem when the object cannot be had here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from mx import dvcdir, dvcfiles
from mx.dvcfiles import DvcPointer
from mx.dvclock import Pipelines, Reader
from mx.errors import ConfigError

# (a directory pointer, where it was read) -> the listing object's bytes, unchecked;
# raises DvcProblem when the listing cannot be had (not in the cache, no remote).
ListingReader = Callable[[DvcPointer, str], bytes]


@dataclass(frozen=True)
class Tracked:
    """The pointer of one file's object and where it was read."""

    pointer: DvcPointer
    shown: str  # `model.onnx.dvc`, `models.dvc (sub/model.onnx)`, `dvc.lock stages.s.outs[0]`
    redo: str  # what records the file again: `dvc add PATH`, `dvc commit` (or `dvc repro`)


class Listings:
    """Directory listings read once each (by the listing's key) and parsed. `memo`, shared
    between readers (a build's tags), keeps them: a listing is named by its content."""

    def __init__(self, read: ListingReader,
                 memo: dict[str, dict[str, DvcPointer]] | None = None) -> None:
        self._read = read
        self._parsed = memo if memo is not None else {}

    def files(self, directory: DvcPointer, shown: str) -> dict[str, DvcPointer]:
        """{relpath: pointer} of the directory output `directory`."""
        # its files' pointers carry the folder's total (their cap) and remote
        key = f"{directory.key}:{directory.limit}:{directory.remote}"
        if key not in self._parsed:
            data = self._read(directory, shown)
            self._parsed[key] = dvcdir.parse_listing(data, directory, shown)
        return self._parsed[key]


def find(path: str, top: str, read: Reader, pipelines: Pipelines,
         listings: Listings, held: Callable[[str], bool] | None = None) -> Tracked | None:
    """The DVC pointer of the file at repository-relative `path` in the model directory
    `top` ("" for the root), or None when DVC does not track it. The caller has made sure
    git does not hold `path` itself where that matters; `held(folder)` says whether git
    holds files in a folder (None: it holds none that matter).

    Raises ConfigError naming a file and field that cannot be read, or a pointer that
    signing would not take as the file's (a `DIR.dvc` whose folder git holds files in, a
    folder output holding the model directory); DvcProblem when a listing cannot be had."""
    shown = dvcfiles.pointer_path(path)
    data = read(shown, dvcfiles.MAX_DVC_FILE)
    if data is not None:
        pointer = dvcfiles.parse_pointer(data, shown, PurePosixPath(path).name)
        if pointer.directory:
            raise ConfigError("tracks a folder, and mx.yaml lists it as a file", path=shown,
                              hint="list the files inside it as artifacts")
        return Tracked(pointer, shown, f"`dvc add {path}`")
    for folder in _folders_within(path, top):
        shown = dvcfiles.pointer_path(folder)
        data = read(shown, dvcfiles.MAX_DVC_FILE)
        if data is None:
            continue
        pointer = dvcfiles.parse_pointer(data, shown, PurePosixPath(folder).name)
        if not pointer.directory:
            continue  # tracks a file named like the folder: not this path's
        if held is not None and held(folder):
            # A signature covers the folder as git holds it and skips DIR.dvc
            # (mx.sign.dvcsigned): its listing cannot be where this file comes from.
            raise ConfigError(f"tracks a folder, and git also holds files in the folder "
                              f"{folder!r}", path=shown,
                              hint=f"`git rm -r --cached {folder}` to leave it to DVC, or "
                                   f"remove {shown} to leave it to git")
        return _member(path, folder, pointer, shown, f"`dvc add {folder}`", listings)
    out = pipelines.find(path)
    if out is None:
        return None
    redo = "`dvc commit` (or `dvc repro`)"
    if out.pointer is None:
        raise ConfigError(out.problem or "unusable", path=out.origin)
    if out.pointer.directory:
        if top and not out.path.startswith(top + "/"):
            # The model directory's own files (mx.yaml) are git's; a signature covers the
            # folder outputs inside it only (mx.sign.dvcsigned.pipeline_outputs).
            raise ConfigError(f"is the folder {out.path or '.'!r}, which holds the model "
                              f"directory {top!r}; mx reads folder outputs inside the model "
                              "directory", path=out.shown)
        if held is not None and held(out.path):
            raise ConfigError(f"is the folder {out.path!r}, and git also holds files in it",
                              path=out.shown, hint=f"`git rm -r --cached {out.path}`: DVC "
                                                   "makes the folder")
        return _member(path, out.path, out.pointer, out.shown, redo, listings)
    return Tracked(out.pointer, out.shown, redo)


def _folders_within(path: str, top: str) -> list[str]:
    """The folders holding `path` below `top`, nearest first."""
    out = []
    for parent in PurePosixPath(path).parents:
        rel = parent.as_posix()
        if rel == "." or (top and not rel.startswith(top + "/")):
            break
        out.append(rel)
    return out


def _member(path: str, folder: str, directory: DvcPointer, shown: str, redo: str,
            listings: Listings) -> Tracked:
    rel = path[len(folder) + 1:] if folder else path
    files = listings.files(directory, shown)
    pointer = dvcdir.member(files, rel, shown, directory, redo)
    return Tracked(pointer, f"{shown} ({rel})", redo)
