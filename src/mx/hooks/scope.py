"""Which model directories and files a hook run is about."""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath

from mx.errors import GitError
from mx.names import MANIFEST_FILE


def repo_root(start: Path) -> Path:
    proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise GitError(f"{start}: not inside a git work tree",
                       hint="pre-commit hooks run in a git repository; run `git init` first")
    return Path(proc.stdout.strip())


def tracked_files(root: Path) -> list[str]:
    """Files in the index (staged or committed), relative to the root, posix style."""
    proc = subprocess.run(["git", "ls-files", "-z", "--cached"], cwd=root,
                          capture_output=True, check=True)
    return [p for p in proc.stdout.decode("utf-8", "replace").split("\0") if p]


def manifest_dirs(paths: list[str]) -> set[str]:
    """Directories ('.' = root) of the mx.yaml files among repository paths."""
    return {str(PurePosixPath(p).parent) for p in paths if PurePosixPath(p).name == MANIFEST_FILE}


def model_dirs(root: Path, tracked: list[str]) -> list[str]:
    """Directories holding an mx.yaml, from the index and the work tree ('.' = root)."""
    dirs = manifest_dirs(tracked)
    if (root / MANIFEST_FILE).is_file():
        dirs.add(".")
    return sorted(dirs)


def owner(path: str, dirs: list[str]) -> str | None:
    """The nearest model directory containing `path`, if any."""
    inside = [d for d in dirs if d == "." or path == d or path.startswith(d + "/")]
    # the deepest directory wins; "." (the root) only when nothing else holds the path
    return max(inside, key=lambda d: -1 if d == "." else len(d), default=None)


def dirs_for(files: list[str], dirs: list[str]) -> list[str]:
    """Model directories touched by `files`; all of them when no files were given."""
    if not files:
        return dirs
    return sorted({d for f in files if (d := owner(f, dirs)) is not None})
