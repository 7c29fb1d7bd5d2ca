"""Make variants of an ONNX artifact, measure each against its parent, record them.

All or nothing: every variant is written to a temp file and measured first; if one fails
or falls below `--min-quality`, none is kept and mx.yaml is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx import onnxinfo
from mx.check.verdict import ort_reason
from mx.cpufeatures import describe, measured_on
from mx.errors import ConfigError, MxError, QualityTooLow
from mx.manifest import Artifact, load_manifest
from mx.manifest_edit import ManifestChange, temp_path
from mx.optimize import quality
from mx.optimize.transforms import TRANSFORMS, TransformContext
from mx.runtimes import onnx_runner
from mx.sampling import Feeds, Spec, batch_axes, generate, load_npz, split_batches

QUALITY_BATCH = 8
GENERATED_BATCHES = 4



@dataclass
class OptimizeOptions:
    transforms: list[str]
    parent: str | None = None  # artifact path; default the fp32 ONNX artifact
    data: Path | None = None  # .npz inputs for quality (and calibration if none given)
    calibration: Path | None = None
    metric: str | None = None
    min_quality: float | None = None
    max_error: float | None = None
    dims: dict[str, int] = field(default_factory=dict)
    batch_axes: dict[str, int] = field(default_factory=dict)  # --batch-axis NAME=AXIS


@dataclass
class VariantResult:
    artifact: dict[str, Any]
    quality: quality.QualityResult
    parent_size: int

    def to_json(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "size_ratio": self.artifact["size"] /
                max(self.parent_size, 1)}


def parse_transform(spec: str) -> tuple[str, str | None]:
    name, _, arg = spec.partition(":")
    if name not in TRANSFORMS:
        raise ConfigError(f"--transform {spec}: no such transform",
                          hint=f"transforms: {', '.join(TRANSFORMS)}")
    return name, arg or None


def pick_parent(artifacts: list[Artifact], wanted: str | None) -> Artifact:
    if wanted:
        for a in artifacts:
            if a.path == wanted:
                if a.format != "onnx":
                    raise ConfigError(f"--from {wanted}: is {a.format}; variants are made from "
                                      "ONNX artifacts")
                return a
        raise ConfigError(f"--from {wanted}: no such artifact in mx.yaml")
    onnx_arts = [a for a in artifacts if a.format == "onnx"]
    if not onnx_arts:
        raise ConfigError("mx.yaml lists no ONNX artifact to optimize",
                          hint="convert one first with `mx convert`")
    return next((a for a in onnx_arts if a.variant == "fp32"), onnx_arts[0])


def optimize(model_dir: Path, opts: OptimizeOptions) -> tuple[list[VariantResult], list[str]]:
    if not opts.transforms:
        raise ConfigError("no transform given", hint=f"e.g. -t int8-dynamic; transforms: "
                                                      f"{', '.join(TRANSFORMS)}")
    loaded = load_manifest(model_dir)
    m = loaded.manifest
    parent = pick_parent(m.artifacts, opts.parent)
    parent_path = model_dir / parent.path
    if not parent_path.is_file():
        raise ConfigError(f"{parent_path}: the artifact is not in the working tree",
                          hint="run `git lfs pull` if it is an LFS pointer")
    specs = batch_axes(_input_specs(m, parent_path), opts.batch_axes)
    metric = opts.metric or quality.metric_for(m.task)
    if metric not in quality.METRICS:
        raise ConfigError(f"--metric {metric}: one of {', '.join(quality.METRICS)}")
    warnings: list[str] = []
    batches = _quality_batches(opts, specs)
    calib, calib_source = _calibration(opts, specs, batches, warnings)
    parent_run = _runner(parent_path)
    expected = {id(b): parent_run(b) for b in batches}
    where = measured_on()
    change = ManifestChange(loaded)
    results: list[VariantResult] = []
    temps: list[Path] = []
    try:
        for spec in opts.transforms:
            name, arg = parse_transform(spec)
            t = TRANSFORMS[name]
            ctx = TransformContext(arg, calib, calib_source, warnings)
            variant = t.variant(ctx) or parent.variant
            stem = parent.path.rsplit(".", 1)[0] if "." in parent.path else parent.path
            rel = f"{stem}.ort" if t.fmt == "ort" else f"{stem}.{variant}.onnx"
            if parent.variant != "fp32" and t.fmt != "ort":
                variant = f"{parent.variant}-{variant}"
            tmp = temp_path(model_dir, rel)
            temps.append(tmp)
            transform = t.apply(parent_path, tmp, ctx)
            q = quality.measure(metric, lambda feeds: expected[id(feeds)], _runner(tmp),
                                batches)
            _judge(q, opts, f"variant {variant} ({name})", parent.path, where, warnings)
            entry: dict[str, Any] = {"path": rel, "format": t.fmt, "variant": variant,
                                     "derived_from": parent.path, "transform": transform,
                                     "quality": {"metric": metric, "value": round(q.value, 6),
                                                 "against": parent.path,
                                                 "samples": q.samples,
                                                 "measured_on": where}}
            if t.fmt == "onnx":

                opset = onnxinfo.describe(onnxinfo.load(tmp)).opset
                if opset:
                    entry["opset"] = opset
            change.upsert_artifact(entry, tmp)
            ratio = tmp.stat().st_size / max(parent_path.stat().st_size, 1)
            if transform.get("kind") in ("quantize", "cast") and ratio >= 1:
                # onnxruntime's quantizer leaves If/Loop bodies as they are
                warnings.append(f"variant {variant} ({name}) is {ratio:.2f}x the size of "
                                f"{parent.path}: the transform changed few weights (those "
                                "inside If/Loop subgraphs are left as they were)")
            results.append(VariantResult(entry, q, parent_path.stat().st_size))
        change.commit()
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    final = {str(a.get("path")): dict(a) for a in change.doc["artifacts"]}
    for r in results:
        r.artifact = final[str(r.artifact["path"])]
    return results, warnings


def _runner(path: Path) -> Any:
    try:
        return onnx_runner(path)
    except MxError:
        raise
    except Exception as exc:  # onnxruntime's own exception types

        raise MxError(f"{path}: onnxruntime cannot load it: {ort_reason(exc)}") from None


def _judge(q: quality.QualityResult, opts: OptimizeOptions, what: str, against: str,
           where: dict[str, Any], warnings: list[str]) -> None:
    """Refuse a variant below the asked quality; flag one whose error is large for its task
    (and refuse it under --min-quality, which a max_abs_error metric otherwise ignores)."""
    on = f"measured on {describe(where)}"
    hint = "give representative inputs with --data, or drop the transform"
    if not q.passes(opts.min_quality, opts.max_error):
        bound = (f"--min-quality {opts.min_quality}" if q.higher_is_better
                 else f"--max-error {opts.max_error}")
        raise QualityTooLow(f"{what}: {q.metric} {q.value:.4f} against {against} misses "
                            f"{bound} ({on}); nothing was written", hint=hint)
    why = q.large()
    if why is None:
        return
    if opts.min_quality is not None and not q.higher_is_better and opts.max_error is None:
        raise QualityTooLow(f"{what}: {why} against {against} ({on}); --min-quality "
                            f"{opts.min_quality} refuses a large error; nothing was written",
                            hint="set the bound you accept with --max-error, or " + hint)
    warnings.append(f"{what}: {why} against {against} ({on})")


def _input_specs(m: Any, parent_path: Path) -> list[Spec]:
    if m.signature is not None:
        return [Spec.of(s) for s in m.signature.inputs]

    return [Spec(t) for t in onnxinfo.describe(onnxinfo.load(parent_path)).inputs]


def _quality_batches(opts: OptimizeOptions, specs: list[Spec]) -> list[Feeds]:
    if opts.data is not None:
        batches = split_batches(load_npz(opts.data, specs, "data"), QUALITY_BATCH, specs)
        if not batches:
            raise ConfigError(f"{opts.data}: holds no rows")
        return batches
    dims = _default_dims(specs, opts.dims)
    return [generate(specs, dims, QUALITY_BATCH, seed=1000 + i) for i in range(GENERATED_BATCHES)]


def _calibration(opts: OptimizeOptions, specs: list[Spec], batches: list[Feeds],
                 warnings: list[str]) -> tuple[list[Feeds], str]:
    static = any(parse_transform(t)[0] == "int8-static" for t in opts.transforms)
    if opts.calibration is not None:
        feeds = load_npz(opts.calibration, specs, "calibration")
        return split_batches(feeds, QUALITY_BATCH, specs), opts.calibration.name
    if opts.data is not None:
        return batches, opts.data.name
    if static:
        warnings.append("int8-static calibrates on generated inputs; give --calibration "
                        "FILE.npz with representative data for a model worth shipping")
    return batches, "generated"


def _default_dims(specs: list[Spec], given: dict[str, int]) -> dict[str, int]:
    """Symbolic dims other than the batch: 16 unless --shape says (a sequence length)."""
    dims = dict(given)
    for s in specs:
        for axis, d in enumerate(s.shape or []):
            if isinstance(d, str) and axis != s.batch_axis:
                dims.setdefault(d, 16)
    return dims
