"""DVC pipeline outputs: what `dvc repro` records in `dvc.lock`.

A stage's outputs have no `.dvc` files: dvc.lock, beside the dvc.yaml that defines the
stages, lists each with its md5 and size. DVC 2 and 3 write the same layout (DVC 3 adds
`hash: md5` to outputs it hashed itself; without it an output is DVC 2's md5-dos2unix):

    schema: '2.0'
    stages:
      convert:                 # `name@key` for a stage of a foreach or matrix
        cmd: ...
        deps: [...]            # not read
        outs:
        - path: model.onnx     # relative to the stage's working directory
          hash: md5
          md5: <32 hex>
          size: 1234

A stage's working directory is dvc.yaml's folder, or its `wdir:` below that folder. dvc.lock
does not record `wdir` (checked with DVC 3.67: a stage with `wdir: w` writes `path: o.txt`
for w/o.txt), nor an output's own `remote:` (`outs: [{model.onnx: {remote: store}}]`), so
dvc.yaml is read for them.

Both files come from repositories mx does not trust (any source's tag): they are capped in
size and count, and a path with `..`, an absolute path or a URL (an external output) refuses
the whole file, since no path may be built from it. An output mx cannot read (a malformed
md5) is refused only when an artifact is that output or lies in it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mx import dvcfiles, yamlio
from mx.dvcfiles import DvcPointer
from mx.errors import ConfigError
from mx.fsutil import odd_characters_reason, unsafe_relpath_reason

LOCK_FILE = "dvc.lock"
PIPELINE_FILE = "dvc.yaml"
MAX_FILE = 1 << 20  # a lock of a few hundred stages is ~100 KiB
MAX_STAGES = 1000
MAX_OUTS = 10_000  # outputs of all the stages of one dvc.lock
MAX_NAME = 256  # a stage's name, shown in messages
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# (repository-relative path, limit) -> the file's bytes, at most limit + 1 of them (more
# than `limit` says it is too big), or None when there is no such file.
Reader = Callable[[str, int], bytes | None]


@dataclass(frozen=True)
class LockedOutput:
    """One output of a dvc.lock, at a repository-relative `path`."""

    origin: str  # the dvc.lock, repository-relative
    field: str  # stages.<name>.outs[<i>]
    path: str
    pointer: DvcPointer | None  # None: not an output mx can read, `problem` says why
    problem: str | None = None  # one line, starting with `field`
    directory: bool = False  # a directory output (md5 `<hex>.dir`): its files are listed
    # in the object the pointer names (mx.dvcdir)

    @property
    def shown(self) -> str:
        return f"{self.origin} {self.field}"


def _stage_name(name: Any, origin: str) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or not name.isprintable():
        raise ConfigError(f"stage name {str(name)[:40]!r} is not a name of at most "
                          f"{MAX_NAME} printable characters", path=origin)
    return name


def _relpath(value: Any, field: str, origin: str) -> str:
    """`value` as a normalised relative path ("" for the folder itself), or ConfigError."""
    if not isinstance(value, str):
        raise ConfigError(f"{field} is missing or not a path", path=origin)
    if _URL.match(value):
        raise ConfigError(f"{field} {value!r} is a URL (an external output); mx reads "
                          "outputs inside the repository", path=origin)
    trimmed = value.rstrip("/") or value  # DVC writes a directory output as `name/`
    why = None if trimmed == "." else (unsafe_relpath_reason(trimmed)
                                       or odd_characters_reason(trimmed))
    if why is not None:
        raise ConfigError(f"{field} {value!r} {why}", path=origin)
    normal = PurePosixPath(trimmed).as_posix()  # `./a//b` is `a/b`
    return "" if normal == "." else normal


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def _mapping(doc: Any, what: str, origin: str) -> dict[Any, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{what} is not a mapping", path=origin)
    return doc


def _load(data: bytes, origin: str, what: str) -> dict[Any, Any]:
    if len(data) > MAX_FILE:
        raise ConfigError(f"over {MAX_FILE >> 20} MiB, the most mx reads of a {what}",
                          path=origin)
    return _mapping(dvcfiles.load_yaml(yamlio.decode(data, origin, MAX_FILE), origin),
                    f"the {what} document", origin)


@dataclass(frozen=True)
class StageSpec:
    """What dvc.yaml says of a stage that dvc.lock does not record."""

    wdir: str = ""  # its working directory, relative to dvc.yaml's folder
    remotes: dict[str, str] = field(default_factory=dict)  # output path -> its `remote:`


def stage_specs(data: bytes, origin: str) -> dict[str, StageSpec]:
    """{stage name: its spec} for the stages of a dvc.yaml that set a `wdir` or an output's
    `remote` (`outs: [{model.onnx: {remote: store}}]`)."""
    doc = _load(data, origin, PIPELINE_FILE)
    stages = _mapping(doc.get("stages"), "stages", origin)
    if len(stages) > MAX_STAGES:
        raise ConfigError(f"more than {MAX_STAGES} stages", path=origin)
    out: dict[str, StageSpec] = {}
    for name, stage in stages.items():
        name = _stage_name(name, origin)
        if not isinstance(stage, dict):
            continue  # DVC refuses it; it has no wdir to misplace outputs with
        # a foreach stage's body is under `do:`; a matrix stage's is the stage itself
        body = stage["do"] if isinstance(stage.get("do"), dict) else stage
        wdir = body.get("wdir")
        field_ = f"stages.{name}.wdir"
        if isinstance(wdir, str) and "${" in wdir:
            raise ConfigError(f"{field_} {wdir!r} is templated; mx reads a literal wdir",
                              path=origin)
        spec = StageSpec("" if wdir is None else _relpath(wdir, field_, origin),
                         _remotes(body.get("outs"), f"stages.{name}.outs", origin))
        if spec != StageSpec():
            out[name] = spec
    return out


def _remotes(outs: Any, field_: str, origin: str) -> dict[str, str]:
    """{output path: remote} for the outputs written `- PATH: {remote: NAME}`."""
    found: dict[str, str] = {}
    if not isinstance(outs, list):
        return found
    if len(outs) > MAX_OUTS:
        raise ConfigError(f"{field_} has more than {MAX_OUTS} outputs", path=origin)
    for i, out in enumerate(outs):
        if not isinstance(out, dict) or len(out) != 1:
            continue
        [(path, opts)] = out.items()
        remote = opts.get("remote") if isinstance(opts, dict) else None
        if remote is None or (isinstance(path, str) and "${" in path):
            continue  # templated: the lock's path cannot be matched to it
        if not isinstance(remote, str) or not remote or len(remote) > MAX_NAME:
            raise ConfigError(f"{field_}[{i}].remote is not a remote's name", path=origin)
        found[_relpath(path, f"{field_}[{i}]", origin)] = remote
    return found


def parse_lock(data: bytes, origin: str, folder: str,
               specs: dict[str, StageSpec]) -> dict[str, LockedOutput]:
    """The outputs of the dvc.lock `origin` in the repository folder `folder`, by their
    repository-relative path (a directory output's without the trailing `/`).

    Raises ConfigError with one line naming the file and field."""
    doc = _load(data, origin, LOCK_FILE)
    schema = doc.get("schema")
    if schema is None:
        raise ConfigError("has no `schema: '2.0'`: a DVC 1 lock file, which records no sizes; "
                          "`dvc commit` with DVC 2 or later rewrites it", path=origin)
    if schema != "2.0":
        raise ConfigError(f"schema {str(schema)[:20]!r}: mx reads dvc.lock schema '2.0' "
                          "(DVC 2 and 3)", path=origin)
    stages = _mapping(doc.get("stages"), "stages", origin)
    if len(stages) > MAX_STAGES:
        raise ConfigError(f"more than {MAX_STAGES} stages", path=origin)
    found: dict[str, LockedOutput] = {}
    written: dict[str, str] = {}  # path -> its `path:` as written, for messages
    count = 0
    for name, stage in stages.items():
        name = _stage_name(name, origin)
        outs = _mapping(stage, f"stages.{name}", origin).get("outs")
        if outs is None:
            continue
        if not isinstance(outs, list):
            raise ConfigError(f"stages.{name}.outs is not a list", path=origin)
        count += len(outs)
        if count > MAX_OUTS:
            raise ConfigError(f"more than {MAX_OUTS} outputs", path=origin)
        spec = specs.get(name.split("@", 1)[0], StageSpec())
        for i, out in enumerate(outs):
            field = f"stages.{name}.outs[{i}]"
            if not isinstance(out, dict):
                raise ConfigError(f"{field} is not a mapping", path=origin)
            rel = _relpath(out.get("path"), f"{field}.path", origin)
            path = _join(folder, spec.wdir, rel)
            if path in found:
                raise ConfigError(f"{field}.path {out['path']!r} is also "
                                  f"{found[path].field}", path=origin)
            found[path] = _output(out, origin, field, path, spec.remotes.get(rel))
            written[path] = out["path"]
    _no_overlap(found, written, origin)
    return found


def _no_overlap(found: dict[str, LockedOutput], written: dict[str, str], origin: str) -> None:
    """Refuse an output that lies in another (`a` and `a/b`), as DVC does: which of them
    holds `a/b` would depend on the order read, and writing both out (`mx sign`) fails."""
    for path, out in found.items():
        for parent in _ancestors(path):
            holder = found.get(parent)
            if holder is not None:
                raise ConfigError(f"{out.field}.path {written[path]!r} lies in "
                                  f"{holder.field} {parent or '.'!r}", path=origin)


def _output(out: dict[str, Any], origin: str, field: str, path: str,
            remote: str | None) -> LockedOutput:
    """One output; `remote` is dvc.yaml's for it (dvc.lock does not record it)."""
    md5 = out.get("md5")
    directory = isinstance(md5, str) and md5.endswith(".dir")
    try:
        pointer = dvcfiles.parse_digest(out, field, origin)
        if remote is not None and pointer.remote is None:
            pointer = dataclasses.replace(pointer, remote=remote)
        return LockedOutput(origin, field, path, pointer, directory=directory)
    except ConfigError as exc:
        return LockedOutput(origin, field, path, None, problem=exc.detail, directory=directory)


def _ancestors(path: str) -> list[str]:
    """The folders holding `path`, nearest first, ending with the root ("")."""
    parents = [p.as_posix() for p in PurePosixPath(path).parents]
    return [("" if p == "." else p) for p in parents]


class Pipelines:
    """The dvc.lock files of one tree (a commit, a work tree), each read once.

    `memo`, shared between trees, keeps parsed files by the sha256 of their bytes: a build
    reads the same dvc.lock at many tags."""

    def __init__(self, read: Reader, memo: dict[tuple[str, str], Any] | None = None) -> None:
        self._read = read
        self._memo = memo if memo is not None else {}
        self._folders: dict[str, dict[str, LockedOutput] | ConfigError] = {}

    def outputs(self, folder: str) -> dict[str, LockedOutput]:
        """The outputs of `folder`'s dvc.lock ({} when it has none); ConfigError when it
        cannot be read."""
        if folder not in self._folders:
            try:
                self._folders[folder] = self._parse(folder)
            except ConfigError as exc:
                self._folders[folder] = exc
        got = self._folders[folder]
        if isinstance(got, ConfigError):
            raise got
        return got

    def _parse(self, folder: str) -> dict[str, LockedOutput]:
        lock_path = _join(folder, LOCK_FILE)
        lock = self._read(lock_path, MAX_FILE)
        if lock is None:
            return {}
        yaml_path = _join(folder, PIPELINE_FILE)
        spec = self._read(yaml_path, MAX_FILE)
        key = (folder, hashlib.sha256(lock + b"\0" + (spec or b"")).hexdigest())
        if key not in self._memo:
            try:
                specs = stage_specs(spec, yaml_path) if spec is not None else {}
                self._memo[key] = parse_lock(lock, lock_path, folder, specs)
            except ConfigError as exc:
                self._memo[key] = exc
        got = self._memo[key]
        if isinstance(got, ConfigError):
            raise got
        return dict(got)

    def find(self, path: str) -> LockedOutput | None:
        """The output at `path` of the nearest dvc.lock at or above its folder that lists it,
        or the directory output holding it (whose listing names the file); None when none
        does."""
        for folder in _ancestors(path):
            outs = self.outputs(folder)
            hit = outs.get(path)
            if hit is not None:
                return hit
            for out in outs.values():
                if out.directory and out.path and path.startswith(out.path + "/"):
                    return out
        return None

    def files_under(self, top: str, folders: Iterable[str]) -> dict[str, DvcPointer]:
        """{path relative to `top`: pointer} for the outputs under `top` of the dvc.lock
        files in `folders` (a directory output is one entry, its `directory` pointer), the
        nearest lock winning as in `find`. A dvc.lock that cannot be read is skipped: no
        artifact can come from it either."""
        out: dict[str, DvcPointer] = {}
        prefix = top + "/" if top else ""
        for folder in sorted(set(folders), key=lambda f: len(PurePosixPath(f).parts)):
            try:
                outs = self.outputs(folder)
            except ConfigError:
                continue
            for path, o in outs.items():
                if o.pointer is not None and path.startswith(prefix):
                    out[path.removeprefix(prefix)] = o.pointer
        return out


def disk_reader(root: Path) -> Reader:
    """A Reader of the files under `root` (a work tree), as git would hold them: a symlink
    is its target's path (git's blob of it; the builder reads that), and a file behind a
    linked folder, a FIFO or a device is none. Following a link would read outside the
    repository, or block on a FIFO or /dev/tty, for a pointer the builder never sees."""
    real = root.resolve()

    def read(rel: str, limit: int) -> bytes | None:
        path = root / rel
        try:
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                return os.fsencode(os.readlink(path))[: limit + 1]
            folder = PurePosixPath(rel).parent.parts
            if not stat.S_ISREG(mode) or path.parent.resolve() != real.joinpath(*folder):
                return None
            with path.open("rb") as f:
                return f.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", path=rel) from None

    return read
