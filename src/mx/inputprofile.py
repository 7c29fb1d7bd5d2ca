"""Reference profiles of a model's inputs (`input-profile.json`) and drift against them.

A profile holds, per numeric input, quantile bin edges taken from reference data and the
share of that data in each bin. `mx serve` counts live inputs into the same bins and
compares the two with PSI (population stability index):

    PSI = sum over bins of (live - ref) * ln(live / ref), shares floored at EPSILON.

How an input is binned (`by`):

- `feature`: when each row of an input is a vector of 2 to MAX_FEATURES entries (tabular
  rows, small embeddings: [batch, 4]), each entry has its own bins: 4 histograms. The
  input's PSI is the largest of its features' PSIs (one drifting feature shows).
- `value`: otherwise (images, sequences, token ids, long vectors, one number a row) every
  value of the input is pooled into one histogram.

At most VALUES_PER_ROW values of a row are counted (evenly spaced positions along its
flattened values, the same ones for reference data and live requests), so a large image
costs no more than a small one. Non-finite values are not counted.

The file itself (its typed model, reading and writing) is `mx.profiledoc`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from mx.errors import ConfigError
from mx.fsutil import atomic_write_bytes
from mx.manifest import load_manifest
from mx.manifest_edit import ManifestChange
from mx.profiledoc import (
    DEFAULT_BINS,
    DEFAULT_FILE,
    FORMAT,
    MAX_BINS,
    MAX_FEATURES,
    MAX_INPUTS,
    InputBins,
    InputProfile,
    dumps,
)
from mx.sampling import Spec, batch_axes, load_npz

VALUES_PER_ROW = 256
EPSILON = 1e-4
NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float


# -- counting -------------------------------------------------------------------------------


def samples(arr: np.ndarray, bins: InputBins) -> np.ndarray | None:
    """(values, features) float64 of an input batch as `bins` counts it; None when the
    array's shape does not fit the profile (a different feature count)."""
    a = np.asarray(arr)
    if a.dtype.kind not in NUMERIC_KINDS:
        return None
    if bins.batch_axis is None:
        a = a[None]
    elif bins.batch_axis < a.ndim:
        a = np.moveaxis(a, bins.batch_axis, 0)
    else:
        return None
    rows = a.shape[0]
    if bins.by == "feature":
        if a.ndim < 2 or a.shape[-1] != bins.features:
            return None
        a = a.reshape(rows, -1, bins.features)
        keep = max(1, VALUES_PER_ROW // bins.features)
        if a.shape[1] > keep:
            a = a[:, _positions(a.shape[1], keep)]
        return a.reshape(-1, bins.features).astype(np.float64)
    size = math.prod(a.shape[1:])
    a = a.reshape(rows, size)
    if size > VALUES_PER_ROW:
        a = a[:, _positions(size, VALUES_PER_ROW)]
    return a.reshape(-1, 1).astype(np.float64)


def _positions(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.intp))


def count(values: np.ndarray, edges: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Bin counts per feature of `values` (from `samples`), non-finite values left out."""
    out = []
    for j, e in enumerate(edges):
        col = values[:, j]
        col = col[np.isfinite(col)]
        out.append(np.bincount(np.searchsorted(e, col, side="right"),
                               minlength=len(e) + 1).astype(np.int64))
    return out


def psi(counts: Sequence[np.ndarray], proportions: Sequence[np.ndarray]) -> float:
    """The largest PSI over features of live `counts` against reference `proportions`;
    NaN when nothing was counted."""
    worst = math.nan
    for c, p in zip(counts, proportions, strict=True):
        total = int(c.sum())
        if total == 0:
            continue
        q = np.maximum(c / total, EPSILON)
        r = np.maximum(p, EPSILON)
        value = float(np.sum((q - r) * np.log(q / r)))
        worst = value if math.isnan(worst) else max(worst, value)
    return worst


# -- building ------------------------------------------------------------------------------


def input_bins(arr: np.ndarray, batch_axis: int | None, bins: int = DEFAULT_BINS
               ) -> InputBins | None:
    """Reference bins of one input from data (None for inputs mx cannot bin: strings)."""
    a = np.asarray(arr)
    if a.dtype.kind not in NUMERIC_KINDS:
        return None
    row = a.shape if batch_axis is None else a.shape[:batch_axis] + a.shape[batch_axis + 1:]
    last = row[0] if len(row) == 1 else 0  # rows that are vectors: [batch, features]
    by: Literal["value", "feature"] = "feature" if 2 <= last <= MAX_FEATURES else "value"
    features = last if by == "feature" else 1
    shape = InputBins.model_construct(dtype=str(a.dtype), batch_axis=batch_axis, by=by,
                                      features=features, edges=[], proportions=[])
    values = samples(a, shape)
    assert values is not None
    edges, props = [], []
    for j in range(features):
        col = values[:, j]
        col = col[np.isfinite(col)]
        if col.size == 0:
            e = np.zeros(0)
        else:
            quantiles = np.quantile(col, np.linspace(0, 1, bins + 1)[1:-1])
            e = np.unique([float(f"{x:.9g}") for x in quantiles])  # exact for float32 data
            e = e[e > col.min()]  # an edge at the minimum would only open an empty bin
        c = count(col[:, None], [e])[0]
        edges.append([float(x) for x in e])
        props.append([float(f"{x:.9g}") for x in (c / c.sum() if c.sum() else
                                                  np.full(len(c), 1 / len(c)))])
    return InputBins(dtype=str(a.dtype), batch_axis=batch_axis, by=by, features=features,
                     edges=edges, proportions=props)


def build(feeds: Mapping[str, np.ndarray], batch_axes: Mapping[str, int | None],
          bins: int = DEFAULT_BINS, model: str | None = None,
          version: str | None = None) -> InputProfile:
    """A profile of `feeds` (reference data, checked against the signature already)."""
    if not 2 <= bins <= MAX_BINS:
        raise ConfigError(f"--bins {bins}: between 2 and {MAX_BINS}")
    inputs: dict[str, InputBins] = {}
    rows = []
    for name, arr in feeds.items():
        axis = batch_axes.get(name)
        made = input_bins(arr, axis, bins)
        if made is not None:
            inputs[name] = made
            if axis is not None:  # an input given whole (a sample rate) is no row count
                rows.append(arr.shape[axis])
    if not inputs:
        raise ConfigError("no numeric input to profile (strings are not binned)")
    if len(inputs) > MAX_INPUTS:
        raise ConfigError(f"{len(inputs)} inputs; a profile holds at most {MAX_INPUTS}")
    fewest = min(rows, default=1)
    if rows and fewest < bins:
        raise ConfigError(f"the data has {fewest} rows, fewer than the {bins} bins",
                          hint="give more reference rows (hundreds or more), or fewer --bins")
    return InputProfile(mx_input_profile=FORMAT, model=model, version=version,
                        rows=fewest, bins=bins, inputs=inputs)


def write_for(model_dir: Path, data: Path, bins: int = DEFAULT_BINS,
              given_axes: Mapping[str, int] | None = None) -> tuple[Path, InputProfile]:
    """Profile `data` (.npz, checked against mx.yaml's signature) into the file mx.yaml's
    `input_profile` names (DEFAULT_FILE, added to mx.yaml, when it names none)."""

    loaded = load_manifest(model_dir)
    man = loaded.manifest
    if man.signature is None:
        raise ConfigError(f"{loaded.path}: no signature; mx profile reads --data by it",
                          hint="`mx convert` writes one, or add it by hand")
    specs = batch_axes([Spec.of(t) for t in man.signature.inputs], given_axes)
    numeric = [s for s in specs if s.type == "tensor" and s.dtype != "string"]
    feeds = load_npz(data, numeric)
    profile = build(feeds, {s.name: s.batch_axis for s in numeric}, bins, man.name,
                    str(man.version))
    rel = man.input_profile or DEFAULT_FILE
    out = model_dir / rel
    atomic_write_bytes(out, dumps(profile))
    if man.input_profile is None:
        change = ManifestChange(loaded)
        change.set_value("input_profile", rel)
        change.commit()
    return out, profile
