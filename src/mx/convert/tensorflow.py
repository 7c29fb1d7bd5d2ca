"""TensorFlow / Keras -> ONNX (tf2onnx), SavedModel and TFLite.

Sources: a SavedModel directory (its `serving_default` signature), a Keras file
(`.keras`, loaded in Keras' safe mode, or `.h5`), or an entry point returning a Keras
model (Sequential ones too), optionally with example inputs: `model` or
`(model, example_inputs)`.

tf2onnx's `from_keras` breaks on Keras 3 Sequential models, so every source is wrapped
in a `tf.function` with an explicit input signature and converted with `from_function`.
A SavedModel artifact is a directory, but an artifact is one file with one digest: it is
stored as an uncompressed, deterministic tar of that directory (`*.savedmodel.tar`).
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mx.convert.base import (
    Converted,
    ConvertJob,
    call_entry_point,
    first_line,
    quiet,
    refuse_pickle,
)
from mx.errors import ConfigError, ConversionFailed
from mx.frameworks import require, version_of
from mx.onnxinfo import rename_values
from mx.sampling import Feeds, Spec, generate
from mx.tensorspec import Value

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class TensorFlowConverter:
    framework = "tensorflow"
    targets: tuple[str, ...] = ("onnx", "savedmodel", "tflite")

    def convert(self, job: ConvertJob) -> Converted:
        tf = require("tensorflow")
        source = _load_source(job)
        version = version_of("tensorflow")
        with tempfile.TemporaryDirectory(dir=job.out_path.parent, prefix=".mx-tf-") as tmp:
            if job.target == "onnx":
                tf2onnx = require("tf2onnx")
                with quiet():
                    try:
                        proto, _ = tf2onnx.convert.from_function(
                            source.function, input_signature=source.specs, opset=job.opset)
                    except Exception as exc:
                        raise ConversionFailed(f"tf2onnx failed: {first_line(exc)}") from None
                rename_values(proto, dict(zip([o.name for o in proto.graph.output],
                                              source.output_names, strict=False)))
                import onnx

                onnx.save(proto, str(job.out_path))
                tool = f"tf2onnx {version_of('tf2onnx')} (tensorflow {version})"
            else:
                saved = source.saved_model_dir or _export_saved_model(source, Path(tmp))
                if job.target == "savedmodel":
                    write_tar(saved, job.out_path)
                    tool = f"tf.saved_model {version}"
                else:
                    with quiet():
                        try:
                            data = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
                        except Exception as exc:
                            raise ConversionFailed(f"TFLite conversion failed: "
                                                   f"{first_line(exc)}") from None
                    job.out_path.write_bytes(data)
                    tool = f"tf.lite.TFLiteConverter {version}"
        return Converted(source.reference, source.example, tool, version)


class _Source:
    def __init__(self, function: Any, specs: list[Any], input_names: list[str],
                 output_names: list[str], example: Feeds,
                 reference: Callable[[Feeds], list[Any]], keras_model: Any = None,
                 saved_model_dir: Path | None = None) -> None:
        self.function, self.specs, self.input_names = function, specs, input_names
        self.output_names, self.example, self.reference = output_names, example, reference
        self.keras_model, self.saved_model_dir = keras_model, saved_model_dir


def _load_source(job: ConvertJob) -> _Source:
    path = job.model_dir / job.source
    if ":" in job.source and not path.exists():
        result = call_entry_point(job.source, job.model_dir)
        model, example_in = (result if isinstance(result, tuple) else (result, None))[:2]
        return _from_keras(model, example_in, job)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ConfigError(f"{path}: not a SavedModel directory (no saved_model.pb)")
        return _from_saved_model(path, job)
    if path.suffix in {".keras", ".h5"}:
        keras = require("keras")
        try:
            with quiet():
                model = keras.models.load_model(str(path), safe_mode=True, compile=False)
        except Exception as exc:
            raise ConfigError(f"{path}: cannot load the Keras model ({first_line(exc)})",
                              hint="mx loads Keras files in safe mode: lambda layers with "
                                   "Python code are refused") from None
        return _from_keras(model, None, job)

    refuse_pickle(path)
    raise ConfigError(f"{path}: not a SavedModel directory, .keras/.h5 file or entry point",
                      hint="e.g. mx convert . saved_model/ --from tensorflow")


def _from_keras(model: Any, example_in: Any, job: ConvertJob) -> _Source:
    tf = require("tensorflow")
    if not hasattr(model, "inputs") or not callable(model):
        raise ConfigError(f"entry point {job.source!r} returned {type(model).__name__}, "
                          "not a Keras model")
    names = job.input_names or [str(i.name) for i in model.inputs]
    specs = [tf.TensorSpec(tuple(i.shape), tf.as_dtype(i.dtype), name=n)
             for i, n in zip(model.inputs, names, strict=True)]
    n_out = len(model.outputs)
    outputs = job.output_names or (["output"] if n_out == 1 else
                                   [f"output_{i}" for i in range(n_out)])

    def call(*args: Any) -> Any:
        out = model(list(args) if len(args) > 1 else args[0], training=False)
        return tuple(out) if isinstance(out, list | tuple) else (out,)

    function = tf.function(call, input_signature=specs)
    example = _example(example_in, names, specs, job)

    def reference(feeds: Feeds) -> list[Any]:
        return [np.asarray(t) for t in function(*(feeds[n] for n in names))]

    return _Source(function, specs, names, outputs, example, reference, keras_model=model)


def _from_saved_model(path: Path, job: ConvertJob) -> _Source:
    tf = require("tensorflow")
    with quiet():
        loaded = tf.saved_model.load(str(path))
    serving = loaded.signatures.get("serving_default")
    if serving is None:
        raise ConfigError(f"{path}: the SavedModel has no serving_default signature")
    in_specs = serving.structured_input_signature[1]
    names = sorted(in_specs)
    specs = [tf.TensorSpec(in_specs[n].shape, in_specs[n].dtype, name=n) for n in names]
    outputs = sorted(serving.structured_outputs)

    def call(*args: Any) -> Any:
        # Through `loaded`, not `serving` alone: the closure must keep the loaded object
        # (and so its variables) alive, or TensorFlow deletes them under the function.
        out = loaded.signatures["serving_default"](**dict(zip(names, args, strict=True)))
        return tuple(out[k] for k in outputs)

    function = tf.function(call, input_signature=specs)
    example = _example(None, names, specs, job)

    def reference(feeds: Feeds) -> list[Any]:
        return [np.asarray(t) for t in function(*(feeds[n] for n in names))]

    return _Source(function, specs, names, job.output_names or outputs, example, reference,
                   saved_model_dir=path)


def _example(example_in: Any, names: list[str], specs: list[Any], job: ConvertJob) -> Feeds:
    if job.data is not None:
        return dict(job.data)
    if isinstance(example_in, dict):
        return {str(k): np.asarray(v) for k, v in example_in.items()}
    if example_in is not None:
        seq = example_in if isinstance(example_in, list | tuple) else (example_in,)
        return {n: np.asarray(v) for n, v in zip(names, seq, strict=True)}
    spec_list = [Spec(Value(n, s.dtype.name,
                            tuple(d if d is not None else ("batch" if i == 0 else f"d{i}")
                                  for i, d in enumerate(s.shape.as_list()))))
                 for n, s in zip(names, specs, strict=True)]
    return generate(spec_list, batch=2)


def _export_saved_model(source: _Source, tmp: Path) -> Path:
    out = tmp / "saved_model"
    with quiet():
        try:
            if source.keras_model is not None and hasattr(source.keras_model, "export"):
                source.keras_model.export(str(out), format="tf_saved_model", verbose=False)
            else:
                require("tensorflow").saved_model.save(source.function, str(out))
        except Exception as exc:
            raise ConversionFailed(f"SavedModel export failed: {first_line(exc)}") from None
    return out


def write_tar(directory: Path, dest: Path) -> None:
    """A byte-reproducible tar: sorted entries, no owners, no times."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for p in sorted(directory.rglob("*")):
            info = tar.gettarinfo(str(p), arcname=str(p.relative_to(directory)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o755 if p.is_dir() else 0o644
            if p.is_file():
                with p.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)

