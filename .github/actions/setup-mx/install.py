"""Install mx, with extras, for the CPU or for CUDA (setup-mx's `device` input).

cpu:  pip install "MX[extras]" (mx's core dependencies include onnxruntime, the CPU build).
cuda: ONNX Runtime's CUDA build is the distribution onnxruntime-gpu, which ships the same
      `onnxruntime` module as the CPU build: both in one environment overwrite each other's
      files, and pip can neither drop a core dependency for an extra nor exclude a package
      from a resolution. So the environment is resolved once for "MX[gpu,extras]" (pip's
      --dry-run --report), onnxruntime is taken out of that resolution, and the rest is
      installed exactly as resolved (--no-deps). The CPU build is never installed;
      `pip check` will say mx wants onnxruntime, which onnxruntime-gpu stands in for.

--dry-run prints the requirements that would be installed, one a line, and installs nothing.
Standard library only: it runs before mx is installed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CPU_RUNTIME = "onnxruntime"


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def target(mx: str, extras: list[str]) -> str:
    return f"{mx}[{','.join(extras)}]" if extras else mx


def plan(mx: str, extras: list[str]) -> list[str]:
    """What device=cuda installs: `name==version` for each package pip resolves for
    MX[gpu,extras] but onnxruntime, and `mx` itself as the path it came from."""
    with tempfile.TemporaryDirectory(prefix="setup-mx-") as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                        "--ignore-installed", "--report", str(report),
                        target(mx, ["gpu", *extras])], check=True)
        resolved = json.loads(report.read_text())["install"]
    out: list[str] = []
    for item in resolved:
        name = item["metadata"]["name"]
        if _norm(name) == CPU_RUNTIME:
            continue
        out.append(mx if _norm(name) == "mx" else f"{name}=={item['metadata']['version']}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mx", help="where mx is: a path (the action's checkout) or a requirement")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--extras", default="", help="comma-separated mx extras")
    parser.add_argument("--dry-run", action="store_true", help="print what would be installed")
    args = parser.parse_args(argv)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    pip = [sys.executable, "-m", "pip", "install"]
    if args.device == "cpu":
        command = [*pip, target(args.mx, extras)]
        if args.dry_run:
            print(" ".join(command))
            return 0
        return subprocess.run(command).returncode
    requirements = plan(args.mx, extras)
    if args.dry_run:
        print("\n".join(requirements))
        return 0
    return subprocess.run([*pip, "--no-deps", *requirements]).returncode


if __name__ == "__main__":
    sys.exit(main())
