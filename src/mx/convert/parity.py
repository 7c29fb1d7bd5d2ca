"""Parity: does the converted artifact compute what the source framework computes?

Both run on the same inputs (the example, plus random sets of its dtype, shape and
range, seeded); every output is compared elementwise with numpy's allclose rule,
|a - b| <= atol + rtol * |b|, tolerances by dtype unless given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mx.sampling import Feeds

# dtype -> (atol, rtol). Integers and booleans must match exactly.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-6, 1e-5),
    "float32": (1e-4, 1e-3),
    "float16": (1e-2, 1e-2),
    "bfloat16": (5e-2, 5e-2),
}


@dataclass
class OutputParity:
    name: str
    dtype: str
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    ok: bool
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "max_abs_error": self.max_abs,
                "max_rel_error": self.max_rel, "atol": self.atol, "rtol": self.rtol,
                "ok": self.ok, **({"problem": self.problem} if self.problem else {})}


@dataclass
class ParityReport:
    outputs: list[OutputParity]
    input_sets: int

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((o.max_rel for o in self.outputs), default=0.0)

    def worst(self) -> OutputParity:
        bad = [o for o in self.outputs if not o.ok]
        return max(bad or self.outputs, key=lambda o: o.max_abs)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "input_sets": self.input_sets, "max_abs_error": self.max_abs,
                "max_rel_error": self.max_rel, "outputs": [o.to_json() for o in self.outputs]}


def tolerance(dtype: str, atol: float | None, rtol: float | None) -> tuple[float, float]:
    default = TOLERANCES.get(dtype, (0.0, 0.0))
    return (default[0] if atol is None else atol, default[1] if rtol is None else rtol)


def compare(reference: Callable[[Feeds], list[Any]], candidate: Callable[[Feeds], list[Any]],
            input_sets: Sequence[Feeds], output_names: Sequence[str],
            atol: float | None = None, rtol: float | None = None) -> ParityReport:
    worst: dict[int, OutputParity] = {}
    for feeds in input_sets:
        want = [np.asarray(x) for x in reference(feeds)]
        got = [np.asarray(x) for x in candidate(feeds)]
        if len(want) != len(got):
            return ParityReport([OutputParity("(outputs)", "", float("inf"), float("inf"), 0, 0,
                                              False, f"the source returns {len(want)} outputs, "
                                              f"the artifact {len(got)}")], len(input_sets))
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            name = output_names[i] if i < len(output_names) else f"output {i}"
            result = _one(name, a, b, atol, rtol)
            prev = worst.get(i)
            if prev is None or (not result.ok and prev.ok) or result.max_abs > prev.max_abs:
                worst[i] = result
    return ParityReport([worst[i] for i in sorted(worst)], len(input_sets))


def _one(name: str, got: np.ndarray, want: np.ndarray, atol: float | None,
         rtol: float | None) -> OutputParity:
    dtype = str(want.dtype)
    a_tol, r_tol = tolerance(dtype, atol, rtol)
    if got.shape != want.shape:
        if got.size != want.size:
            return OutputParity(name, dtype, float("inf"), float("inf"), a_tol, r_tol, False,
                                f"shape {list(got.shape)} but the source gives "
                                f"{list(want.shape)}")
        got = got.reshape(want.shape)  # e.g. a regressor's [N] against ONNX's [N, 1]
    if want.dtype.kind in "fc" or got.dtype.kind in "fc":
        a = got.astype(np.float64)
        b = want.astype(np.float64)
        if a.size == 0:
            return OutputParity(name, dtype, 0.0, 0.0, a_tol, r_tol, True)
        diff = np.abs(a - b)
        finite_mismatch = bool(np.any(np.isnan(a) != np.isnan(b)))
        diff = np.where(np.isnan(a) & np.isnan(b), 0.0, diff)
        max_abs = float(np.nanmax(diff)) if diff.size else 0.0
        max_rel = float(np.nanmax(diff / np.maximum(np.abs(b), max(a_tol, 1e-12))))
        ok = bool(np.all(diff <= a_tol + r_tol * np.abs(b))) and not finite_mismatch
        return OutputParity(name, dtype, max_abs, max_rel, a_tol, r_tol, ok)
    equal = np.array_equal(got.astype(want.dtype) if got.dtype != want.dtype else got, want)
    mismatches = float(np.count_nonzero(got.reshape(-1) != want.reshape(-1))) if not equal \
        else 0.0
    return OutputParity(name, dtype, mismatches, mismatches / max(want.size, 1), 0.0, 0.0, equal,
                        None if equal else f"{int(mismatches)} of {want.size} values differ")
