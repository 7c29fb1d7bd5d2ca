"""`mx bench`: measure artifacts of a model and add the results to its results file."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx.bench import measure as m
from mx.bench import results
from mx.bench.backends import backend_for
from mx.errors import ConfigError
from mx.manifest import Artifact, load_manifest
from mx.manifest_edit import ManifestChange
from mx.sampling import Spec, batch_axes

DEFAULT_RESULTS = "bench/results.json"


@dataclass
class BenchOptions:
    variants: list[str] = field(default_factory=list)  # variant labels or artifact paths
    device: str = "cpu"
    batches: list[int] = field(default_factory=lambda: [1])
    threads: int = 0
    dims: dict[str, int] = field(default_factory=dict)
    warmup: int = 5
    iterations: int = 50
    min_seconds: float = 1.0
    batch_axes: dict[str, int] = field(default_factory=dict)  # --batch-axis NAME=AXIS


def select(artifacts: list[Artifact], wanted: list[str]) -> list[Artifact]:
    runnable = [a for a in artifacts if backend_for(str(a.format)) is not None]
    if not wanted:
        return runnable
    out = []
    for w in wanted:
        found = [a for a in runnable if a.variant == w or a.path == w]
        if not found:
            have = ", ".join(sorted({a.variant for a in runnable})) or "none"
            raise ConfigError(f"--variant {w}: no runnable artifact with that variant or path",
                              hint=f"variants here: {have}")
        out += [a for a in found if a not in out]
    return out


def bench(model_dir: Path, opts: BenchOptions) -> tuple[Path, list[dict[str, Any]]]:
    loaded = load_manifest(model_dir)
    man = loaded.manifest
    arts = select(man.artifacts, opts.variants)
    if not arts:
        raise ConfigError(f"{loaded.path}: no artifact a bench backend runs (onnx, ort, "
                          "torchscript)")
    if man.signature is None:
        raise ConfigError(f"{loaded.path}: no signature; mx bench makes inputs from it",
                          hint="`mx convert` writes one, or add it by hand")
    specs = [s.to_tuple() for s in batch_axes([Spec.of(t) for t in man.signature.inputs],
                                              opts.batch_axes)]
    rel = man.benchmarks or DEFAULT_RESULTS
    out_path = model_dir / rel
    doc = results.load(out_path, man.name)
    measured: list[dict[str, Any]] = []
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    for art in arts:
        path = model_dir / art.path
        if not path.is_file():
            raise ConfigError(f"{path}: not in the working tree",
                              hint="run `git lfs pull` if it is an LFS pointer")
        for batch in opts.batches:
            job = m.BenchJob(str(path), str(art.format), opts.device, batch, opts.threads,
                             opts.dims, specs, opts.warmup, opts.iterations, opts.min_seconds)
            raw = m.measure(job)
            hw = m.hardware(raw)
            result = {"artifact": art.path, "format": str(art.format), "variant": art.variant,
                      "sha256": art.sha256, "size": path.stat().st_size, "batch": batch,
                      "threads": opts.threads, "shape": dict(sorted(opts.dims.items())),
                      "measured_at": now,
                      **{k: raw[k] for k in ("latency_ms", "throughput", "iterations",
                                             "load_time_ms", "peak_memory_mb",
                                             "model_memory_mb")}}
            results.merge(doc, m.hardware_key(hw), hw, result)
            measured.append({"hardware": m.hardware_key(hw), **result})
    results.save(out_path, doc)
    if man.benchmarks is None:
        change = ManifestChange(loaded)
        change.set_value("benchmarks", rel)
        change.commit()
    return out_path, measured


def compare_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (hardware, artifact, batch), with ratios against the fp32 ONNX row."""
    rows = []
    for key, entry in doc["hardware"].items():
        base: dict[tuple[int, str], dict[str, Any]] = {}
        for r in entry["results"]:
            if r["variant"] == "fp32" and r["format"] == "onnx":
                base[(r["batch"], r["threads"])] = r
        for r in entry["results"]:
            b = base.get((r["batch"], r["threads"]))
            rows.append({"hardware": key, **r,
                         "p50_ratio": r["latency_ms"]["p50"] / b["latency_ms"]["p50"] if b
                         else None,
                         "size_ratio": r["size"] / b["size"] if b else None})
    return rows
