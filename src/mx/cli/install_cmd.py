"""`mx install [ns/name@RANGE ...] [--variant] [--format] [--to DIR] [--locked]`"""

from __future__ import annotations

from pathlib import Path

import click

from mx.cli.options import allow_unsigned_index_option, registry_option


@click.command()
@click.argument("specs", nargs=-1)
@click.option("--variant", help="Variant to install (default fp32).")
@click.option("--format", "fmt", help="Only this artifact format (onnx, ort, ...).")
@click.option("--to", "to", type=click.Path(file_okay=False, path_type=Path),
              help="Also place the files in this folder.")
@registry_option
@click.option("--offline", is_flag=True, default=None, help="Use only the cache.")
@click.option("--refresh", is_flag=True, help="Ask the registry even if the cached index is fresh.")
@click.option("--allow-unsigned", is_flag=True,
              help="Install a release even if signatures are required and it has none.")
@allow_unsigned_index_option
@click.option("--locked", is_flag=True, help="Install exactly mx.lock; never read the index.")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=".",
              help="Folder holding mx.toml (when no model is named).")
@click.option("--json", "as_json", is_flag=True, help="Print what was installed as JSON.")
def install(specs: tuple[str, ...], variant: str | None, fmt: str | None, to: Path | None,
            registry: str | None, offline: bool | None, refresh: bool, allow_unsigned: bool,
            allow_unsigned_index: bool, locked: bool,
            project: Path,
            as_json: bool) -> None:
    """Install models into the verified cache (with no argument: those in mx.toml)."""
    from mx.cli.output import emit_json, progress_bar, warn
    from mx.client.install import ClientSession, install_requirement
    from mx.client.spec import parse_requirement
    from mx.config import load_settings

    if specs and locked:
        raise click.UsageError("--locked installs mx.lock; name no models with it")
    project_registry = None
    if not specs:
        from mx.client.project import read_project

        project_registry, _ = read_project(project / "mx.toml")
    settings = load_settings(registry, offline, project_registry=project_registry,
                             allow_unsigned_index=allow_unsigned_index or None)
    with progress_bar(not as_json) as bar:
        session = ClientSession(settings, bar, refresh, allow_unsigned)
        try:
            if specs:
                results = [install_requirement(session, parse_requirement(s), variant, fmt, to)
                           for s in specs]
            else:
                from mx.client.project import install_project

                results = install_project(session, project, locked)
        finally:
            session.close()
    for r in results:
        for w in r.warnings:
            warn(w)
    if as_json:
        emit_json([r.to_json() for r in results])
        return
    for r in results:
        where = next(iter(r.files.values())).parent if to and r.files else r.path
        verb = "installed" if r.downloaded else "already installed"
        click.echo(f"{r.name} {r.version} ({r.variant}) {verb}: {where}")
