"""The setup-mx action: what it installs for a CPU runner and for a CUDA one.

The CUDA case is resolved for real by pip (its --dry-run --report, against the package
index), with no GPU: the GPU job's environment must hold ONNX Runtime's CUDA build and not
its CPU build, which ships the same `onnxruntime` module and would shadow it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / ".github" / "actions" / "setup-mx"
INSTALL = ACTION / "install.py"


def _install(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(INSTALL), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def test_the_gpu_extra_is_the_cuda_build_of_onnx_runtime() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (gpu,) = project["optional-dependencies"]["gpu"]
    assert re.match(r"onnxruntime-gpu\b", gpu)
    assert any(re.match(r"onnxruntime\b(?!-)", d) for d in project["dependencies"])


def test_the_action_passes_its_device_to_install_py() -> None:
    action = yaml.safe_load((ACTION / "action.yml").read_text())
    assert action["inputs"]["device"]["default"] == "cpu"
    (step,) = [s for s in action["runs"]["steps"] if "run" in s]
    assert "install.py" in step["run"] and '--device "$DEVICE"' in step["run"]
    assert step["env"]["DEVICE"] == "${{ inputs.device }}"
    workflow = yaml.safe_load((ROOT / ".github/workflows/model-ci.yml").read_text())
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            if "setup-mx" in step.get("uses", ""):
                assert step["with"].get("device", "cpu") == ("cuda" if name == "gpu" else "cpu")


def test_cpu_installs_mx_with_its_extras() -> None:
    proc = _install(".", "--extras", "torch, sklearn", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == ".[torch,sklearn]"
    assert _install(".", "--dry-run").stdout.split()[-1] == "."


@pytest.mark.slow
def test_cuda_resolves_to_onnxruntime_gpu_and_never_the_cpu_build() -> None:
    try:
        proc = _install(".", "--device", "cuda", "--extras", "sklearn", "--dry-run",
                        timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("pip could not resolve mx[gpu] within 300 s (the package index is slow)")
    if proc.returncode != 0 and re.search(r"NewConnectionError|Max retries|Temporary failure "
                                          r"in name resolution|No matching distribution",
                                          proc.stderr):
        pytest.skip(f"the package index is out of reach: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    names = {re.split(r"==", line)[0].lower().replace("_", "-") for line in lines}
    assert "onnxruntime-gpu" in names
    assert "onnxruntime" not in names  # the CPU build is resolved, then left out
    assert {"onnx", "numpy", "scikit-learn", "skl2onnx"} <= names  # the rest as resolved
    assert "." in lines  # mx itself, from the action's checkout
    assert all(line == "." or re.fullmatch(r"[A-Za-z0-9_.-]+==\S+", line) for line in lines)
