"""`mx run`: every row of every input file through the model, in batches, resumably.

This is the local engine and what every engine shares: the plan (which file goes where,
which are already done), `FileRun` (one file's checkpoints and output, fed batches in row
order) and `run_chunk` (one batch through the model). `mx.batch.ray_engine` runs the same
batches on Ray Data and feeds the same `FileRun`s, so both write the same outputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mx.batch.inputs import Chunk, InputReader, find_inputs, open_reader
from mx.batch.outputs import ArrayFormat, ChunkFormat, JsonlFormat, PartialRun, Rows
from mx.errors import BadInput, ConfigError, MxError
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


@dataclass(frozen=True)
class FileJob:
    """An input file still to run, and the output it goes to."""

    input: Path
    output: Path
    fingerprint: dict[str, Any]


Record = Callable[[FileJob, FileResult], None]  # called as each file's output appears


class Engine(Protocol):
    def run(self, model: LoadedModel, jobs: list[FileJob], opts: RunOptions,
            progress: Progress, result: RunResult, record: Record) -> None: ...


def run_chunk(model: LoadedModel, path: Path, chunk: Chunk) -> dict[str, np.ndarray]:
    """One batch of checked rows through the model: the step every engine runs."""
    try:
        return model.run(chunk.feeds)
    except Exception as exc:  # onnxruntime's errors carry no type worth keeping
        text = str(exc).strip()
        raise BadInput(f"{path}: rows {chunk.start}-{chunk.start + chunk.rows - 1}: "
                       f"onnxruntime: {text.splitlines()[0] if text else type(exc).__name__}"
                       ) from None


class FileRun:
    """One input file's run: opens its reader and checkpoints (resuming after the last),
    takes output batches in row order, and writes the output when every row is in."""

    def __init__(self, model: LoadedModel, job: FileJob, opts: RunOptions,
                 progress: Progress, result: RunResult) -> None:
        self.job, self.progress, self.result = job, progress, result
        self.reader: InputReader = open_reader(job.input, model.inputs)
        self.rows = self.reader.rows
        if self.rows == 0:
            raise ConfigError(f"{job.input}: no rows")
        self.partial = PartialRun(job.output, job.fingerprint, _format(model, job.output))
        self.resumed = self.partial.resume()
        if self.partial.discarded:
            result.warnings.append(f"{job.output}: the unfinished run found there was for "
                                   "another model, input or batch size; started again")
        self.batch = _batch_size(model, opts.batch_size)
        self.per_checkpoint = max(1, opts.checkpoint_rows // self.batch) * self.batch
        self.task: int | None = progress.add(job.input.name, self.rows)
        progress.advance(self.task, self.resumed)
        self.pending: Rows = []
        self.start = self.resumed  # the first row not yet in a checkpoint
        self.next = self.resumed  # the first row not yet added

    def add(self, start: int, rows: int, ids: list[Any] | None,
            outputs: dict[str, np.ndarray]) -> None:
        """The outputs of rows start..start+rows-1 (the next ones, in order)."""
        if start != self.next:  # an engine that lost its order: never write a wrong file
            raise ConfigError(f"{self.job.input}: rows {start}-{start + rows - 1} came when "
                              f"row {self.next} was due")
        self.next = start + rows
        self.result.batches += 1
        self.pending.append((ids, outputs))
        end = start + rows
        if end - self.start >= self.per_checkpoint or end == self.rows:
            self.partial.save(self.start, end, self.pending)
            self.pending, self.start = [], end
        if self.task is not None:
            self.progress.advance(self.task, rows)

    def finish(self) -> FileResult:
        self.partial.finish(self.rows)
        self.close()
        return FileResult(self.job.input, self.job.output, self.rows, resumed_rows=self.resumed)

    def fail(self) -> None:
        """Bad input: nothing of this file stays behind."""
        self.partial.discard()
        self.close()

    def close(self) -> None:
        """Takes the file off the progress display (once)."""
        if self.task is not None:
            self.progress.done(self.task)
            self.task = None


class LocalEngine:
    """In this process, one file after another, one batch at a time."""

    def run(self, model: LoadedModel, jobs: list[FileJob], opts: RunOptions,
            progress: Progress, result: RunResult, record: Record) -> None:
        for job in jobs:
            run = FileRun(model, job, opts, progress, result)
            try:
                for chunk in run.reader.chunks(run.resumed, run.batch):
                    run.add(chunk.start, chunk.rows, chunk.ids,
                            run_chunk(model, job.input, chunk))
                record(job, run.finish())
            except MxError:
                run.fail()
                raise
            finally:
                run.close()


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
              progress: Progress | None = None, engine: Engine | None = None) -> RunResult:
    if opts.batch_size < 1 or opts.checkpoint_rows < 1:
        raise ConfigError("--batch-size and --checkpoint-rows must be at least 1")
    progress = progress or NoProgress()
    result = RunResult(model.name, model.version)
    pairs = plan(model, src, dest)
    done_file = dest / DONE_FILE if src.is_dir() else None
    finished = _read_done(done_file)
    keys = {inp: str(inp.relative_to(src)) if done_file else inp.name for inp, _ in pairs}
    jobs = []
    for inp, out in pairs:
        fingerprint = _fingerprint(model, inp, opts)
        record = finished.get(keys[inp])
        if isinstance(record, dict) and record.get("from") == fingerprint and out.is_file():
            result.files.append(FileResult(inp, out, int(record["rows"]), skipped=True))
        else:
            jobs.append(FileJob(inp, out, fingerprint))

    def done(job: FileJob, file_result: FileResult) -> None:
        result.files.append(file_result)
        if done_file:
            finished[keys[job.input]] = {"from": job.fingerprint, "rows": file_result.rows}
            atomic_write_bytes(done_file, json.dumps(finished, indent=1, sort_keys=True).encode())

    if jobs:
        (engine or LocalEngine()).run(model, jobs, opts, progress, result, done)
    order = {inp: i for i, (inp, _) in enumerate(pairs)}
    result.files.sort(key=lambda f: order[f.input])
    return result


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
