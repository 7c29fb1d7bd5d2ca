"""Run an artifact of any exchange format on numpy inputs: the other side of a parity check.

onnxruntime for `onnx` and `ort`; PyTorch for `torchscript`; TensorFlow for `savedmodel`
(a tar of the directory) and `tflite`. Frameworks are imported only when needed.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mx.check.verdict import ort_reason
from mx.errors import ConfigError, RunFailed
from mx.frameworks import require
from mx.sampling import Feeds

Runner = Callable[[Feeds], list[np.ndarray]]


def ort_session(path: Path, providers: list[str] | None = None, threads: int = 0,
                graph_optimization: bool = True) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # Fatal only: a failed run is raised and reported once, in one line, by the caller.
    opts.log_severity_level = 4
    if threads:
        opts.intra_op_num_threads = threads
    if not graph_optimization:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=providers or
                                ["CPUExecutionProvider"])



def describe_feeds(feeds: Feeds) -> str:
    return ", ".join(f"{k} {np.asarray(v).dtype} {list(np.shape(v))}" for k, v in feeds.items())


def run_failed(path: Path, feeds: Feeds, exc: BaseException) -> RunFailed:
    """One line naming the input onnxruntime complained about (else every input given)."""

    reason = ort_reason(exc)
    named = [k for k in feeds if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w.])", reason)]
    what = f"input {named[0]!r}" if named else f"the inputs ({describe_feeds(feeds)})"
    return RunFailed(f"{path}: onnxruntime cannot run the model on {what}: {reason}",
                     hint="set sizes with --shape NAME=N and the batch axis with --batch-axis "
                          "INPUT=AXIS, or give real inputs with --data FILE.npz")


def onnx_runner(path: Path) -> Runner:
    session = ort_session(path)
    names = {i.name for i in session.get_inputs()}

    def run(feeds: Feeds) -> list[np.ndarray]:
        given = {k: v for k, v in feeds.items() if k in names}
        try:
            out = session.run(None, given)
        except Exception as exc:  # onnxruntime's own exception types, one per status
            raise run_failed(path, given, exc) from None
        return [np.asarray(o) for o in out]

    return run


def torchscript_runner(path: Path) -> Runner:
    torch = require("torch")
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(feeds: Feeds) -> list[np.ndarray]:
        with torch.no_grad():
            out = module(*(torch.from_numpy(v) for v in feeds.values()))
        flat = out if isinstance(out, list | tuple) else [out]
        return [t.detach().cpu().numpy() for t in flat]

    return run


def savedmodel_runner(path: Path) -> Runner:
    tf = require("tensorflow")

    tmp = tempfile.mkdtemp(prefix="mx-savedmodel-")
    loaded = tf.saved_model.load(str(extract_tar(path, Path(tmp))))
    serving = loaded.signatures["serving_default"]
    keys = sorted(serving.structured_outputs)

    def run(feeds: Feeds) -> list[np.ndarray]:
        out = serving(**{k: tf.constant(v) for k, v in feeds.items()})
        return [np.asarray(out[k]) for k in keys]

    run.keep_alive = loaded  # type: ignore[attr-defined]
    return run


def tflite_runner(path: Path) -> Runner:
    tf = require("tensorflow")
    interpreter = tf.lite.Interpreter(model_path=str(path))
    inputs = interpreter.get_input_details()
    outputs = sorted(interpreter.get_output_details(), key=lambda d: d["index"])

    def run(feeds: Feeds) -> list[np.ndarray]:
        values = list(feeds.values())
        by_name = {d["name"]: d for d in inputs}
        order = [next((d for n, d in by_name.items() if n.endswith(f"_{k}:0") or n == k),
                      inputs[i]) for i, k in enumerate(feeds)]
        for d, v in zip(order, values, strict=True):
            interpreter.resize_tensor_input(d["index"], list(v.shape))
        interpreter.allocate_tensors()
        for d, v in zip(order, values, strict=True):
            interpreter.set_tensor(d["index"], v)
        interpreter.invoke()
        return [np.asarray(interpreter.get_tensor(d["index"])) for d in outputs]

    return run


RUNNERS: dict[str, Callable[[Path], Runner]] = {
    "onnx": onnx_runner,
    "ort": onnx_runner,
    "torchscript": torchscript_runner,
    "savedmodel": savedmodel_runner,
    "tflite": tflite_runner,
}


def runner_for(fmt: str, path: Path) -> Runner:
    try:
        make = RUNNERS[fmt]
    except KeyError:
        raise ConfigError(f"mx cannot run {fmt} artifacts",
                          hint=f"runnable formats: {', '.join(RUNNERS)}") from None
    return make(path)


def extract_tar(archive: Path, dest: Path) -> Path:
    """A SavedModel shipped as a tar (how mx stores a directory artifact), unpacked safely."""
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest
