"""Where `mx run` writes: finished chunks in a partial directory, then the output at once.

`.<output>.mx-partial/` beside the output holds `state.json` (what the rows were computed
from) and one file per checkpoint, each written atomically and named by its row range. An
interrupted run leaves only whole checkpoints; the next run with the same model, input
and batch size continues after the last one. The output file itself appears only when
every row is done (assembled by streaming the checkpoints, never all in memory, into a
temp file inside the partial directory, so a run killed while assembling leaves nothing
beside the output that the next run would not remove).
"""

from __future__ import annotations

import glob
import io
import json
import re
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from mx.errors import ConfigError
from mx.fsutil import atomic_write_bytes, atomic_writer

Rows = list[tuple[list[Any] | None, dict[str, np.ndarray]]]  # (ids, outputs) per batch
_CHUNK = re.compile(r"^(\d{12})-(\d{12})\.part$")


class ChunkFormat(Protocol):
    def encode(self, batches: Rows) -> bytes: ...

    def assemble(self, parts: Sequence[Path], out: IO[bytes]) -> None: ...


class JsonlFormat:
    """One object per row: the row's "id" when the input had one, then every output."""

    def encode(self, batches: Rows) -> bytes:
        lines = []
        for ids, outputs in batches:
            lists = {k: (a.astype(str) if a.dtype == object else a).tolist()
                     for k, a in outputs.items()}
            n = len(next(iter(lists.values())))
            for i in range(n):
                row: dict[str, Any] = {"id": ids[i]} if ids else {}
                row.update((k, v[i]) for k, v in lists.items())
                lines.append(json.dumps(row, separators=(",", ":")))
        return "".join(line + "\n" for line in lines).encode()

    def assemble(self, parts: Sequence[Path], out: IO[bytes]) -> None:
        for part in parts:
            with part.open("rb") as f:
                shutil.copyfileobj(f, out)


class ArrayFormat:
    """.npz (every output) or .npy (the one output): rows concatenated along axis 0."""

    def __init__(self, names: Sequence[str], single: bool) -> None:
        self.names, self.single = list(names), single

    def encode(self, batches: Rows) -> bytes:
        buf = io.BytesIO()
        arrays = {n: _concat(n, [outs[n] for _, outs in batches]) for n in self.names}
        np.savez(buf, allow_pickle=False, **arrays)
        return buf.getvalue()

    def assemble(self, parts: Sequence[Path], out: IO[bytes]) -> None:
        shapes = self._shapes(parts)
        if self.single:
            self._stream(self.names[0], parts, shapes[self.names[0]], out)
            return
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
            for name in self.names:
                with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                    self._stream(name, parts, shapes[name], member)

    def _shapes(self, parts: Sequence[Path]) -> dict[str, tuple[np.dtype[Any], tuple[int, ...]]]:
        seen: dict[str, tuple[np.dtype[Any], tuple[int, ...]]] = {}
        for part in parts:
            with zipfile.ZipFile(part) as z:
                for name in self.names:
                    with z.open(f"{name}.npy") as member:  # the header only, not the data
                        part_dtype, part_shape = _npy_header(member)
                    dtype, shape = seen.get(name, (part_dtype, (0, *part_shape[1:])))
                    if part_shape[1:] != shape[1:]:
                        raise ConfigError(
                            f"output {name!r} has shape {list(part_shape[1:])} per row in one "
                            f"batch and {list(shape[1:])} in another",
                            hint="write .jsonl output, which keeps each row's own shape")
                    seen[name] = (dtype, (shape[0] + part_shape[0], *shape[1:]))
        return seen

    def _stream(self, name: str, parts: Sequence[Path],
                dtype_shape: tuple[np.dtype[Any], tuple[int, ...]], out: IO[bytes]) -> None:
        dtype, shape = dtype_shape
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": shape}
        np.lib.format.write_array_header_2_0(out, header)
        for part in parts:
            with np.load(part, allow_pickle=False) as z:
                out.write(np.ascontiguousarray(z[name]).tobytes())


def _npy_header(f: IO[bytes]) -> tuple[np.dtype[Any], tuple[int, ...]]:
    fmt = np.lib.format
    version = fmt.read_magic(f)
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _fortran, dtype = read(f)
    return dtype, tuple(shape)


def _concat(name: str, arrays: list[np.ndarray]) -> np.ndarray:
    if arrays[0].dtype == object:
        raise ConfigError(f"output {name!r} holds strings, which .npy/.npz cannot hold "
                          "without pickles", hint="write .jsonl output")
    if len({a.shape[1:] for a in arrays}) > 1:
        raise ConfigError(f"output {name!r} changes shape per row between batches",
                          hint="write .jsonl output, which keeps each row's own shape")
    return np.concatenate(arrays)


class PartialRun:
    def __init__(self, output: Path, fingerprint: dict[str, Any], fmt: ChunkFormat) -> None:
        self.output, self.fingerprint, self.fmt = output, fingerprint, fmt
        self.dir = output.parent / f".{output.name}.mx-partial"
        self.discarded = False  # a partial run of something else was thrown away

    def resume(self) -> int:
        """Rows already done (0 when starting afresh); sets up the directory."""
        # Assembly temp files of mx versions that wrote them beside the output.
        for stale in self.output.parent.glob(f".{glob.escape(self.output.name)}.*.tmp"):
            stale.unlink(missing_ok=True)
        state = self.dir / "state.json"
        try:
            same = json.loads(state.read_text()) == self.fingerprint
        except (OSError, ValueError):
            same = False
        if not same:
            self.discarded = self.dir.exists()
            self.discard()
            atomic_write_bytes(state, json.dumps(self.fingerprint, sort_keys=True).encode())
            return 0
        done = 0
        for part in self._parts():
            lo, hi = _range(part)
            if lo != done:
                break  # a gap: trust only the contiguous prefix
            done = hi
        return done

    def save(self, start: int, stop: int, batches: Rows) -> None:
        atomic_write_bytes(self.dir / f"{start:012d}-{stop:012d}.part", self.fmt.encode(batches))

    def finish(self, rows: int) -> None:
        parts, done = [], 0
        for part in self._parts():
            lo, hi = _range(part)
            if lo == done:
                parts.append(part)
                done = hi
        if done != rows:  # cannot happen unless someone edits the directory under us
            raise ConfigError(f"{self.dir}: checkpoints cover {done} of {rows} rows",
                              hint="delete it and run again")
        with atomic_writer(self.output, tmp_dir=self.dir) as out:
            self.fmt.assemble(parts, out)
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _parts(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if _CHUNK.match(p.name))


def _range(part: Path) -> tuple[int, int]:
    m = _CHUNK.match(part.name)
    assert m is not None
    return int(m.group(1)), int(m.group(2))
