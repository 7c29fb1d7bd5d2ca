"""`mx hook NAME [FILES...]`: the entry points `.pre-commit-hooks.yaml` names."""

from __future__ import annotations

from pathlib import Path

import click

from mx.hooks import HookOutcome

_files = click.argument("files", nargs=-1, type=click.Path(path_type=Path))


@click.group()
def hook() -> None:
    """Pre-commit hook entry points (see .pre-commit-hooks.yaml)."""


def _rel(root: Path, files: tuple[Path, ...]) -> list[str]:
    out = []
    for f in files:
        p = f if f.is_absolute() else Path.cwd() / f
        try:
            out.append(p.resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            raise click.UsageError(f"{f}: not inside the repository {root}") from None
    return out


def _finish(name: str, outcome: HookOutcome) -> None:
    from mx.errors import ValidationFailed

    for problem in outcome.problems:
        click.echo(str(problem), err=True)
    if outcome.skipped and not outcome.problems:
        click.echo(f"{name}: skipped: {outcome.skipped}", err=True)
    if not outcome.ok:
        n = sum(p.severity == "error" for p in outcome.problems)
        raise ValidationFailed(f"{name}: {n} problem{'s' if n != 1 else ''} found",
                               hint="fix the lines above, `git add` the fixes, commit again")


@hook.command("validate")
@_files
def validate_hook(files: tuple[Path, ...]) -> None:
    """mx validate on every model directory the files belong to."""
    from mx.hooks.model_checks import check_models
    from mx.hooks.scope import repo_root

    root = repo_root(Path.cwd())
    _finish("mx-validate", check_models(root, _rel(root, files), card_only=False))


@hook.command("card")
@_files
def card_hook(files: tuple[Path, ...]) -> None:
    """Model card checks (sections, license) for the touched model directories."""
    from mx.hooks.model_checks import check_models
    from mx.hooks.scope import repo_root

    root = repo_root(Path.cwd())
    _finish("mx-card", check_models(root, _rel(root, files), card_only=True))


@hook.command("lfs")
@click.option("--max-size", default=512 * 1024, show_default=True, type=click.IntRange(1),
              help="Largest binary (bytes) allowed outside Git LFS.")
@_files
def lfs_hook(max_size: int, files: tuple[Path, ...]) -> None:
    """Artifacts are covered by .gitattributes and staged as well-formed LFS pointers."""
    from mx.hooks.lfs_check import check_lfs
    from mx.hooks.scope import repo_root

    root = repo_root(Path.cwd())
    _finish("mx-lfs", check_lfs(root, _rel(root, files), max_size))


@hook.command("no-pickle")
@click.option("--allow", multiple=True, metavar="GLOB",
              help="Allow these pickle files (still scanned for unsafe imports).")
@_files
def no_pickle_hook(allow: tuple[str, ...], files: tuple[Path, ...]) -> None:
    """Refuse pickle-based files (.pt, .pth, .pkl, .bin, joblib) unless allow-listed."""
    from mx.hooks.pickle_scan import check_pickles
    from mx.hooks.scope import repo_root, tracked_files

    root = repo_root(Path.cwd())
    rel = _rel(root, files) or tracked_files(root)
    _finish("mx-no-pickle", check_pickles(root, rel, list(allow)))
