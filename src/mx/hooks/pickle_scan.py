"""`mx-no-pickle`: loading a pickle runs code, so pickle-based files stay out of model repos.

A file is pickle-based when its bytes say so (a pickle protocol header, a zip holding
`*.pkl` as PyTorch writes, an object-dtype .npy) or its suffix is one only pickles use.
Such files are refused unless allow-listed; allow-listed ones must still import nothing
beyond SAFE_GLOBALS. The opcodes are read by picklescan; nothing is ever unpickled.
"""

from __future__ import annotations

import fnmatch
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mx.hooks import HookOutcome
from mx.validate import Problem

# Suffixes worth opening; the bytes decide whether each one is a pickle.
CANDIDATE_SUFFIXES = frozenset({".pt", ".pth", ".pkl", ".pickle", ".bin", ".joblib", ".ckpt",
                                ".npy", ".dat", ".model", ".sav", ".tar"})
ALWAYS_PICKLE = frozenset({".pkl", ".pickle", ".joblib", ".sav"})

# What a plain PyTorch / NumPy state dict imports.
SAFE_GLOBALS: dict[str, frozenset[str]] = {
    "collections": frozenset({"OrderedDict"}),
    "torch._utils": frozenset({"_rebuild_tensor_v2", "_rebuild_parameter"}),
    "torch": frozenset({"FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage",
                        "LongStorage", "IntStorage", "ShortStorage", "CharStorage",
                        "ByteStorage", "BoolStorage", "float32", "float16", "bfloat16",
                        "int64", "int32", "uint8", "bool"}),
    "numpy": frozenset({"dtype", "ndarray"}),
    "numpy.core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy._core.multiarray": frozenset({"_reconstruct", "scalar"}),
}


@dataclass(frozen=True)
class PickleVerdict:
    is_pickle: bool
    unsafe: tuple[str, ...] = ()  # module.name imports beyond SAFE_GLOBALS
    error: str | None = None  # the opcodes could not be read


def is_pickle_based(path: Path) -> bool:
    if path.suffix.lower() in ALWAYS_PICKLE:
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                return any(n.endswith(".pkl") for n in zf.namelist())
        except zipfile.BadZipFile:
            return False
    if head.startswith(b"\x93NUMPY"):
        with path.open("rb") as fh:
            return b"'|O'" in fh.read(256)
    return False


def scan_file(path: Path) -> PickleVerdict:
    if not is_pickle_based(path):
        return PickleVerdict(False)
    import logging

    from picklescan.scanner import scan_file_path

    logging.getLogger("picklescan").setLevel(logging.CRITICAL)  # it logs to the root logger
    try:
        result = scan_file_path(str(path))
    except Exception as exc:  # picklescan raises its own zoo of errors on odd bytes
        return PickleVerdict(True, error=f"{type(exc).__name__}: {exc}")
    unsafe = sorted({f"{g.module}.{g.name}" for g in result.globals
                     if g.name not in SAFE_GLOBALS.get(g.module, frozenset())})
    if result.scan_err and not unsafe:
        return PickleVerdict(True, error="its opcodes could not be parsed")
    return PickleVerdict(True, tuple(unsafe))


def check_pickles(root: Path, files: list[str], allow: list[str]) -> HookOutcome:
    out = HookOutcome()
    for rel in files:
        path = root / rel
        if PurePosixPath(rel).suffix.lower() not in CANDIDATE_SUFFIXES or not path.is_file():
            continue
        out.checked.append(rel)
        verdict = scan_file(path)
        if not verdict.is_pickle:
            continue
        allowed = any(fnmatch.fnmatch(rel, pat) for pat in allow)
        if verdict.unsafe:
            out.problems.append(Problem(rel, None, "pickle imports "
                                        + ", ".join(verdict.unsafe)
                                        + ", which can run code when loaded; refused even if "
                                        "allow-listed. Export safetensors or ONNX instead"))
        elif verdict.error:
            out.problems.append(Problem(rel, None, f"pickle-based and cannot be checked "
                                        f"({verdict.error}); export safetensors or ONNX"))
        elif not allowed:
            out.problems.append(Problem(rel, None, "pickle-based (loading it runs code); "
                                        "export safetensors or ONNX, or allow-list it with "
                                        f"`args: [--allow, {rel}]` in .pre-commit-config.yaml"))
    if not out.checked:
        out.skipped = "no pickle-capable files among the files to check"
    return out
