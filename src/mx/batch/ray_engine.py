"""`mx run --engine ray`: the same batches on Ray Data, the model loaded once per actor.

What runs where:

- The driver (this process) has resolved and verified the model (`mx.infer.resolve_model`:
  mx's cache, digests checked) and plans the files, checkpoints and resume points exactly as
  the local engine does (`runner.FileRun`).
- Reading: one Ray task per input file, pinned to the driver's node (where the files are),
  reads it with mx's own readers (`open_reader(...).chunks(...)`), so every check of the
  local engine applies (dtype and shape against the signature, JSON rows, pickles refused)
  and the chunks are the same batches. Ray's file readers are not used: they would check
  nothing against the signature. The read tasks stream; the input is never all in memory.
- Inference: `map_batches` over an actor pool of `_Predictor`s; each loads the model once,
  from the verified file when its node sees it (same size and sha256), else from the bytes
  the driver put in the object store (checked against the same sha256), never from a
  registry. Each chunk goes through `runner.run_chunk`, as in the local engine.
- Writing: the results come back in order (`preserve_order`) and the driver feeds them to
  the files' `FileRun`s, which write the same checkpoints and outputs as the local engine.

Batches travel as one Arrow row each (`file`, `start`, `rows`, `ids` as JSON, `data`: the
arrays as an .npz written without pickles, string arrays as JSON). A bad row, or an
onnxruntime error, comes back as an `error` row; the driver stops there, as the local
engine would, and leaves nothing of that file behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mx.batch.inputs import Chunk, open_reader
from mx.batch.runner import FileJob, FileRun, Record, RunOptions, RunResult, run_chunk
from mx.errors import BadInput, ConfigError, MxError
from mx.extras import require
from mx.infer.model import LoadedModel, open_model
from mx.progress import Progress
from mx.tensorspec import Value

BLOCK_BYTES = 4 << 20  # a read task's block: at most this much packed input...
BLOCK_CHUNKS = 16  # ...and this many batches (the unit actors take work in)
COLUMNS = ("file", "start", "rows", "ids", "data", "error", "hint")


def pack(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Arrays by name as .npz bytes, no pickles: string (object) arrays go as JSON."""
    names = list(arrays)
    texts = {str(i): {"shape": list(a.shape), "values": a.ravel().tolist()}
             for i, a in enumerate(arrays.values()) if a.dtype == object}
    plain = {str(i): a for i, a in enumerate(arrays.values()) if a.dtype != object}
    header = json.dumps({"names": names, "texts": texts}).encode()
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, header=np.frombuffer(header, np.uint8), **plain)
    return buf.getvalue()


def unpack(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        header = json.loads(z["header"].tobytes())
        out = {}
        for i, name in enumerate(header["names"]):
            text = header["texts"].get(str(i))
            if text is None:
                out[name] = z[str(i)]
            else:
                flat = np.empty(len(text["values"]), dtype=object)
                flat[:] = text["values"]
                out[name] = flat.reshape(text["shape"])
    return out


@dataclass(frozen=True)
class ModelFile:
    """The verified model file as the actors get it."""

    name: str
    version: str
    path: str
    size: int
    sha256: str
    blob: list[Any]  # [ObjectRef of the file's bytes], in a list so Ray passes the ref itself
    threads: int


class _Predictor:
    """A Ray Data actor: the model, loaded once; each row is one batch of the local engine."""

    def __init__(self, model: ModelFile, paths: list[str]) -> None:
        self.paths = paths
        path = Path(model.path)
        if not (path.is_file() and path.stat().st_size == model.size
                and _sha256(path.read_bytes()) == model.sha256):
            import ray

            data = ray.get(model.blob[0])
            if _sha256(data) != model.sha256:
                raise ConfigError(f"{model.name} {model.version}: the model bytes from the "
                                  "object store do not match the verified file")
            with tempfile.TemporaryDirectory(prefix="mx-ray-model-") as folder:
                copy = Path(folder) / path.name
                copy.write_bytes(data)
                self.model = open_model(model.name, model.version, copy, model.threads)
            return
        self.model = open_model(model.name, model.version, path, model.threads)

    def __call__(self, batch: Any) -> Any:
        rows = []
        for row in batch.to_pylist():
            if row["error"] is None:
                path = Path(self.paths[row["file"]])
                ids = None if row["ids"] is None else json.loads(row["ids"])
                chunk = Chunk(row["start"], unpack(row["data"]), ids)
                try:
                    row["data"] = pack(run_chunk(self.model, path, chunk))
                except MxError as exc:
                    row.update(data=None, error=exc.message, hint=exc.hint)
            rows.append(row)
        return _table(rows)


def _table(rows: list[dict[str, Any]]) -> Any:
    import pyarrow as pa

    schema = pa.schema([("file", pa.int64()), ("start", pa.int64()), ("rows", pa.int64()),
                        ("ids", pa.string()), ("data", pa.large_binary()),
                        ("error", pa.string()), ("hint", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)


def _read_file(index: int, path: str, specs: list[Value], start: int,
               batch: int) -> Iterator[Any]:
    """A read task: one file's chunks from `start`, checked by mx's reader, as blocks."""
    rows: list[dict[str, Any]] = []
    size = 0
    try:
        for chunk in open_reader(Path(path), specs).chunks(start, batch):
            data = pack(chunk.feeds)
            rows.append({"file": index, "start": chunk.start, "rows": chunk.rows,
                         "ids": None if chunk.ids is None else json.dumps(chunk.ids),
                         "data": data, "error": None, "hint": None})
            size += len(data)
            if size >= BLOCK_BYTES or len(rows) >= BLOCK_CHUNKS:
                yield _table(rows)
                rows, size = [], 0
    except MxError as exc:
        rows.append({"file": index, "start": -1, "rows": 0, "ids": None, "data": None,
                     "error": exc.message, "hint": exc.hint})
    if rows:
        yield _table(rows)


def _datasource(specs: list[Value], files: Sequence[tuple[str, int, int]]) -> Any:
    """A Ray Data source of the files' chunks: (path, first row, batch size) per file."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class MxInputs(Datasource):
        def estimate_inmemory_data_size(self) -> int | None:
            return sum(os.path.getsize(path) for path, _, _ in files)

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[Any]:
            tasks = []
            for index, (path, start, batch) in enumerate(files):
                def read(index: int = index, path: str = path, start: int = start,
                         batch: int = batch) -> Iterator[Any]:
                    return _read_file(index, path, specs, start, batch)
                meta = BlockMetadata(num_rows=None, size_bytes=os.path.getsize(path),
                                     exec_stats=None, input_files=(path,))
                tasks.append(ReadTask(read, meta))
            return tasks

    return MxInputs()  # type: ignore[no-untyped-call]


class RayEngine:
    """Runs `mx run`'s batches on a Ray cluster: `address` as `ray.init` takes it (None:
    RAY_ADDRESS, else a local Ray started for this run), `actors` model replicas (0: one
    per CPU of the cluster but one, at least one), each taking one CPU and running
    onnxruntime on `threads` intra-op threads (0: one, to match its CPU)."""

    def __init__(self, address: str | None = None, actors: int = 0, threads: int = 0) -> None:
        self.address, self.actors, self.threads = address, actors, threads

    def run(self, model: LoadedModel, jobs: list[FileJob], opts: RunOptions,
            progress: Progress, result: RunResult, record: Record) -> None:
        require("ray", "mx run --engine ray")
        runs: list[FileRun] = []
        try:
            for job in jobs:  # every file's checks and resume point before anything runs
                runs.append(FileRun(model, job, opts, progress, result))
            todo = []
            for run in runs:
                if run.resumed == run.rows:  # every row was checkpointed already
                    record(run.job, run.finish())
                else:
                    todo.append(run)
            if todo:
                self._run(model, todo, record)
        finally:
            for run in runs:
                if run.task is not None and run.next == 0:
                    run.partial.discard()  # never started (a run before it failed): no trace
                run.close()

    def _run(self, model: LoadedModel, runs: list[FileRun], record: Record) -> None:
        import ray

        started = not ray.is_initialized()
        if started:
            try:
                _init(self.address)
            except ConnectionError as exc:
                raise MxError(f"ray: cannot connect to the cluster: {exc}",
                              hint="check --ray-address / RAY_ADDRESS (host:port of the head's "
                                   "GCS) and RAY_AUTH_TOKEN") from None
        try:
            self._stream(model, runs, record)
        except ray.exceptions.RayError as exc:
            # The last line is the cause: an actor's own error (say, onnxruntime refusing the
            # model), an actor killed for memory...
            text = str(exc).strip().splitlines()
            last = text[-1] if text else type(exc).__name__
            mx_error = re.match(r"mx\.errors\.\w+: (.+)", last)
            raise MxError(mx_error.group(1) if mx_error else f"ray: {last}",
                          hint="the Ray logs say more (`ray logs`, or the dashboard)") from None
        finally:
            if started:
                ray.shutdown()

    def _stream(self, model: LoadedModel, runs: list[FileRun], record: Record) -> None:
        import ray
        import ray.data

        resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
        # Read where the files are: the node of this process (its "node:<ip>" resource).
        here = f"node:{ray.util.get_node_ip_address()}"  # type: ignore[no-untyped-call]
        if here not in resources:  # e.g. a Ray Client (ray://) connection from outside
            raise ConfigError("--engine ray reads the input files on this machine's Ray node, "
                              "and this machine is not a node of the cluster",
                              hint="run mx on a node (e.g. `ray job submit -- mx run ...`)")
        cpus = int(resources.get("CPU", 0))
        actors = self.actors or max(1, cpus - 1)
        if actors > cpus:
            raise ConfigError(f"--actors {actors}: the Ray cluster has {cpus} CPUs, and each "
                              "actor takes one", hint=f"pass --actors {max(1, cpus)} or fewer")
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # results in row order, file by file
        ctx.enable_progress_bars = False  # mx draws its own, in rows
        ctx.print_on_execution_start = False
        # Ray Data's notes on each execution, and its stack traces when one fails: mx says
        # what failed in one line, and Ray's logs keep the rest
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)
        data = model.path.read_bytes()
        shipped = ModelFile(model.name, model.version, str(model.path), len(data),
                            _sha256(data), [ray.put(data)], self.threads or 1)
        del data
        paths = [str(run.job.input.resolve()) for run in runs]
        source = _datasource(model.inputs, [(p, run.resumed, run.batch)
                                            for p, run in zip(paths, runs, strict=True)])
        # Reading takes no CPU slot, so that actors filling the cluster cannot starve it.
        ds = ray.data.read_datasource(source, num_cpus=0, resources={here: 0.001},
                                      override_num_blocks=len(runs))
        # max_restarts=0: an actor that dies (onnxruntime crashing on some row, out of
        # memory) fails the run with one line, where Ray Data's default (restart and retry
        # forever) would retry the same batch without end. Ray 2.60 names no parameter for
        # it and calls the catch-all deprecated (removed in 2.64: the extra pins below that).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ds.map_batches(_Predictor,
                                fn_constructor_kwargs={"model": shipped, "paths": paths},
                                batch_size=None, batch_format="pyarrow",
                                compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1,
                                max_restarts=0)
        open_runs = dict(enumerate(runs))
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in table.to_pylist():
                run = open_runs[row["file"]]
                if row["error"] is not None:
                    run.fail()
                    raise BadInput(row["error"], row["hint"])
                ids = None if row["ids"] is None else json.loads(row["ids"])
                run.add(row["start"], row["rows"], ids, unpack(row["data"]))
                if run.start == run.rows:  # the last rows are in
                    record(run.job, run.finish())
                    del open_runs[row["file"]]
        if open_runs:  # cannot happen unless Ray lost rows
            raise ConfigError("ray: the run ended with rows missing from "
                              + ", ".join(str(r.job.input) for r in open_runs.values()))


def _init(address: str | None) -> None:
    import ray

    # The actors' own output stays in the Ray logs; failures come back as rows.
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
