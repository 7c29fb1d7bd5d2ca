"""`mx run`: every row of every input file through the model, in batches, resumably."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx.batch.inputs import find_inputs, open_reader
from mx.batch.outputs import ArrayFormat, ChunkFormat, JsonlFormat, PartialRun, Rows
from mx.errors import ConfigError, MxError
from mx.fsutil import atomic_write_bytes
from mx.infer.model import LoadedModel
from mx.progress import NoProgress, Progress

OUTPUT_SUFFIXES = (".npy", ".npz", ".jsonl")
DONE_FILE = ".mx-run.json"  # in an output directory: the inputs already finished


@dataclass
class RunOptions:
    batch_size: int = 32
    checkpoint_rows: int = 4096  # rows per checkpoint file (whole batches)


@dataclass
class FileResult:
    input: Path
    output: Path
    rows: int
    resumed_rows: int = 0  # rows a previous, interrupted run had already done
    skipped: bool = False  # finished by an earlier run with the same model and input

    def to_json(self) -> dict[str, Any]:
        return {"input": str(self.input), "output": str(self.output), "rows": self.rows,
                "resumed_rows": self.resumed_rows, "skipped": self.skipped}


@dataclass
class RunResult:
    model: str
    version: str
    files: list[FileResult] = field(default_factory=list)
    batches: int = 0  # onnxruntime runs made by this invocation
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "batches": self.batches,
                "files": [f.to_json() for f in self.files], "warnings": self.warnings}


def plan(model: LoadedModel, src: Path, dest: Path) -> list[tuple[Path, Path]]:
    """(input file, output file) pairs: a file to a file, a directory to a mirror of it."""
    inputs = find_inputs(src)
    if src.is_file():
        if dest.suffix not in OUTPUT_SUFFIXES:
            raise ConfigError(f"--output {dest}: give a .npy, .npz or .jsonl file",
                              hint="an input directory writes to an output directory")
        return [(src, dest)]
    if dest.suffix in OUTPUT_SUFFIXES or dest.is_file():
        raise ConfigError(f"--output {dest}: an input directory needs an output directory")
    # the input's format, except that a .npy holds one output
    suffix = {".jsonl": ".jsonl", ".npz": ".npz",
              ".npy": ".npy" if len(model.outputs) == 1 else ".npz"}
    return [(p, dest / p.relative_to(src).with_suffix(suffix[p.suffix])) for p in inputs]


def run_files(model: LoadedModel, src: Path, dest: Path, opts: RunOptions,
              progress: Progress | None = None) -> RunResult:
    if opts.batch_size < 1 or opts.checkpoint_rows < 1:
        raise ConfigError("--batch-size and --checkpoint-rows must be at least 1")
    progress = progress or NoProgress()
    result = RunResult(model.name, model.version)
    pairs = plan(model, src, dest)
    done_file = dest / DONE_FILE if src.is_dir() else None
    finished = _read_done(done_file)
    for inp, out in pairs:
        key = str(inp.relative_to(src)) if done_file else inp.name
        fingerprint = _fingerprint(model, inp, opts)
        record = finished.get(key)
        if isinstance(record, dict) and record.get("from") == fingerprint and out.is_file():
            result.files.append(FileResult(inp, out, int(record["rows"]), skipped=True))
            continue
        done = _run_file(model, inp, out, fingerprint, opts, progress, result)
        result.files.append(done)
        if done_file:
            finished[key] = {"from": fingerprint, "rows": done.rows}
            atomic_write_bytes(done_file, json.dumps(finished, indent=1, sort_keys=True).encode())
    return result


def _run_file(model: LoadedModel, inp: Path, out: Path, fingerprint: dict[str, Any],
              opts: RunOptions, progress: Progress, result: RunResult) -> FileResult:
    reader = open_reader(inp, model.inputs)
    if reader.rows == 0:
        raise ConfigError(f"{inp}: no rows")
    partial = PartialRun(out, fingerprint, _format(model, out))
    done = partial.resume()
    if partial.discarded:
        result.warnings.append(f"{out}: the unfinished run found there was for another model, "
                               "input or batch size; started again")
    batch = _batch_size(model, opts.batch_size)
    per_checkpoint = max(1, opts.checkpoint_rows // batch) * batch
    task = progress.add(inp.name, reader.rows)
    progress.advance(task, done)
    pending: Rows = []
    start = done
    try:
        for chunk in reader.chunks(done, batch):
            outputs = model.run(chunk.feeds)
            result.batches += 1
            pending.append((chunk.ids, outputs))
            end = chunk.start + chunk.rows
            if end - start >= per_checkpoint or end == reader.rows:
                partial.save(start, end, pending)
                pending, start = [], end
            progress.advance(task, chunk.rows)
        partial.finish(reader.rows)
    except MxError:
        partial.discard()  # bad input: nothing of this file stays behind
        raise
    finally:
        progress.done(task)
    return FileResult(inp, out, reader.rows, resumed_rows=done)


def _batch_size(model: LoadedModel, wanted: int) -> int:
    """A model with a fixed first axis takes exactly that many rows at a time."""
    first = model.inputs[0].shape[0] if model.inputs[0].shape else 1
    return wanted if model.batchable or not isinstance(first, int) else first


def _format(model: LoadedModel, out: Path) -> ChunkFormat:
    names = [t.name for t in model.outputs]
    if out.suffix == ".jsonl":
        return JsonlFormat()
    if out.suffix == ".npy" and len(names) != 1:
        raise ConfigError(f"--output {out}: the model has {len(names)} outputs "
                          f"({', '.join(names)}) and a .npy file holds one",
                          hint="write .npz or .jsonl")
    return ArrayFormat(names, single=out.suffix == ".npy")


def _fingerprint(model: LoadedModel, inp: Path, opts: RunOptions) -> dict[str, Any]:
    """What the finished rows were computed from; a resumed run must match all of it."""
    m, i = model.path.stat(), inp.stat()
    return {"model": model.name, "version": model.version, "model_file": str(model.path),
            "model_size": m.st_size, "model_mtime_ns": m.st_mtime_ns,
            "input": str(inp.resolve()), "input_size": i.st_size,
            "input_mtime_ns": i.st_mtime_ns, "batch_size": opts.batch_size,
            "checkpoint_rows": opts.checkpoint_rows}


def _read_done(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
