"""Whether a model runs on a target, as onnxruntime itself decides.

A table of kernels cannot say it: onnxruntime expands function operators it has no
kernel for, folds `Constant` into initializers, registers some kernels only for some
opsets and types, and rejects graphs its shape inference finds inconsistent. So the CPU
verdict is an `InferenceSession` on the CPU provider with graph optimizations disabled
(what loads there runs there); ORT Mobile's is the ORT-format conversion, the operators
onnxruntime's own tool reads out of the converted model, and the kernels the pre-built
package's reduced build keeps for them. Failures are onnxruntime's words, in one line,
with the node and operator where it names them.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path

from mx.check.targets import cpu_kernels
from mx.onnxinfo import save_ort_format

_PREFIX = re.compile(r"^\s*\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*([A-Z_]+)\s*:\s*")
_LOAD = re.compile(r"(Load model from|Exception during loading: ?)\s*\S*\s*(failed:)?\s*")
# onnxruntime's ways of naming the node an error is about
_NODE_PATTERNS = (
    re.compile(r"Could not find an implementation for (?P<op>[\w.]+)\((?P<ver>\d+)\) node "
               r"with name '(?P<node>[^']*)'"),
    re.compile(r"Node \((?P<node>[^)]*)\) Op \((?P<op>[^)]*)\)"),
    re.compile(r"In Node, \(\"(?P<node>[^\"]*)\", (?P<op>[\w.]+), \"(?P<domain>[^\"]*)\""),
    re.compile(r"node (?P<node>\S+) of type (?P<op>[\w.]+)"),
    re.compile(r"No Op registered for (?P<op>[\w.]+) with domain_version"),
    re.compile(r"[Nn]ode:\s*'?(?P<node>[^'\s]+)'?\s+[Oo]p:\s*'?(?P<op>[\w.]+)"),
)
LIMIT = 300


def ort_reason(exc: BaseException) -> str:
    """onnxruntime's error in one line: status code and load boilerplate dropped, the node
    and operator named first when the message names them."""
    text = " ".join(str(exc).split())
    text = _PREFIX.sub("", text)
    text = _LOAD.sub("", text, count=1).strip() or type(exc).__name__
    where = ""
    for pattern in _NODE_PATTERNS:
        found = pattern.search(text)
        if found:
            parts = found.groupdict()
            node = parts.get("node")
            where = (f"node {node!r} ({parts['op']}): " if node else f"{parts['op']}: ")
            break
    out = where + text
    return out if len(out) <= LIMIT else out[:LIMIT - 3] + "..."


def cpu_problem(path: Path) -> str | None:
    """None when onnxruntime's CPU provider builds a session for the model, else why not."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # Disabled optimizations: the verdict is about the graph as written, and a session
    # builds faster (no fusion passes over a large model).
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4
    try:
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types per status
        return ort_reason(exc)
    return None


def cuda_problem(path: Path) -> str | None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    opts.log_severity_level = 4
    try:
        ort.InferenceSession(str(path), opts, providers=["CUDAExecutionProvider"])
    except Exception as exc:
        return ort_reason(exc)
    return None


def mobile_problems(path: Path) -> list[str]:
    """Why the pre-built ORT Mobile package would not run the model (empty: it would)."""
    from onnxruntime.tools.ort_format_model.utils import create_config_from_models
    from onnxruntime.tools.reduced_build_config_parser import parse_config

    with tempfile.TemporaryDirectory(prefix="mx-mobile-") as tmp:
        ort_model = Path(tmp) / "model.ort"
        try:
            save_ort_format(path, ort_model)
        except Exception as exc:
            return [f"cannot convert to the ORT format: {ort_reason(exc)}"]
        config = Path(tmp) / "required.config"
        _quiet(lambda: create_config_from_models([ort_model], config, False))
        required, _ = parse_config(str(config))
    missing = [f"{op if domain == 'ai.onnx' else f'{domain}::{op}'} (since opset {opset})"
               for domain, by_opset in sorted(required.items())
               for opset, ops in sorted(by_opset.items()) for op in sorted(ops)
               if not _in_mobile_package(domain, opset, op)]
    if missing:
        return ["not in ORT Mobile's pre-built package (reduced operator build): "
                + ", ".join(missing)]
    return []


def _quiet(fn: Callable[[], object]) -> None:
    import logging

    log = logging.getLogger("ort_format_model.utils")  # says "Created config" at INFO
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        fn()
    finally:
        log.setLevel(level)


def _in_mobile_package(domain: str, opset: int, op: str) -> bool:
    """The reduced build keeps a kernel when the package config names the operator at an
    opset inside that kernel's version range: the model's opset must select one of them."""
    package = mobile_package().get((domain, op), set())
    if opset in package:
        return True

    for lo, hi in cpu_kernels().get((domain, op), []):
        if lo <= opset <= hi:
            return any(lo <= p <= hi for p in package)
    return False


@cache
def mobile_package() -> dict[tuple[str, str], set[int]]:
    """(domain, op) -> opsets, from the pre-built package's required_operators.config."""
    text = resources.files("mx.check").joinpath("data/ort-mobile.required_operators.config") \
        .read_text(encoding="utf-8")
    out: dict[tuple[str, str], set[int]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        domain, opsets, names = line.split(";", 2)
        for name in names.split(","):
            out.setdefault((domain, name), set()).update(int(o) for o in opsets.split(","))
    return out
