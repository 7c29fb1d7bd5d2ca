"""The CPU features that decide how int8 arithmetic behaves, as read from the OS.

onnxruntime picks its int8 matrix kernels by instruction set: on x86, AVX2 without VNNI
multiplies u8 by s8 into a saturating int16 (VPMADDUBSW), while AVX-VNNI / AVX512-VNNI
and AMX accumulate in int32. A quality figure measured on one kind of CPU therefore
says which kind it was measured on.
"""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path

# /proc/cpuinfo flag names (x86 "flags", arm "Features") worth recording, in this order.
RELEVANT = ("sse4_1", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
            "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_int8", "amx_bf16",
            "asimd", "asimddp", "i8mm", "sve", "bf16")
INT8_ACCUMULATING = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def cpu_features() -> tuple[str, ...]:
    """Relevant features of the CPU this process runs on (empty where unknown)."""
    flags: set[str] = set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
            break  # every core reports the same list
    if not flags and platform.machine().lower() in ("arm64", "aarch64"):
        flags.update(("asimd",))  # NEON is part of the 64-bit Arm architecture
    return tuple(f for f in RELEVANT if f in flags)


def int8_kind(features: tuple[str, ...] | None = None) -> str:
    """`vnni` where int8 products accumulate exactly, `avx2` where u8s8 saturates in
    int16, else `other` (no int8 dot product instructions mx knows of)."""
    feats = cpu_features() if features is None else features
    if any(f in feats for f in INT8_ACCUMULATING):
        return "vnni"
    if "avx2" in feats:
        return "avx2"
    return "other"


def measured_on() -> dict[str, object]:
    """What a quality figure records about where it was measured."""
    import onnxruntime as ort

    return {"cpu": cpu_model(), "features": list(cpu_features()), "int8": int8_kind(),
            "onnxruntime": ort.__version__}


def describe(where: dict[str, object]) -> str:
    """`AMD EPYC 7B13 (avx2, no VNNI)` for messages."""
    kind = where.get("int8")
    what = {"avx2": "avx2, no VNNI", "vnni": "VNNI"}.get(str(kind), "no AVX2 or VNNI")
    return f"{where.get('cpu')} ({what})"
