"""What every converter shares: the job, its result, entry points, the pickle refusal."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mx.errors import ConfigError, MxError
from mx.sampling import Feeds, Spec


@dataclass
class ConvertJob:
    """One conversion: `source` (an entry point or a file) in `model_dir` to `target`."""

    source: str
    model_dir: Path
    target: str  # onnx | torchscript | savedmodel | tflite
    out_path: Path  # where the converter writes (a temp path; moved into place later)
    opset: int = 17
    input_names: list[str] | None = None
    output_names: list[str] | None = None
    signature: list[Spec] | None = None  # from mx.yaml, for sources without example inputs
    data: Feeds | None = None  # inputs the user gave (--data), used as the example


@dataclass
class Converted:
    """What a converter hands back: how to run the source model, and on what."""

    reference: Callable[[Feeds], list[Any]]  # the source framework's outputs, in order
    example: Feeds  # example inputs, by the artifact's input names
    tool: str  # e.g. "torch.onnx (dynamo) 2.13.0"
    framework_version: str
    notes: list[str] = field(default_factory=list)  # fallbacks taken, said to the user


class Converter(Protocol):
    framework: str
    targets: tuple[str, ...]

    def convert(self, job: ConvertJob) -> Converted: ...


def load_entry_point(spec: str, model_dir: Path) -> Callable[..., Any]:
    """`module:function` or `file.py:function`, imported with the model directory on the path."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"entry point {spec!r} is not module:function",
                          hint="e.g. export:build or tools/export.py:build")
    with _on_path(model_dir):
        try:
            if module_name.endswith(".py"):
                path = (model_dir / module_name).resolve()
                if not path.is_file():
                    raise ConfigError(f"entry point {spec!r}: no file {path}")
                loaded = importlib.util.spec_from_file_location(path.stem, path)
                assert loaded is not None and loaded.loader is not None
                module = importlib.util.module_from_spec(loaded)
                loaded.loader.exec_module(module)
            else:
                sys.modules.pop(module_name, None)  # a fresh import: the file may have changed
                module = importlib.import_module(module_name)
        except MxError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"entry point {spec!r} does not import: {type(exc).__name__}: {exc}",
                hint=f"check that {module_name} is importable from {model_dir}",
            ) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"entry point {spec!r}: {module_name} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]


def call_entry_point(spec: str, model_dir: Path) -> Any:
    fn = load_entry_point(spec, model_dir)
    with _on_path(model_dir), quiet():
        try:
            return fn()
        except MxError:
            raise
        except Exception as exc:
            raise ConfigError(f"entry point {spec!r} failed: {type(exc).__name__}: {exc}") \
                from None


@contextlib.contextmanager
def _on_path(directory: Path) -> Iterator[None]:
    sys.path.insert(0, str(directory.resolve()))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(directory.resolve()))


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Exporters and model loaders print progress; a library must not. Keep it in a buffer."""
    import logging
    import warnings

    buf = io.StringIO()
    logging.disable(logging.WARNING)  # exporters log "torchvision is not installed" and such
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield buf
    finally:
        logging.disable(logging.NOTSET)


def first_line(exc: BaseException) -> str:
    """An exporter's error, cut to its first line: the rest is usually a stack of frames."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    # TensorFlow opens with "in user code:" and a stack; the error itself is last.
    return (lines[-1] if lines[0].endswith(":") else lines[0])[:300]


def pickle_kind(path: Path) -> str | None:
    """Say why a file is pickle-based (so loading it could run code), or None.

    A TorchScript archive is a zip with `code/` and is loaded by TorchScript's own
    restricted unpickler; `torch.save` output is a zip with `data.pkl` and no code, which
    `torch.load` would unpickle. A bare pickle starts with the PROTO opcode.
    """
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError:
        return None
    if head[:1] == b"\x80" and head[1:2] in {bytes([n]) for n in range(2, 6)}:
        return "a Python pickle"
    if head[:2] == b"PK" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any(n.endswith("data.pkl") for n in names) and not any("/code/" in n for n in names):
            return "a torch.save archive (a pickle inside a zip)"
    if path.suffix in {".pkl", ".pickle", ".joblib"}:
        return f"a {path.suffix} file (pickle-based)"
    return None


def refuse_pickle(path: Path) -> None:
    kind = pickle_kind(path)
    if kind:
        raise ConfigError(
            f"{path}: refusing {kind}: loading it can run arbitrary code",
            hint="give an entry point (module:function) that builds the model and loads "
                 "weights from safetensors, or a TorchScript / SavedModel / ONNX file",
        )
