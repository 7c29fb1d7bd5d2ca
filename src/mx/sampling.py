"""Model inputs for parity checks, quality measurement, calibration and benchmarks.

Three sources, in order of preference: data the user gives (`.npz`, checked against the
signature), example inputs an entry point returns, and inputs generated from the
signature. Generation is seeded, so two runs (and a variant and its parent) see the
same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mx.errors import ConfigError

Feeds = dict[str, np.ndarray]
DEFAULT_SEED = 1234
NUMPY_DTYPES = {
    "float16": np.float16, "float32": np.float32, "float64": np.float64,
    "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
    "bool": np.bool_,
}


class Spec:
    """The part of a TensorSpec / TensorInfo sampling needs (name, dtype, shape)."""

    def __init__(self, name: str, dtype: str, shape: Sequence[int | str]) -> None:
        self.name, self.dtype, self.shape = name, dtype, list(shape)

    @classmethod
    def of(cls, spec: Any) -> Spec:
        return cls(spec.name, str(spec.dtype), spec.shape)


def concrete_shape(spec: Spec, dims: Mapping[str, int], batch: int) -> list[int]:
    """Symbolic dims from `dims`; a first symbolic axis is the batch; others default to 1."""
    out = []
    for axis, d in enumerate(spec.shape):
        if isinstance(d, int):
            out.append(d)
        elif d in dims:
            out.append(int(dims[d]))
        elif axis == 0:
            out.append(batch)
        else:
            raise ConfigError(
                f"input {spec.name!r} axis {axis} is symbolic ({d!r}) and no size was given",
                hint=f"give one with --shape {d}=N",
            )
    return out


def generate(specs: Sequence[Spec], dims: Mapping[str, int] | None = None, batch: int = 1,
             seed: int = DEFAULT_SEED) -> Feeds:
    """Inputs of the right dtype and shape: floats ~ N(0, 1); integers small and valid.

    Integer inputs are usually indices (token ids, classes, masks). Without data we cannot
    know their range, so masks and type ids get 0/1 and other integers [0, 100): in range
    for any embedding table with at least 100 rows. Real data (`--data`) is better.
    """
    rng = np.random.default_rng(seed)
    feeds: Feeds = {}
    for spec in specs:
        shape = concrete_shape(spec, dims or {}, batch)
        dtype = _np_dtype(spec)
        if np.issubdtype(dtype, np.floating):
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[spec.name] = rng.integers(0, 2, shape).astype(np.bool_)
        elif "mask" in spec.name:
            feeds[spec.name] = np.ones(shape, dtype)
        else:
            high = 2 if "type" in spec.name else 100
            feeds[spec.name] = rng.integers(0, high, shape).astype(dtype)
    return feeds


def like(example: Feeds, seed: int = DEFAULT_SEED, count: int = 3) -> list[Feeds]:
    """`count` random input sets shaped like `example`, with values in its range."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        feeds: Feeds = {}
        for name, arr in example.items():
            if np.issubdtype(arr.dtype, np.floating):
                std = float(arr.std()) if arr.size > 1 and float(arr.std()) > 0 else 1.0
                mean = float(arr.mean()) if arr.size else 0.0
                feeds[name] = (rng.standard_normal(arr.shape) * std + mean).astype(arr.dtype)
            elif arr.dtype == np.bool_:
                feeds[name] = rng.integers(0, 2, arr.shape).astype(np.bool_)
            elif arr.size and "mask" in name:
                feeds[name] = arr.copy()  # a random mask would change what is compared
            elif arr.size:
                lo, hi = int(arr.min()), int(arr.max())
                feeds[name] = rng.integers(lo, hi + 1, arr.shape).astype(arr.dtype)
            else:
                feeds[name] = arr.copy()
        out.append(feeds)
    return out


def load_npz(path: Path, specs: Sequence[Spec], what: str = "data") -> Feeds:
    """Read `.npz` inputs and check names, dtypes and ranks against the signature."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what} file") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not a plain .npz of arrays ({exc})",
                          hint="object arrays (pickles) are refused; save numeric arrays "
                               "with numpy.savez") from None
    except Exception as exc:
        raise ConfigError(f"{path}: cannot read as .npz ({type(exc).__name__}: {exc})") from None
    feeds: Feeds = {}
    for spec in specs:
        if spec.name not in data:
            have = ", ".join(sorted(data)) or "none"
            raise ConfigError(f"{path}: no array {spec.name!r} for input {spec.name!r} "
                              f"(the file has: {have})",
                              hint="name the arrays after the signature's inputs")
        arr = data[spec.name]
        want = _np_dtype(spec)
        if arr.dtype != want:
            raise ConfigError(f"{path}: array {spec.name!r} is {arr.dtype} but the input is "
                              f"{spec.dtype}", hint=f"save it as {spec.dtype}")
        if arr.ndim != len(spec.shape):
            raise ConfigError(f"{path}: array {spec.name!r} has shape {list(arr.shape)} but "
                              f"the input has rank {len(spec.shape)} {spec.shape}")
        for axis, (have_dim, want_dim) in enumerate(zip(arr.shape, spec.shape, strict=True)):
            if isinstance(want_dim, int) and have_dim != want_dim:
                raise ConfigError(f"{path}: array {spec.name!r} axis {axis} is {have_dim} but "
                                  f"the input fixes it at {want_dim} "
                                  f"(shape {list(arr.shape)} vs {spec.shape})")
        feeds[spec.name] = arr
    return feeds


def split_batches(feeds: Feeds, size: int) -> list[Feeds]:
    """Slice along axis 0 into batches of at most `size` rows."""
    n = min(len(a) for a in feeds.values()) if feeds else 0
    return [{k: v[i:i + size] for k, v in feeds.items()} for i in range(0, n, size)]


def _np_dtype(spec: Spec) -> Any:
    try:
        return np.dtype(NUMPY_DTYPES[spec.dtype])
    except KeyError:
        raise ConfigError(f"input {spec.name!r} has dtype {spec.dtype}, which mx cannot "
                          "generate", hint="give real inputs with --data FILE.npz") from None
