"""Bench backends: plugins that load an artifact on a device and return a callable.

onnxruntime runs `onnx` and `ort` files on its CPU or CUDA provider; PyTorch runs
TorchScript on CPU or CUDA, so a GPU runner with PyTorch but no onnxruntime-gpu still
measures its GPU. Asking for a device a backend cannot reach is an error, never a
silent CPU run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mx.check.verdict import ort_reason
from mx.errors import DeviceUnavailable, MxError
from mx.frameworks import require
from mx.runtimes import ort_session, run_failed
from mx.sampling import Feeds


@dataclass
class Loaded:
    run: Callable[[Feeds], Any]
    backend: str
    version: str
    provider: str
    gpu: str | None = None


class BenchBackend(Protocol):
    name: str
    formats: tuple[str, ...]

    def load(self, path: Path, device: str, threads: int) -> Loaded: ...


class OnnxRuntimeBackend:
    name = "onnxruntime"
    formats: tuple[str, ...] = ("onnx", "ort")

    def load(self, path: Path, device: str, threads: int) -> Loaded:
        import onnxruntime as ort


        provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
        if provider not in ort.get_available_providers():
            raise DeviceUnavailable(
                f"--device {device}: this onnxruntime ({ort.__version__}) has no {provider} "
                f"(it has {', '.join(ort.get_available_providers())})",
                hint="install onnxruntime-gpu on a CUDA machine, or bench TorchScript "
                     "artifacts with the PyTorch backend")
        try:
            session = ort_session(path, [provider], threads)
        except Exception as exc:

            raise MxError(f"{path}: onnxruntime cannot load it: {ort_reason(exc)}") from None
        if session.get_providers()[0] != provider:
            raise DeviceUnavailable(f"--device {device}: onnxruntime could not start "
                                    f"{provider} here")
        names = {i.name for i in session.get_inputs()}

        def run(feeds: Feeds) -> Any:

            given = {k: v for k, v in feeds.items() if k in names}
            try:
                return session.run(None, given)
            except Exception as exc:  # onnxruntime's own exception types
                raise run_failed(path, given, exc) from None

        return Loaded(run, self.name, ort.__version__, provider, _gpu_name() if
                      device == "cuda" else None)


class TorchBackend:
    name = "pytorch"
    formats: tuple[str, ...] = ("torchscript",)

    def load(self, path: Path, device: str, threads: int) -> Loaded:
        torch = require("torch")
        if device == "cuda" and not torch.cuda.is_available():
            raise DeviceUnavailable(f"--device cuda: PyTorch {torch.__version__} sees no "
                                    "CUDA device here")
        if threads:
            torch.set_num_threads(threads)
        module = torch.jit.load(str(path), map_location=device).eval()

        def run(feeds: Feeds) -> Any:
            with torch.no_grad():
                out = module(*(torch.from_numpy(v).to(device) for v in feeds.values()))
            if device == "cuda":
                torch.cuda.synchronize()
            return out

        gpu = torch.cuda.get_device_name(0) if device == "cuda" else None
        return Loaded(run, self.name, torch.__version__,
                      "cuda" if device == "cuda" else "cpu", gpu)


BACKENDS: dict[str, BenchBackend] = {"onnxruntime": OnnxRuntimeBackend(),
                                     "pytorch": TorchBackend()}


def backend_for(fmt: str) -> BenchBackend | None:
    return next((b for b in BACKENDS.values() if fmt in b.formats), None)


def _gpu_name() -> str | None:
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None
