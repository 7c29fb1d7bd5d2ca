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
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mx.errors import ConfigError
from mx.fsutil import atomic_write_bytes
from mx.manifest import load_manifest
from mx.manifest_edit import ManifestChange
from mx.sampling import Spec, batch_axes, load_npz

FORMAT: Literal[1] = 1
DEFAULT_FILE = "input-profile.json"
DEFAULT_BINS = 10
MAX_BINS = 100
MAX_INPUTS = 64
MAX_FEATURES = 64
MAX_PROFILE_BYTES = 4 << 20
VALUES_PER_ROW = 256
EPSILON = 1e-4
NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class InputBins(_Strict):
    """One input's reference histograms: one per feature (`by: feature`) or one in all."""

    dtype: str = Field(max_length=32)
    batch_axis: int | None = Field(ge=0, le=31)  # None: the input is one row, given whole
    by: Literal["value", "feature"]
    features: int = Field(ge=1, le=MAX_FEATURES)
    edges: list[list[float]] = Field(max_length=MAX_FEATURES)  # per feature, ascending
    proportions: list[list[float]] = Field(max_length=MAX_FEATURES)  # len(edges) + 1 each

    @model_validator(mode="after")
    def _consistent(self) -> InputBins:
        if self.by == "value" and self.features != 1:
            raise ValueError("by: value has features: 1")
        if len(self.edges) != self.features or len(self.proportions) != self.features:
            raise ValueError(f"edges and proportions need one list per feature "
                             f"({self.features}); they have {len(self.edges)} and "
                             f"{len(self.proportions)}")
        for j, (edges, props) in enumerate(zip(self.edges, self.proportions, strict=True)):
            if len(edges) > MAX_BINS - 1:
                raise ValueError(f"edges[{j}]: {len(edges)} edges, at most {MAX_BINS - 1}")
            if any(b <= a for a, b in itertools.pairwise(edges)):
                raise ValueError(f"edges[{j}]: edges must be strictly increasing")
            if len(props) != len(edges) + 1:
                raise ValueError(f"proportions[{j}]: {len(props)} shares for "
                                 f"{len(edges) + 1} bins")
            if any(p < 0 for p in props) or abs(sum(props) - 1) > 1e-3:
                raise ValueError(f"proportions[{j}]: shares must be >= 0 and sum to 1")
        return self


class InputProfile(_Strict):
    """`input-profile.json` (`mx_input_profile: 1`)."""

    mx_input_profile: Literal[1]
    model: str | None = Field(default=None, max_length=200)
    version: str | None = Field(default=None, max_length=200)
    rows: int = Field(ge=1)  # reference rows the shares come from
    bins: int = Field(ge=2, le=MAX_BINS)  # bins asked for (fewer where quantiles coincide)
    inputs: dict[str, InputBins] = Field(max_length=MAX_INPUTS)


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


# -- building and reading -----------------------------------------------------------------


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
            rows.append(arr.shape[axis] if axis is not None else 1)
    if not inputs:
        raise ConfigError("no numeric input to profile (strings are not binned)")
    if len(inputs) > MAX_INPUTS:
        raise ConfigError(f"{len(inputs)} inputs; a profile holds at most {MAX_INPUTS}")
    if min(rows) < bins:
        raise ConfigError(f"the data has {min(rows)} rows, fewer than the {bins} bins",
                          hint="give more reference rows (hundreds or more), or fewer --bins")
    return InputProfile(mx_input_profile=FORMAT, model=model, version=version,
                        rows=min(rows), bins=bins, inputs=inputs)


def dumps(profile: InputProfile) -> bytes:
    return (json.dumps(profile.model_dump(mode="json"), indent=1, sort_keys=True)
            + "\n").encode()


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse(data: bytes, origin: str) -> InputProfile:
    """Validate a profile's bytes; ConfigError naming `origin` and the field otherwise."""
    hint = "regenerate it with `mx profile DIR --data FILE.npz`"
    if len(data) > MAX_PROFILE_BYTES:
        raise ConfigError(f"{len(data)} bytes; an input profile is at most "
                          f"{MAX_PROFILE_BYTES} bytes", hint=hint, path=origin)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"not JSON ({exc})", hint=hint, path=origin) from None
    if isinstance(doc, dict) and isinstance(doc.get("mx_input_profile"), int) \
            and doc["mx_input_profile"] > FORMAT:
        raise ConfigError(f"mx_input_profile {doc['mx_input_profile']} is newer than this mx "
                          f"reads ({FORMAT})", hint="upgrade mx", path=origin)
    try:
        return InputProfile.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{_loc(tuple(err['loc']))}: {msg}{more}", hint=hint,
                          path=origin) from None


def read(path: Path) -> InputProfile:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the input profile ({exc.strerror or exc})",
                          path=str(path)) from None
    return parse(data, str(path))


def check_against(profile: InputProfile, inputs: Mapping[str, Any], origin: str) -> None:
    """ConfigError when the profile names an input the model does not take."""
    for name in profile.inputs:
        if name not in inputs:
            raise ConfigError(f"inputs.{name}: the model has no input {name!r} (it takes "
                              + ", ".join(repr(n) for n in inputs) + ")", path=origin)


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
