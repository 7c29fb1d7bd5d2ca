"""`mx check -t cpu` says what onnxruntime says, on a fixed sample of ONNX's node tests.

bench/onnx_conformance.py runs the whole corpus; this is its deterministic sample: every
model onnxruntime runs passes the check and every model it refuses fails it, with
onnxruntime's reason naming the operator.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench import onnx_conformance as conf


def test_cpu_verdict_agrees_with_onnxruntime(tmp_path: Path) -> None:
    cases = conf.sample_cases()
    assert 45 <= len(cases) <= 60
    names = {c.name for c in cases}
    # the families the operator table got wrong are in the sample
    assert "test_constant" in names
    assert any(n.startswith("test_castlike_") for n in names)
    assert {"test_mish", "test_mish_expanded"} <= names  # a function onnxruntime expands
    outcomes = conf.run(cases, tmp_path, legacy=True)
    assert [o.case.name for o in outcomes if o.mx_ok is None] == []  # no crash
    assert [o.case.name for o in outcomes if o.mx_ok is False and o.ort_ok] == []
    misses = {o.case.name for o in outcomes if o.mx_ok and not o.ort_ok}
    assert misses <= conf.RUNTIME_ONLY  # refused only when run on particular data
    judged = [o for o in outcomes if o.case.name not in conf.RUNTIME_ONLY]
    assert conf.agreement(judged) == 1.0
    assert conf.agreement(outcomes, legacy=True) < 0.5  # what the operator table scored
    refused = [o for o in outcomes if not o.mx_ok]
    assert refused and all("cannot load it on CPU" in o.mx_reason for o in refused)
    assert all("\n" not in o.mx_reason for o in refused)
    # each refusal names the operator onnxruntime refused first (CastLike's may be the
    # Cast it expands to)
    named = re.compile(r"cannot load it on CPU: (node '[^']*' \()?[A-Z][A-Za-z0-9]*\)?: ")
    assert all(named.search(o.mx_reason) for o in refused), [o.mx_reason for o in refused]
