"""Run one conversion end to end: export, parity check, then mx.yaml and the file together."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx import onnxinfo
from mx.convert import CONVERTERS, SUFFIXES
from mx.convert.base import ConvertJob, first_line
from mx.convert.parity import ParityReport, compare
from mx.errors import ConfigError, ConversionFailed, MxError, ParityFailed
from mx.iocheck import io_problems
from mx.manifest import load_manifest
from mx.manifest_edit import ManifestChange, temp_path
from mx.names import DEFAULT_VARIANT
from mx.runtimes import runner_for
from mx.sampling import Feeds, Spec, like, load_npz


@dataclass
class ConvertOptions:
    framework: str | None = None
    target: str = "onnx"
    output: str | None = None  # artifact path inside the model directory
    variant: str = DEFAULT_VARIANT
    opset: int = 17
    atol: float | None = None
    rtol: float | None = None
    data: Path | None = None  # .npz of example inputs
    input_names: list[str] | None = None
    output_names: list[str] | None = None
    random_sets: int = 3  # random input sets beside the example, for parity


@dataclass
class ConvertResult:
    artifact: dict[str, Any]
    parity: ParityReport
    tool: str
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "parity": self.parity.to_json(), "tool": self.tool,
                "notes": self.notes}


def guess_framework(model_dir: Path, source: str, declared: str | None) -> str:
    path = model_dir / source
    if path.is_dir() and (path / "saved_model.pb").exists():
        return "tensorflow"
    if path.suffix in {".keras", ".h5"}:
        return "tensorflow"
    if path.suffix in {".pt", ".pth", ".ts", ".torchscript"}:
        return "pytorch"
    if declared and declared in CONVERTERS:
        return declared
    raise ConfigError(f"cannot tell which framework {source!r} is",
                      hint=f"say it with --from ({', '.join(CONVERTERS)}), or set "
                           "source.framework in mx.yaml")


def convert(model_dir: Path, source: str, opts: ConvertOptions) -> ConvertResult:
    loaded = load_manifest(model_dir)
    manifest = loaded.manifest
    declared = manifest.source.framework if manifest.source else None
    framework = opts.framework or guess_framework(model_dir, source, declared)
    converter = CONVERTERS.get(framework)
    if converter is None:
        raise ConfigError(f"--from {framework}: no such converter",
                          hint=f"converters: {', '.join(CONVERTERS)}")
    if opts.target not in converter.targets:
        raise ConfigError(f"--to {opts.target}: {framework} sources convert to "
                          f"{', '.join(converter.targets)}")
    rel = opts.output or ("model" + ("" if opts.variant == DEFAULT_VARIANT else f".{opts.variant}")
                          + SUFFIXES[opts.target])
    specs = [Spec.of(s) for s in manifest.signature.inputs] if manifest.signature else None
    data = load_npz(opts.data, specs, "example data") if opts.data and specs else (
        _plain_npz(opts.data) if opts.data else None)
    tmp = temp_path(model_dir, rel)
    change = ManifestChange(loaded)
    try:
        job = ConvertJob(source, model_dir, opts.target, tmp, opts.opset, opts.input_names,
                         opts.output_names, specs, data)
        converted = converter.convert(job)
        # Read an ONNX graph once: its output names (parity), opset and signature.
        graph = onnxinfo.load(tmp) if opts.target == "onnx" else None
        info = onnxinfo.describe(graph) if graph is not None else None
        report = _parity(opts, tmp, converted.reference, converted.example,
                         [o.name for o in info.outputs] if info else [])
        if not report.ok:
            worst = report.worst()
            detail = worst.problem or (f"max abs error {worst.max_abs:.3g} (atol "
                                       f"{worst.atol:g}), max rel error {worst.max_rel:.3g} "
                                       f"(rtol {worst.rtol:g})")
            raise ParityFailed(
                f"parity check failed: output {worst.name!r}: {detail} over "
                f"{report.input_sets} input sets; nothing was written",
                hint="loosen with --atol/--rtol only if the difference is expected")
        entry: dict[str, Any] = {"path": rel, "format": opts.target, "variant": opts.variant}
        if info is not None:
            if info.opset:
                entry["opset"] = info.opset
            _update_signature(change, graph, info)
        change.upsert_artifact(entry, tmp)
        change.set_source({"framework": framework,
                           "framework_version": converted.framework_version or None,
                           "entry": source, "converter": converted.tool})
        change.commit()
    except BaseException:
        change.discard()
        tmp.unlink(missing_ok=True)
        raise
    final = next(a for a in change.doc["artifacts"] if a.get("path") == rel)
    return ConvertResult(dict(final), report, converted.tool, converted.notes + change.messages)


def _parity(opts: ConvertOptions, tmp: Path, reference: Any, example: Feeds,
            names: list[str]) -> ParityReport:
    try:
        candidate = runner_for(opts.target, tmp)
    except MxError:
        raise
    except Exception as exc:

        raise ConversionFailed(f"the exported {opts.target} artifact does not load: "
                               f"{first_line(exc)}",
                               hint="an output name that clashes with an inner value is a "
                                    "common cause: try other --output-names") from None
    sets = [example, *like(example, count=opts.random_sets)]
    return compare(reference, candidate, sets, names, opts.atol, opts.rtol)


def _update_signature(change: ManifestChange, graph: Any, info: onnxinfo.GraphInfo) -> None:
    """Write the graph's signature, unless mx.yaml has one the graph agrees with."""

    sig = change.loaded.manifest.signature
    if sig is not None:
        problems = io_problems(graph, sig.inputs, sig.outputs)
        if not problems:
            return
        change.messages.append("signature replaced by the converted graph's: " + problems[0])
    change.set_signature(info.signature())


def _plain_npz(path: Path) -> Feeds:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise ConfigError(f"{path}: cannot read as .npz ({type(exc).__name__}: {exc})") \
            from None
