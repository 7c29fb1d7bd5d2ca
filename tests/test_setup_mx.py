"""The setup-mx action: what it installs for a CPU runner and for a CUDA one.

The CUDA case is resolved for real by pip (its --dry-run --report), offline against a local
index of small wheels, with no GPU: the GPU job's environment must hold ONNX Runtime's CUDA
build and not its CPU build, which ships the same `onnxruntime` module and would shadow it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

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


def _wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    """A minimal real wheel (metadata only): what pip's resolver reads."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Provides-Extra: {e}" for e in sorted({r.split("extra == ")[1].strip('"')
                                                     for r in requires if "extra ==" in r})]
    meta += [f"Requires-Dist: {r}" for r in requires]
    files = {f"{dist}.dist-info/METADATA": "\n".join(meta) + "\n",
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                                         "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = f"{dist}.dist-info/RECORD"
    files[record] = "".join(f"{f},,\n" for f in [*files, record])
    with zipfile.ZipFile(path, "w") as z:
        for rel, text in files.items():
            z.writestr(rel, text)
    return path


def test_cuda_resolves_to_onnxruntime_gpu_and_never_the_cpu_build(tmp_path: Path) -> None:
    """pip resolves for real, offline, against a local index of small wheels standing in
    for mx and its dependencies: the CUDA plan holds onnxruntime-gpu, every other package
    as resolved, mx as the path it came from, and never the CPU build."""
    index = tmp_path / "index"
    index.mkdir()
    mx = _wheel(index, "mx", "0.1.0", ["onnxruntime>=1.20", "numpy",
                                       'onnxruntime-gpu>=1.20; extra == "gpu"',
                                       'scikit-learn; extra == "sklearn"'])
    _wheel(index, "onnxruntime", "1.23.0", ["numpy"])
    _wheel(index, "onnxruntime-gpu", "1.23.0", ["numpy"])
    _wheel(index, "numpy", "2.3.0", [])
    _wheel(index, "scikit-learn", "1.7.0", ["numpy"])
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index),
           "PIP_CONFIG_FILE": os.devnull, "PIP_CONSTRAINT": "",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run([sys.executable, str(INSTALL), str(mx), "--device", "cuda",
                           "--extras", "sklearn", "--dry-run"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert sorted(lines) == sorted([str(mx), "onnxruntime-gpu==1.23.0", "numpy==2.3.0",
                                    "scikit-learn==1.7.0"])
