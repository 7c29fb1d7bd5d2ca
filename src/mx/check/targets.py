"""Runtimes a model can be checked against: which IR, opsets and operators each runs.

- `cpu[@VERSION]`: onnxruntime's CPU provider: the installed onnxruntime builds a session
  for the model (mx.check.verdict), which is exact for that version.
- `cuda[@VERSION]`: onnxruntime's CUDA provider: the graph is placed on CUDA with CPU
  fallback disabled, which needs onnxruntime-gpu and a GPU; where there is none the check
  says it was not done (never a silent pass).
- `mobile[@VERSION]` (or `ort-mobile`): the ORT-format conversion and the pre-built ORT
  Mobile package's reduced operator build.
For a version other than the installed one, IR and opset limits come from onnxruntime's
compatibility table (docs/Versioning.md and onnxruntime.ai/docs/reference/compatibility.html)
and the installed onnxruntime judges the operators, with a warning saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from mx.errors import ConfigError

# onnxruntime minor version -> (highest ai.onnx opset, highest IR version)
ORT_COMPAT: dict[tuple[int, int], tuple[int, int]] = {
    (1, 10): (15, 8), (1, 11): (16, 8), (1, 12): (17, 8), (1, 13): (17, 8),
    (1, 14): (18, 8), (1, 15): (19, 9), (1, 16): (19, 9), (1, 17): (20, 9),
    (1, 18): (21, 10), (1, 19): (21, 10), (1, 20): (21, 10), (1, 21): (22, 10),
    (1, 22): (22, 11), (1, 23): (23, 11),
}
KINDS = ("cpu", "cuda", "mobile")
ALIASES = {"ort-mobile": "mobile"}


@dataclass(frozen=True)
class Target:
    kind: str  # cpu | cuda | mobile
    version: tuple[int, int]
    max_opset: int
    max_ir: int

    @property
    def label(self) -> str:
        return f"{self.kind}@{self.version[0]}.{self.version[1]}"


def installed_version() -> tuple[int, int]:
    import onnxruntime as ort

    major, minor = ort.__version__.split(".")[:2]
    return int(major), int(minor)


def parse_target(text: str) -> Target:
    kind, _, ver = text.partition("@")
    kind = ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise ConfigError(f"--target {text}: unknown runtime {kind!r}",
                          hint=f"targets: {', '.join(KINDS)}, optionally @VERSION (cpu@1.17)")
    version = installed_version()
    if ver:
        parts = ver.split(".")
        if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
            raise ConfigError(f"--target {text}: the version is onnxruntime's MAJOR.MINOR")
        version = (int(parts[0]), int(parts[1]))
    return target_for(kind, version)


def target_for(kind: str, version: tuple[int, int]) -> Target:
    if version in ORT_COMPAT:
        opset, ir = ORT_COMPAT[version]
    elif version == installed_version() or version > max(ORT_COMPAT):
        opset, ir = live_limits()
    else:
        raise ConfigError(f"onnxruntime {version[0]}.{version[1]} is older than the versions "
                          "mx knows (1.10 and later)")
    return Target(kind, version, opset, ir)


@cache
def live_limits() -> tuple[int, int]:
    """The installed onnxruntime's highest opset (from its kernels) and the IR onnx writes."""
    import onnx
    import onnxruntime.capi._pybind_state as C

    opset = max(k.version_range[0] for k in C.get_all_opkernel_def() if k.domain == "")
    return int(opset), int(onnx.IR_VERSION)


@cache
def cpu_kernels() -> dict[tuple[str, str], list[tuple[int, int]]]:
    import onnxruntime.capi._pybind_state as C

    out: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for k in C.get_all_opkernel_def():
        if k.provider != "CPUExecutionProvider":
            continue
        domain = "ai.onnx" if k.domain in ("", "ai.onnx") else k.domain
        out.setdefault((domain, k.op_name), []).append(tuple(k.version_range))
    return out
