"""`mx check -t cpu` against onnxruntime itself, over ONNX's own backend test corpus.

The corpus, generated offline: every node test case of the installed onnx
(`onnx.backend.test.case.node`, written out as `onnx.backend.test.cmd_tools.generate_data`
lays out its model cases: `<kind>/<name>/model.onnx` and `test_data_set_0/input_*.pb`)
and the models onnx ships in `onnx/backend/test/data` (simple, pytorch-converted,
pytorch-operator, light). For each model, mx's verdict (`check_onnx` for the installed
onnxruntime's CPU target) is compared with onnxruntime's: a session with default options
that runs the model on its test data. Prints the agreement, every disagreement and every
crash (an exception out of mx).

    .venv/bin/python bench/onnx_conformance.py [--limit N] [--legacy] [--show N]

`--legacy` also scores the operator-table verdict mx used before (kernel registry plus
the compatibility table), for comparison. Goal: agreement >= 99.5%, zero crashes.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

GOAL = 0.995
SHIPPED_KINDS = ("simple", "pytorch-converted", "pytorch-operator", "light")
# The fixed sample the test suite runs: modules of onnx.backend.test.case.node (only
# these are generated), at most SAMPLE_PER_MODULE evenly spaced cases of each by name.
# Constant (no kernel: onnxruntime folds it), CastLike, Mish, HardSwish, Swish and
# GroupNormalization (functions it expands), kernels registered for some opsets and types
# only (float8 casts, DequantizeLinear, ConvInteger), control flow and optionals.
SAMPLE_MODULES = ("constant", "castlike", "mish", "hardswish", "swish",
                  "groupnormalization", "if_", "optionalgetelement", "matmulinteger",
                  "dequantizelinear", "gather", "convinteger", "reducemax")
SAMPLE_PER_MODULE = 8
# Models onnxruntime loads and then refuses to run on their test data only: no check
# without those inputs can see it (an empty bool ReduceMax, ConvInteger padding with a
# zero point, an Attention mask shape).
RUNTIME_ONLY = {"test_reduce_max_empty_set_bool", "test_convinteger_with_padding",
                "test_attention_4d_diff_heads_mask4d_padded_kv"}


@dataclass
class Case:
    kind: str  # node | simple | pytorch-converted | ...
    name: str
    model: Any  # onnx.ModelProto
    inputs: list[Any]  # test_data_set_0, in graph input order


@dataclass
class Outcome:
    case: Case
    mx_ok: bool | None  # None: mx crashed
    ort_ok: bool
    mx_reason: str
    ort_reason: str
    legacy_ok: bool | None = None


def node_cases() -> list[Case]:
    """Every node test case of the installed onnx."""
    import onnx.backend.test.case.node as node

    cases = node.collect_testcases()
    return [Case("node", c.name, c.model, list(c.data_sets[0][0])) for c in cases
            if c.model is not None and c.data_sets]


def sample_cases() -> list[Case]:
    """The test suite's deterministic sample (generated in this process, module by module)."""
    import onnx.backend.test.case.node as node

    out: list[Case] = []
    for mod in SAMPLE_MODULES:
        before = len(node._NodeTestCases)
        importlib.import_module(f"onnx.backend.test.case.node.{mod}")
        made = sorted(node._NodeTestCases[before:], key=lambda c: c.name)
        step = max(1, len(made) / SAMPLE_PER_MODULE)
        picked = [made[int(i * step)] for i in range(min(len(made), SAMPLE_PER_MODULE))]
        out += [Case("node", c.name, c.model, list(c.data_sets[0][0])) for c in picked]
    return out


def shipped_cases() -> list[Case]:
    import onnx
    from onnx.backend.test.cmd_tools import DATA_DIR

    out = []
    for kind in SHIPPED_KINDS:
        base = Path(DATA_DIR) / kind
        for entry in sorted(base.iterdir()):
            if entry.is_dir() and (entry / "model.onnx").is_file():
                model = onnx.load(str(entry / "model.onnx"))
                out.append(Case(kind, entry.name, model, _read_inputs(model, entry)))
            elif entry.suffix == ".onnx":  # light_*.onnx: a model without inputs on disk
                model = onnx.load(str(entry))
                out.append(Case(kind, entry.stem, model, _zeros(model)))
    return out


def _read_inputs(model: Any, folder: Path) -> list[Any]:
    import onnx
    from onnx import numpy_helper

    data = folder / "test_data_set_0"
    values = []
    inputs = _graph_inputs(model)
    for i, vi in enumerate(inputs):
        raw = (data / f"input_{i}.pb").read_bytes() if (data / f"input_{i}.pb").is_file() \
            else None
        if raw is None:
            return _zeros(model)
        which = vi.type.WhichOneof("value")
        if which == "sequence_type":
            seq = onnx.SequenceProto()
            seq.ParseFromString(raw)
            values.append(numpy_helper.to_list(seq))
        elif which == "optional_type":
            opt = onnx.OptionalProto()
            opt.ParseFromString(raw)
            values.append(numpy_helper.to_optional(opt))
        elif which == "map_type":
            mp = onnx.MapProto()
            mp.ParseFromString(raw)
            values.append(numpy_helper.to_dict(mp))
        else:
            t = onnx.TensorProto()
            t.ParseFromString(raw)
            values.append(t)
    return values


def _graph_inputs(model: Any) -> list[Any]:
    inits = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def _zeros(model: Any) -> list[Any]:
    from onnx import helper

    out = []
    for vi in _graph_inputs(model):
        t = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]
        out.append(np.zeros(shape, helper.tensor_dtype_to_np_dtype(t.elem_type)))
    return out


def write(case: Case, folder: Path) -> Path:
    """The model where mx reads it: `<kind>/<name>/model.onnx`, as generate_data lays out."""
    path = folder / case.kind / case.name / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(case.model.SerializeToString())
    return path


def _feed(value: Any) -> Any:
    """A test-data value as onnxruntime's Python API takes it: numpy arrays, lists for
    sequences, and OrtValues for the element types numpy has no native type for."""
    from onnx import TensorProto, numpy_helper

    if isinstance(value, TensorProto):
        value = numpy_helper.to_array(value)
    if isinstance(value, np.generic):
        value = np.asarray(value)  # a numpy scalar is a rank-0 tensor
    if isinstance(value, np.ndarray) and value.dtype.type.__module__.startswith("ml_dtypes"):
        return _ortvalue(value)  # bfloat16, float8, float4, int4, int2
    if isinstance(value, list):
        return [_feed(v) for v in value]
    return value


def _ortvalue(arr: np.ndarray) -> Any:
    """Types numpy cannot hold natively travel as their bytes in an OrtValue (4- and 2-bit
    types unpacked, one element a byte: the verdict is about running, not the values)."""
    import onnxruntime as ort
    from onnx import helper

    raw = arr.view(np.uint8) if arr.dtype.itemsize == 1 else arr.view(np.uint16)
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
        raw, helper.np_dtype_to_tensor_dtype(arr.dtype))


def _run(session: Any, feeds: dict[str, Any]) -> None:
    """Run; outputs stay OrtValues where every input is a tensor, so float8 and int4
    outputs need no numpy type either."""
    import onnxruntime as ort

    plain = all(isinstance(v, ort.OrtValue) or (isinstance(v, np.ndarray) and
                                                 v.dtype.kind not in "OUS")
                for v in feeds.values())
    if not plain:
        session.run(None, feeds)
        return
    values = {k: v if isinstance(v, ort.OrtValue) else ort.OrtValue.ortvalue_from_numpy(v)
              for k, v in feeds.items()}
    session.run_with_ort_values(None, values)


def ort_verdict(path: Path, case: Case) -> str | None:
    """None when onnxruntime loads the model and runs it on its test data, else why not."""
    import onnxruntime as ort

    from mx.check.verdict import ort_reason

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        return "load: " + ort_reason(exc)
    try:
        feeds = {vi.name: _feed(v) for vi, v in zip(session.get_inputs(), case.inputs,
                                                     strict=False)}
    except Exception as exc:
        return f"harness: cannot feed the test data ({type(exc).__name__}: {exc})"
    try:
        _run(session, feeds)
    except Exception as exc:
        return "run: " + ort_reason(exc)
    return None


def mx_verdict(path: Path) -> tuple[bool | None, str]:
    from mx.check.arch import check_onnx
    from mx.check.targets import installed_version, target_for

    try:
        report = check_onnx(path, [target_for("cpu", installed_version())])
    except Exception as exc:  # a crash: the one outcome never allowed
        return None, f"{type(exc).__name__}: {exc}"
    errors = [f.message for f in report.findings if f.severity == "error"]
    return not errors, "; ".join(errors)


def legacy_verdict(path: Path) -> bool:
    """mx's verdict before it asked onnxruntime: the installed kernel registry per
    (domain, op, model opset), and the highest IR and opset from the compatibility table."""
    from mx import onnxinfo
    from mx.check.targets import cpu_kernels, live_limits

    info = onnxinfo.describe(onnxinfo.load(path))
    max_opset, max_ir = live_limits()
    if info.ir_version > max_ir or (info.opset or 0) > max_opset:
        return False
    kernels = cpu_kernels()
    return all(any(lo <= info.opsets.get(d, 1) <= hi for lo, hi in kernels.get((d, op), []))
               for d, op in info.op_counts)


def run(cases: list[Case], folder: Path, legacy: bool = False) -> list[Outcome]:
    out = []
    for case in cases:
        path = write(case, folder)
        mx_ok, mx_reason = mx_verdict(path)
        ort_problem = ort_verdict(path, case)
        outcome = Outcome(case, mx_ok, ort_problem is None, mx_reason, ort_problem or "")
        if legacy:
            try:
                outcome.legacy_ok = legacy_verdict(path)
            except Exception:
                outcome.legacy_ok = None
        out.append(outcome)
    return out


def agreement(outcomes: list[Outcome], legacy: bool = False) -> float:
    if not outcomes:
        return 1.0
    same = sum(1 for o in outcomes if (o.legacy_ok if legacy else o.mx_ok) == o.ort_ok)
    return same / len(outcomes)


def main() -> None:
    import onnx
    import onnxruntime as ort

    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="only the first N cases")
    ap.add_argument("--legacy", action="store_true", help="also score the operator table")
    ap.add_argument("--sample", action="store_true", help="only the test suite's sample")
    ap.add_argument("--show", type=int, default=40, help="disagreements to list")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cases = sample_cases() if args.sample else node_cases() + shipped_cases()
    if args.limit:
        cases = cases[:args.limit]
    gen = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="mx-conformance-") as tmp:
        outcomes = run(cases, Path(tmp), args.legacy)
    crashes = [o for o in outcomes if o.mx_ok is None]
    false_alarms = [o for o in outcomes if o.mx_ok is False and o.ort_ok]
    misses = [o for o in outcomes if o.mx_ok is True and not o.ort_ok]
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}: {len(outcomes)} models "
          f"({sum(o.case.kind == 'node' for o in outcomes)} node tests, "
          f"{sum(o.case.kind != 'node' for o in outcomes)} shipped), generated in {gen:.0f} s, "
          f"checked in {time.perf_counter() - t0 - gen:.0f} s")
    print(f"onnxruntime runs {sum(o.ort_ok for o in outcomes)}, "
          f"refuses {sum(not o.ort_ok for o in outcomes)}")
    if args.legacy:
        print(f"operator table (before): agreement {agreement(outcomes, True):.2%}; "
              f"false alarms {sum(o.legacy_ok is False and o.ort_ok for o in outcomes)}, "
              f"misses {sum(o.legacy_ok is True and not o.ort_ok for o in outcomes)}")
    print(f"mx check -t cpu: agreement {agreement(outcomes):.2%} (goal {GOAL:.1%}); "
          f"false alarms {len(false_alarms)}, misses {len(misses)}, crashes {len(crashes)}")
    for label, group, why in (("crash", crashes, "mx"), ("false alarm", false_alarms, "mx"),
                              ("miss", misses, "ort")):
        for o in group[:args.show]:
            reason = o.mx_reason if why == "mx" else o.ort_reason
            known = " (runtime-only: known)" if o.case.name in RUNTIME_ONLY else ""
            print(f"  {label}{known}: {o.case.kind}/{o.case.name}: {reason[:160]}")
    if crashes or agreement(outcomes) < GOAL:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
