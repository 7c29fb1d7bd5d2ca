"""An edge bundle: ORT-format models, the reduced operator config for a minimal
onnxruntime build, the int8 variant, and TFLite for TensorFlow-sourced models.

Layout: `model.ort`, `model.int8.ort`, `required_operators.config` (covering both, in the
format onnxruntime's `--include_ops_by_config` build option reads), `model.tflite` when
the release has one, and `edge.json` listing every file with its digest.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from mx.export.base import ExportOptions, ModelSource, digest
from mx.optimize.transforms import DynamicInt8, OrtFormat, TransformContext

CONFIG = "required_operators.config"


def _ort(source: ModelSource, variant: str, onnx: Path, dest: Path) -> None:
    if source.has("ort", variant):  # the release ships it: keep the author's conversion
        shutil.copyfile(source.fetch("ort", variant), dest)
    else:
        OrtFormat().apply(onnx, dest, TransformContext())


def _int8_onnx(source: ModelSource, tmp: Path, notes: list[str]) -> Path:
    if source.has("onnx", "int8"):
        return source.fetch("onnx", "int8")
    out = tmp / "model.int8.onnx"
    DynamicInt8().apply(source.onnx, out, TransformContext())
    notes.append(f"{source.name} {source.version} has no int8 variant: quantized here "
                 "(dynamic, u8 activations and weights, per channel); measure it with "
                 "`mx optimize` in the model's repository to record its quality")
    return out


def write_operator_config(models: list[Path], dest: Path) -> None:
    import logging

    from onnxruntime.tools.ort_format_model.utils import create_config_from_models

    tool_log = logging.getLogger("ort_format_model.utils")  # says "Created config" at INFO
    level = tool_log.level
    tool_log.setLevel(logging.WARNING)
    try:
        create_config_from_models(models, dest, enable_type_reduction=False)
    finally:
        tool_log.setLevel(level)
    # the tool lists the models by the (temporary) paths it was given; keep their names
    lines = dest.read_text().splitlines()
    kept = [f"# - {Path(line[4:]).name}" if line.startswith("# - ") else line for line in lines]
    dest.write_text("\n".join(kept) + "\n")


class EdgeExporter:
    name = "edge"

    def destination(self, source: ModelSource, out: Path, opts: ExportOptions) -> Path:
        return out

    def write(self, source: ModelSource, stage: Path, opts: ExportOptions) -> list[str]:
        import onnxruntime as ort

        notes: list[str] = []
        files = {"model.ort": ("ort", source.variant)}
        _ort(source, source.variant, source.onnx, stage / "model.ort")
        if opts.int8 and source.variant != "int8":
            with tempfile.TemporaryDirectory(dir=stage) as tmp:
                _ort(source, "int8", _int8_onnx(source, Path(tmp), notes),
                     stage / "model.int8.ort")
            files["model.int8.ort"] = ("ort", "int8")
        write_operator_config([stage / f for f in files], stage / CONFIG)
        if source.framework == "tensorflow":
            tflite = source.variants("tflite")
            if tflite:
                variant = source.variant if source.variant in tflite else tflite[0]
                shutil.copyfile(source.fetch("tflite", variant), stage / "model.tflite")
                files["model.tflite"] = ("tflite", variant)
            else:
                notes.append(f"{source.name} {source.version} is TensorFlow-sourced but has no "
                             "TFLite artifact: `mx convert --to tflite` in its repository "
                             "adds one")
        listing = {name: {"format": fmt, "variant": var, **digest(stage / name)}
                   for name, (fmt, var) in files.items()}
        listing[CONFIG] = {"format": "operator-config", **digest(stage / CONFIG)}
        doc = {"model": source.name, "version": source.version, "onnxruntime": ort.__version__,
               "files": listing}
        (stage / "edge.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return notes
