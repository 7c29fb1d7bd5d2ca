"""Run the real `pre-commit` framework against this checkout of mx.

`pre-commit try-repo` clones this repository, builds a virtualenv and pip-installs mx
into it, exactly as for a user. The one seam: tests may not download, so pip installs
mx alone (no index, no dependencies, no isolated build) and the hook environment finds
mx's dependencies on PYTHONPATH, taken from the test's own environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

MX_ROOT = Path(__file__).resolve().parents[2]


def offline_env(pre_commit_home: Path) -> dict[str, str]:
    paths = sysconfig.get_paths()
    site = os.pathsep.join(dict.fromkeys([paths["purelib"], paths["platlib"]]))
    return {**os.environ, "PRE_COMMIT_HOME": str(pre_commit_home), "PIP_NO_INDEX": "1",
            "PIP_NO_DEPS": "1", "PIP_NO_BUILD_ISOLATION": "0",  # pip reads this one inverted
            "PYTHONPATH": site}


def try_repo(repo: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`pre-commit try-repo <mx> [HOOK] ARGS` inside `repo`."""
    exe = Path(sys.executable).parent / "pre-commit"
    return subprocess.run([str(exe), "try-repo", str(MX_ROOT), *args], cwd=repo,
                          capture_output=True, text=True, env=offline_env(home), timeout=300)
