"""`mx validate [DIR] [--write] [--json] [--registry registry.yaml]`"""

from __future__ import annotations

from pathlib import Path

import click

from mx.errors import ValidationFailed


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--write", is_flag=True, help="Fill in (or correct) sha256 and size in mx.yaml, "
                                            "and a missing signature from the ONNX graph.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--registry", "registry_file", metavar="REGISTRY_YAML",
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Check the card against this registry's `card:` rules (the ones "
                   "`mx index build` applies) instead of mx's defaults.")
def validate(directory: Path, write: bool, as_json: bool, registry_file: Path | None) -> None:
    """Check a model directory: manifest, card, files and hashes, LFS state, ONNX."""
    from mx.cli.output import emit_json
    from mx.validate import validate_model

    policy = None
    if registry_file is not None:
        from mx.index_builder.registry import load_registry

        policy = load_registry(registry_file).card
    report = validate_model(directory, write=write, card_policy=policy)
    if as_json:
        emit_json(report.to_json())
    else:
        for problem in report.problems:
            click.echo(str(problem), err=problem.severity == "warning")
        if report.written:
            click.echo(f"updated {directory / 'mx.yaml'} ({', '.join(report.filled)})",
                       err=True)
        if report.ok:
            click.echo(f"{directory}: ok", err=True)
    if not report.ok:
        n = len(report.errors)
        raise ValidationFailed(f"{directory}: {n} problem{'s' if n != 1 else ''} found",
                               hint=None if as_json else "fix the lines above")
