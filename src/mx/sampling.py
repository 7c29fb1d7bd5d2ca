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
from mx.tensorspec import TensorSpec, Value

Feeds = dict[str, np.ndarray]
DEFAULT_SEED = 1234
NUMPY_DTYPES = {
    "float16": np.float16, "float32": np.float32, "float64": np.float64,
    "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
    "bool": np.bool_, "complex64": np.complex64, "complex128": np.complex128,
}
# Dim names that say "this axis is the batch" wherever it is.
BATCH_NAMES = ("batch", "batch_size", "batchsize", "n", "num_batches")


class Spec:
    """A graph input (`mx.tensorspec.Value`) and which of its axes is the batch (None: no
    batch axis, as for a scalar or a recurrent state given whole). The batch axis is what
    sampling adds: `batch_axes` settles it for a whole signature."""

    def __init__(self, value: Value, batch_axis: int | None = None) -> None:
        self.value = value
        self.batch_axis = own_batch_axis(value.shape) if batch_axis is None else batch_axis

    @classmethod
    def of(cls, spec: TensorSpec | Value) -> Spec:
        return cls(spec if isinstance(spec, Value) else Value.of(spec))

    @property
    def name(self) -> str:
        return self.value.name

    @property
    def dtype(self) -> str:
        return self.value.dtype

    @property
    def shape(self) -> tuple[int | str | None, ...] | None:
        return self.value.shape

    @property
    def type(self) -> str:
        return self.value.type

    def to_tuple(self) -> tuple[Value, int | None]:
        """What crosses to a measuring process: `Spec(*spec.to_tuple())` rebuilds it."""
        return self.value, self.batch_axis


def own_batch_axis(shape: Sequence[int | str | None] | None) -> int | None:
    """What one shape says alone: a dim named like a batch, else a symbolic axis 0."""
    if not shape:
        return None
    named = next((i for i, d in enumerate(shape)
                  if isinstance(d, str) and d.lower() in BATCH_NAMES), None)
    if named is not None:
        return named
    return 0 if isinstance(shape[0], str) else None


def batch_axes(specs: Sequence[Spec], given: Mapping[str, int] | None = None) -> list[Spec]:
    """Set each input's batch axis: `--batch-axis NAME=AXIS` first, then a dim named like a
    batch (`batch`, `N`...), then an axis sharing the name of another input's batch dim
    (a recurrent state `[2, batch, 128]`), then a symbolic axis 0. Scalars have none."""
    given = dict(given or {})
    unknown = sorted(set(given) - {s.name for s in specs})
    if unknown:
        raise ConfigError(f"--batch-axis {unknown[0]}: no such input",
                          hint="inputs: " + ", ".join(s.name for s in specs))
    for s in specs:
        shape = s.shape or ()
        if s.name in given:
            axis = given[s.name]
            if s.shape is None or not -len(shape) <= axis < len(shape):
                raise ConfigError(f"--batch-axis {s.name}={axis}: input {s.name!r} has rank "
                                  f"{len(shape) if s.shape is not None else 'unknown'}",
                                  hint=f"its shape is {s.shape}")
            s.batch_axis = axis % len(shape)
            continue
        s.batch_axis = next((i for i, d in enumerate(shape)
                             if isinstance(d, str) and d.lower() in BATCH_NAMES), None)
    names = {str(s.shape[s.batch_axis]) for s in specs
             if s.shape and s.batch_axis is not None and isinstance(s.shape[s.batch_axis], str)}
    for s in specs:
        if s.batch_axis is None and s.name not in given and s.shape:
            s.batch_axis = next((i for i, d in enumerate(s.shape) if d in names),
                                own_batch_axis(s.shape))
    return list(specs)


def concrete_shape(spec: Spec, dims: Mapping[str, int], batch: int) -> list[int]:
    """The batch axis gets `batch`; other symbolic dims come from `dims`."""
    if spec.shape is None:
        raise ConfigError(f"input {spec.name!r} has no known rank, so mx cannot make inputs "
                          "for it", hint="give real inputs with --data FILE.npz")
    out = []
    for axis, d in enumerate(spec.shape):
        if isinstance(d, int):
            out.append(d)
        elif axis == spec.batch_axis:
            out.append(batch)
        elif d is not None and d in dims:
            out.append(int(dims[d]))
        else:
            raise ConfigError(
                f"input {spec.name!r} axis {axis} is symbolic ({d!r}) and no size was given",
                hint=f"give one with --shape {d}=N, or --batch-axis {spec.name}={axis} if it "
                     "is the batch",
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
        dtype = _np_dtype(spec)
        shape = concrete_shape(spec, dims or {}, batch)
        if np.issubdtype(dtype, np.complexfloating):
            value = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        elif np.issubdtype(dtype, np.floating):
            value = rng.standard_normal(shape)
        elif dtype == np.bool_:
            value = rng.integers(0, 2, shape)
        elif "mask" in spec.name:
            value = np.ones(shape)
        else:
            value = rng.integers(0, 2 if "type" in spec.name else 100, shape)
        # np.asarray: a rank-0 draw is a numpy scalar, which onnxruntime does not take
        feeds[spec.name] = np.asarray(value).astype(dtype)
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
                feeds[name] = np.asarray(rng.standard_normal(arr.shape) * std + mean) \
                    .astype(arr.dtype)
            elif arr.dtype == np.bool_:
                feeds[name] = np.asarray(rng.integers(0, 2, arr.shape)).astype(np.bool_)
            elif arr.size and "mask" in name:
                feeds[name] = arr.copy()  # a random mask would change what is compared
            elif arr.size:
                lo, hi = int(arr.min()), int(arr.max())
                feeds[name] = np.asarray(rng.integers(lo, hi + 1, arr.shape)).astype(arr.dtype)
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
        if spec.shape is None:
            feeds[spec.name] = arr
            continue
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


def split_batches(feeds: Feeds, size: int, specs: Sequence[Spec] = ()) -> list[Feeds]:
    """Slice each input along its batch axis into batches of at most `size` rows; inputs
    without one (scalars, states given whole) go whole into every batch. Without specs
    every input of rank >= 1 is batched on axis 0."""
    axes = {s.name: s.batch_axis for s in specs}
    batched = {k: (axes[k] if k in axes else (0 if np.ndim(v) else None))
               for k, v in feeds.items()}
    rows = [np.shape(v)[axis] for k, v in feeds.items() if (axis := batched[k]) is not None]
    if not rows:
        return [dict(feeds)] if feeds else []
    n = min(rows)

    def part(name: str, value: np.ndarray, start: int) -> np.ndarray:
        axis = batched[name]
        if axis is None:
            return value
        index = [slice(None)] * value.ndim
        index[axis] = slice(start, start + size)
        return value[tuple(index)]

    return [{k: part(k, v, i) for k, v in feeds.items()} for i in range(0, n, size)]


def _np_dtype(spec: Spec) -> Any:
    if spec.type != "tensor":
        raise ConfigError(f"input {spec.name!r} is a {spec.type} of {spec.dtype}, which mx "
                          "cannot generate or read from .npz",
                          hint="measure the model with a script, or give it tensor inputs")
    try:
        return np.dtype(NUMPY_DTYPES[spec.dtype])
    except KeyError:
        raise ConfigError(f"input {spec.name!r} has dtype {spec.dtype}, which mx cannot "
                          "generate", hint="give real inputs with --data FILE.npz") from None
