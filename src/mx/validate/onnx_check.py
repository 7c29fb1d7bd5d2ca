"""ONNX artifacts: external data stays inside, `onnx.checker` passes, I/O matches `signature`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mx import onnxinfo, yamlio
from mx.check.arch import PROTOBUF_LIMIT, check_onnx
from mx.check.targets import ORT_COMPAT, installed_version, target_for
from mx.errors import ConfigError
from mx.fsutil import resolve_inside, unsafe_relpath_reason
from mx.iocheck import io_problems
from mx.manifest import LoadedManifest, TensorSpec
from mx.manifest_edit import ManifestChange
from mx.semver import InvalidVersion, Range, Version
from mx.validate import Problem
from mx.validate.files import Digests


def check(loaded: LoadedManifest, digests: Digests) -> list[Problem]:
    problems: list[Problem] = []
    m = loaded.manifest
    model_dir = loaded.path.parent
    for i, art in enumerate(m.artifacts):
        if art.format != "onnx" or art.path not in digests:
            continue
        line = yamlio.line_of(loaded.doc, ("artifacts", i, "path"))
        where = str(loaded.path)
        messages = check_file(model_dir, art.path, m.signature.inputs if m.signature else None,
                              m.signature.outputs if m.signature else None, art.opset)
        for msg in messages:
            problems.append(Problem(where, line, f"artifacts[{i}] {art.path}: {msg}"))
        if not messages:
            problems += _architecture(loaded, i, line)
    return problems


def fill_signature(loaded: LoadedManifest, digests: Digests,
                   write: bool) -> tuple[Problem | None, LoadedManifest]:
    """A manifest without `signature`: with --write, take it from the ONNX artifact's graph
    (the fp32 one first), e.g. for a copied-in ONNX file; without, say that --write would."""
    arts = [(i, a) for i, a in enumerate(loaded.manifest.artifacts)
            if a.format == "onnx" and a.path in digests]
    if not arts:
        return None, loaded
    i, art = next(((i, a) for i, a in arts if a.variant == "fp32"), arts[0])
    line = yamlio.line_of(loaded.doc, ("artifacts", i, "path"))
    where = str(loaded.path)
    if not write:
        return Problem(where, line, f"no signature: `mx validate --write` fills it from the "
                                    f"graph of artifacts[{i}] {art.path}", "warning"), loaded

    try:
        signature = onnxinfo.describe(onnxinfo.load(loaded.path.parent / art.path)).signature()
        change = ManifestChange(loaded)
        change.set_signature(signature)
        _, manifest = change.new_text()
    except ConfigError as exc:
        return Problem(where, line, f"artifacts[{i}] {art.path}: cannot fill the signature "
                                    f"from its graph: {exc}"), loaded
    except Exception:  # unreadable: check_file reports it, in its words
        return None, loaded
    return None, LoadedManifest(manifest, loaded.path, loaded.text, loaded.doc,
                                loaded.warnings)


def _architecture(loaded: LoadedManifest, i: int, line: int | None) -> list[Problem]:
    """IR, opset and operators against the oldest onnxruntime `runtime` admits (else the
    installed one): a model that says `onnxruntime: ">=1.17"` must run on 1.17."""

    art = loaded.manifest.artifacts[i]
    target = target_for("cpu", _oldest_runtime(loaded, line))
    report = check_onnx(loaded.path.parent / art.path, [target])
    return [Problem(str(loaded.path), line, f"artifacts[{i}] {art.path}: {f.target}: "
                    f"{f.message}", "error" if f.severity == "error" else "warning")
            for f in report.findings]


def _oldest_runtime(loaded: LoadedManifest, line: int | None) -> tuple[int, int]:

    wanted = loaded.manifest.runtime.get("onnxruntime")
    if not wanted:
        return installed_version()
    try:
        rng = Range.parse(wanted)
    except (InvalidVersion, ValueError):
        return installed_version()
    for major, minor in sorted(ORT_COMPAT):
        if rng.contains(Version.parse(f"{major}.{minor}.0")) or \
                rng.contains(Version.parse(f"{major}.{minor}.99")):
            return (major, minor)
    return installed_version()


def check_file(model_dir: Path, rel: str, inputs: list[TensorSpec] | None,
               outputs: list[TensorSpec] | None, opset: int | None) -> list[str]:
    import onnx

    path = model_dir / rel

    if path.stat().st_size > PROTOBUF_LIMIT:
        return [f"{path.stat().st_size / 1024**3:.2f} GiB in one file; protobuf caps an ONNX "
                "file at 2 GiB: save the weights as external data"]
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        return [f"not a readable ONNX model ({type(exc).__name__}: {exc})"]
    out = _external_data_problems(model, model_dir, path.parent)
    if out:
        return out  # never let the checker follow a location that leaves the directory
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [f"onnx.checker: {first}"]
    if opset is not None:
        actual = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if actual is not None and actual != opset:
            out.append(f"opset is {actual} but mx.yaml says {opset}")
    return out + io_problems(model, inputs, outputs)


def _external_data_problems(model: Any, model_dir: Path, base: Path) -> list[str]:
    import onnx

    out = []
    for tensor in _all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        reason = unsafe_relpath_reason(location)
        inside = None if reason else resolve_inside(model_dir, str((base / location)
                                                              .relative_to(model_dir)))
        if reason or inside is None:
            out.append(f"tensor {tensor.name!r} keeps its data at {location!r}, outside the "
                       "model directory; external data must stay beside the model")
    return out


def _all_tensors(model: Any) -> list[Any]:
    from onnx.external_data_helper import _get_all_tensors

    return list(_get_all_tensors(model))
