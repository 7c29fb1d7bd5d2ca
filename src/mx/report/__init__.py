"""`mx report`: what a pull request changes in each model, for review.

`build_report` gathers plain data (also the `--json` output); `render.markdown` turns it
into the comment CI posts. The head is the work tree, or a revision checked out into a
temporary git worktree so validation and the LFS checks see real files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mx.gitrepo import join
from mx.hooks.lfs_check import check_lfs
from mx.hooks.scope import repo_root
from mx.report import compare
from mx.report.states import load_state, model_dirs, resolve
from mx.validate import validate_model

MARKER = "<!-- mx-report -->"


@contextlib.contextmanager
def head_tree(root: Path, head: str | None) -> Iterator[Path]:
    if head is None:
        yield root
        return
    tmp = Path(tempfile.mkdtemp(prefix="mx-report-"))
    where = tmp / "head"
    try:
        subprocess.run(["git", "worktree", "add", "--detach", "-f", str(where), head], cwd=root,
                       capture_output=True, check=True)
        yield where
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=root,
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def build_report(root: Path, base: str, head: str | None = None) -> dict[str, Any]:

    root = repo_root(root)
    base_sha = resolve(root, base, "--base")
    head_sha = resolve(root, head, "--head") if head is not None else None
    out: dict[str, Any] = {"base": {"rev": base, "commit": base_sha},
                           "head": {"rev": head or "work tree", "commit": head_sha},
                           "models": []}
    with head_tree(root, head_sha) as tree:
        dirs = sorted(set(model_dirs(tree, None)) | set(model_dirs(root, base_sha)))
        for d in dirs:
            before = load_state(root, base_sha, d)
            after = load_state(tree, None, d)
            out["models"].append(_model(tree, d, before, after))
        lfs = check_lfs(tree, [])
        out["lfs"] = {"ok": lfs.ok, "problems": [str(p) for p in lfs.problems]}
    return out


def _model(tree: Path, d: str, before: Any, after: Any) -> dict[str, Any]:
    ref = after or before
    validation = _validate(tree, d, after) if after is not None else None
    entry: dict[str, Any] = {
        "model_dir": d, "name": ref.name,
        "status": "added" if before is None else "removed" if after is None else "modified",
        "base_version": before.manifest.get("version") if before else None,
        "head_version": after.manifest.get("version") if after else None,
        "manifest_diff": compare.unified(before.manifest_text if before else "",
                                         after.manifest_text if after else "", join(d, "mx.yaml")),
        "artifacts": compare.artifact_changes(before, after),
        "quality": compare.quality_changes(before, after),
        "benchmarks": compare.bench_changes(before, after),
        "card": compare.card_changes(before, after),
        "validation": validation,
    }
    return entry


def _validate(tree: Path, d: str, after: Any) -> dict[str, Any]:

    report = validate_model(tree / d)
    for path, digest in report.digests.items():  # hashed once, by validation
        after.digests.setdefault(path, digest)
    return {"ok": report.ok,
            "problems": [{"path": os.path.relpath(p.path, tree) if os.path.isabs(p.path)
                          else p.path, "line": p.line, "message": p.message,
                          "severity": p.severity} for p in report.problems]}
