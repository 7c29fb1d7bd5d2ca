"""What `mx run` reads: .npy, .npz and .jsonl files of rows, checked against the signature.

Rows run along the first axis of every array. In .jsonl each line is one row, an object
with a value per input (without the batch axis) and optionally an "id" that is carried
to the output line. A row that does not fit fails naming the file and the line or rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mx.errors import BadInput, ConfigError
from mx.infer.signature import check_array, check_feeds
from mx.tensorspec import Value

KINDS = {".npy": "npy", ".npz": "npz", ".jsonl": "jsonl"}
ID_KEY = "id"


@dataclass(frozen=True)
class Chunk:
    start: int
    feeds: dict[str, np.ndarray]
    ids: list[Any] | None = None  # .jsonl "id" values, in row order

    @property
    def rows(self) -> int:
        return len(next(iter(self.feeds.values())))


class InputReader(Protocol):
    path: Path
    rows: int

    def chunks(self, start: int, size: int) -> Iterator[Chunk]: ...


def find_inputs(root: Path) -> list[Path]:
    """The input files under `root` (itself when a file), in a stable order."""
    if root.is_file():
        if root.suffix not in KINDS:
            raise ConfigError(f"{root}: not a .npy, .npz or .jsonl file")
        return [root]
    if not root.is_dir():
        raise ConfigError(f"{root}: no such file or directory")
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in KINDS
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not found:
        raise ConfigError(f"{root}: no .npy, .npz or .jsonl files in this directory")
    return found


def open_reader(path: Path, specs: Sequence[Value]) -> InputReader:
    if path.suffix == ".jsonl":
        return JsonlReader(path, specs)
    return ArrayReader(path, specs)


class ArrayReader:
    def __init__(self, path: Path, specs: Sequence[Value]) -> None:
        self.path, self.specs = path, list(specs)
        try:
            if path.suffix == ".npy":
                if len(specs) != 1:
                    raise ConfigError(
                        f"{path}: a .npy file holds one array; the model takes "
                        f"{len(specs)} inputs ({', '.join(s.name for s in specs)})",
                        hint="put one array per input, named after it, in a .npz")
                self.arrays = {specs[0].name: np.load(path, mmap_mode="r", allow_pickle=False)}
            else:
                with np.load(path, allow_pickle=False) as npz:
                    self.arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError, EOFError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}",
                              hint="object arrays (pickles) are refused") from None
        lengths = {k: (len(a) if a.ndim else None) for k, a in self.arrays.items()}
        if None in lengths.values() or len(set(lengths.values())) > 1:
            raise BadInput(f"{path}: arrays must share a first (row) axis; their lengths: "
                           + ", ".join(f"{k}={n}" for k, n in lengths.items()))
        self.rows = next(iter(lengths.values()), 0) or 0

    def chunks(self, start: int, size: int) -> Iterator[Chunk]:
        for lo in range(start, self.rows, size):
            hi = min(lo + size, self.rows)
            feeds = {k: np.ascontiguousarray(a[lo:hi]) for k, a in self.arrays.items()}
            try:
                yield Chunk(lo, check_feeds(self.specs, feeds))
            except BadInput as exc:
                raise BadInput(f"{self.path}: rows {lo}-{hi - 1}: {exc}", exc.hint) from None


class JsonlReader:
    def __init__(self, path: Path, specs: Sequence[Value]) -> None:
        self.path, self.specs = path, list(specs)
        self.dtypes = {s.name: (object if s.dtype == "string" else np.dtype(s.dtype))
                       for s in specs}
        with path.open("rb") as f:
            self.rows = sum(1 for line in f if line.strip())

    def chunks(self, start: int, size: int) -> Iterator[Chunk]:
        rows: list[dict[str, np.ndarray]] = []
        ids: list[Any] = []
        lines: list[int] = []
        row = 0
        with self.path.open("rb") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row += 1
                if row <= start:
                    continue
                values, row_id = self._parse(line, lineno)
                rows.append(values)
                ids.append(row_id)
                lines.append(lineno)
                if len(rows) == size:
                    yield self._stack(row - len(rows), rows, ids, lines)
                    rows, ids, lines = [], [], []
        if rows:
            yield self._stack(row - len(rows), rows, ids, lines)

    def _parse(self, line: bytes, lineno: int) -> tuple[dict[str, np.ndarray], Any]:
        where = f"{self.path}:{lineno}"
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise BadInput(f"{where}: not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise BadInput(f"{where}: a row is an object with a value per input",
                           hint="e.g. {" + ", ".join(f'"{s.name}": [...]'
                                                     for s in self.specs) + "}")
        row_id = obj.pop(ID_KEY, None) if ID_KEY not in self.dtypes else None
        for name in obj:
            if name not in self.dtypes:
                raise BadInput(f"{where}: unknown input {name!r}; the model takes "
                               + ", ".join(repr(s.name) for s in self.specs))
        values = {}
        for spec in self.specs:
            if spec.name not in obj:
                raise BadInput(f"{where}: missing input {spec.name!r}")
            try:
                values[spec.name] = np.asarray(obj[spec.name], dtype=self.dtypes[spec.name])
            except (ValueError, TypeError) as exc:
                raise BadInput(f"{where}: input {spec.name!r}: not {spec.dtype}: {exc}") from None
            try:  # as a batch of one, so the message's dims match the signature's
                check_array(spec, values[spec.name][None])
            except BadInput as exc:
                raise BadInput(f"{where}: {exc}", exc.hint) from None
        return values, row_id

    def _stack(self, start: int, rows: list[dict[str, np.ndarray]], ids: list[Any],
               lines: list[int]) -> Chunk:
        feeds = {}
        for spec in self.specs:
            first = rows[0][spec.name].shape
            for values, lineno in zip(rows, lines, strict=True):
                if values[spec.name].shape != first:
                    raise BadInput(
                        f"{self.path}:{lineno}: input {spec.name!r}: shape "
                        f"{list(values[spec.name].shape)} differs from line {lines[0]}'s "
                        f"{list(first)} in the same batch",
                        hint="pad rows to one length, or pass --batch-size 1")
            feeds[spec.name] = np.stack([values[spec.name] for values in rows])
        try:
            checked = check_feeds(self.specs, feeds)
        except BadInput as exc:
            raise BadInput(f"{self.path}:{lines[0]}-{lines[-1]}: {exc}", exc.hint) from None
        return Chunk(start, checked, ids if any(i is not None for i in ids) else None)
