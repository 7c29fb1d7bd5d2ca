"""Architecture checks on one ONNX file: versions, operators, dims, size, and a summary.

Kept free of printing: `mx check` and `mx validate` turn the findings into lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx import onnxinfo
from mx.check import verdict
from mx.check.targets import Target, installed_version
from mx.iocheck import io_problems

PROTOBUF_LIMIT = 2 * 1024**3


@dataclass
class Finding:
    severity: str  # error | warning
    message: str
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "message": self.message, "target": self.target}


@dataclass
class ArchReport:
    path: Path
    size: int
    info: onnxinfo.GraphInfo | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def op_table(self) -> list[tuple[str, str, int]]:
        if self.info is None:
            return []
        return sorted(((d, op, n) for (d, op), n in self.info.op_counts.items()),
                      key=lambda r: (-r[2], r[0], r[1]))

    def to_json(self) -> dict[str, Any]:
        info = self.info
        return {
            "path": str(self.path), "size": self.size, "ok": self.ok,
            "findings": [f.to_json() for f in self.findings],
            **({"ir_version": info.ir_version, "opsets": info.opsets,
                "parameters": info.parameters, "external_data": info.external_data,
                "operators": [{"domain": d, "op_type": op, "count": n}
                              for d, op, n in self.op_table()]} if info else {}),
        }


def check_onnx(path: Path, targets: list[Target], inputs: list[Any] | None = None,
               outputs: list[Any] | None = None) -> ArchReport:
    size = path.stat().st_size
    report = ArchReport(path, size, None)
    if size > PROTOBUF_LIMIT:
        report.findings.append(Finding(
            "error", f"the model is {size / 1024**3:.2f} GiB in one file; protobuf caps an "
                     "ONNX file at 2 GiB: save the weights as external data "
                     "(onnx.save(model, path, save_as_external_data=True))"))
        return report
    model = onnxinfo.load(path)
    info = onnxinfo.describe(model)
    report.info = info
    inline = sum(len(t.raw_data) for t in model.graph.initializer)
    if inline > PROTOBUF_LIMIT * 0.9 and not info.external_data:
        report.findings.append(Finding(
            "error", f"{inline / 1024**3:.2f} GiB of weights inside the graph; near the 2 GiB "
                     "protobuf limit: use external data"))
    if inputs is not None and outputs is not None:
        report.findings += [Finding("error", p) for p in io_problems(model, inputs, outputs)]
    for target in targets:
        # For the installed onnxruntime its session is the authority; the compatibility
        # table speaks for the versions that are not here.
        if target.version != installed_version():
            report.findings += _versions(info, target)
        report.findings += _operators(path, info, target)
    return report


def _versions(info: onnxinfo.GraphInfo, target: Target) -> list[Finding]:
    out = []
    if info.ir_version > target.max_ir:
        out.append(Finding("error", f"IR version {info.ir_version} is newer than onnxruntime "
                                    f"{target.version[0]}.{target.version[1]} reads "
                                    f"(up to {target.max_ir})", target.label))
    if info.opset and info.opset > target.max_opset:
        out.append(Finding("error", f"opset {info.opset} is newer than onnxruntime "
                                    f"{target.version[0]}.{target.version[1]} implements "
                                    f"(up to {target.max_opset}); re-export with "
                                    f"--opset {target.max_opset}", target.label))
    return out


def _operators(path: Path, info: onnxinfo.GraphInfo, target: Target) -> list[Finding]:
    """onnxruntime's own verdict (mx.check.verdict); the operator table is information."""

    here = installed_version()
    if target.kind == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return [Finding("warning", "operators not checked for CUDA: this onnxruntime has "
                                       "no CUDA provider (run the check where onnxruntime-gpu "
                                       "is)", target.label)]
        problem = verdict.cuda_problem(path)
        problems = [f"cannot run entirely on CUDA: {problem}"] if problem else []
    elif target.kind == "mobile":
        problems = verdict.mobile_problems(path)
    else:
        problem = verdict.cpu_problem(path)
        problems = [f"onnxruntime {here[0]}.{here[1]} cannot load it on CPU: {problem}"] \
            if problem else []
    out = [Finding("error", p, target.label) for p in problems]
    if target.version != here:
        out.append(Finding("warning", f"onnxruntime {here[0]}.{here[1]} (installed here) "
                                      f"judged the operators, not {target.version[0]}."
                                      f"{target.version[1]}: run the check with that version "
                                      "for its verdict", target.label))
    return out
