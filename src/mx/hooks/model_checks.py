"""`mx-validate` and `mx-card`: run mx's own checks on the model directories a commit touches."""

from __future__ import annotations

import os
from pathlib import Path

from mx import lfs
from mx.errors import ConfigError
from mx.hooks import HookOutcome
from mx.hooks.scope import dirs_for, model_dirs, tracked_files
from mx.manifest import load_manifest
from mx.validate import Problem, card_check, validate_model


def check_models(root: Path, files: list[str], card_only: bool) -> HookOutcome:
    tracked = tracked_files(root)
    dirs = model_dirs(root, tracked)
    out = HookOutcome()
    if not dirs:
        orphans = [f for f in (files or tracked) if lfs.matches_any(f, lfs.DEFAULT_PATTERNS)]
        if orphans:
            out.problems.append(Problem(orphans[0], None, "a model file with no mx.yaml in its "
                                        "directory or above; run `mx init --name ns/name` there"))
        else:
            out.skipped = "no mx.yaml in this repository; nothing to check"
        return out
    touched = dirs_for(files, dirs)
    if not touched:
        out.skipped = "the staged files belong to no model directory"
        return out
    for d in touched:
        out.checked.append(d)
        # relative to where pre-commit runs (the root), so messages name repo paths
        here = Path(os.path.relpath(root / d))
        out.problems += _card(here) if card_only else _validate(here)
    return out


def _validate(model_dir: Path) -> list[Problem]:

    return validate_model(model_dir).problems


def _card(model_dir: Path) -> list[Problem]:

    try:
        loaded = load_manifest(model_dir)
    except ConfigError:
        return []  # mx-validate reports a broken manifest; the card needs its license
    return card_check.check(loaded)
