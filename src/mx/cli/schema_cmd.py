"""`mx schema manifest`"""

from __future__ import annotations

import click


@click.command()
@click.argument("what", type=click.Choice(["manifest"]))
def schema(what: str) -> None:
    """Print the JSON Schema of a format (the manifest, mx.yaml)."""
    from mx.cli.output import emit_json
    from mx.manifest import json_schema

    emit_json(json_schema())
