"""`mx validate [DIR] [--write] [--json]`"""

from __future__ import annotations

from pathlib import Path

import click

from mx.errors import ValidationFailed


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--write", is_flag=True, help="Fill in (or correct) sha256 and size in mx.yaml, "
                                            "and a missing signature from the ONNX graph.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate(directory: Path, write: bool, as_json: bool) -> None:
    """Check a model directory: manifest, card, files and hashes, LFS state, ONNX."""
    from mx.cli.output import emit_json
    from mx.validate import validate_model

    report = validate_model(directory, write=write)
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
