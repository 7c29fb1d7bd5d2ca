"""`mx index build registry.yaml -o OUT` and `mx index serve OUT`"""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def index() -> None:
    """Build and serve a static registry index."""


@index.command()
@click.argument("registry_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (what a static host serves).")
@click.option("--strict", is_flag=True, help="A release that fails validation is an error.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where source mirrors and build state live [default: $MX_HOME/build].")
@click.option("--allow-unsigned", is_flag=True,
              help="List unsigned releases as unsigned instead of refusing them.")
@click.option("--trust-config", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Sigstore ClientTrustConfig JSON, for keyless verification offline.")
@click.option("--no-site", is_flag=True, help="Write the index only, not the website.")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
def build(registry_file: Path, out: Path, strict: bool, cache_dir: Path | None,
          allow_unsigned: bool, trust_config: Path | None, no_site: bool,
          as_json: bool) -> None:
    """Build index/ (and mirrored artifacts) from registry.yaml and its model repos."""
    from mx.cli.output import emit_json, warn
    from mx.config import default_home
    from mx.index_builder.build import build_index

    result = build_index(registry_file, out, cache_dir or default_home() / "build", strict,
                         allow_unsigned=allow_unsigned, trust_config=trust_config,
                         site=not no_site)
    for w in result.warnings:
        warn(w)
    if as_json:
        emit_json(result.to_json())
    else:
        click.echo(f"{out}: {result.models} models, {result.versions} versions; "
                   f"{result.documents_written} documents and {result.artifacts_written} "
                   f"artifacts written; site: {result.pages_rendered} model pages rendered, "
                   f"{result.site_files_written} files updated")


@index.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(directory: Path, host: str, port: int) -> None:
    """Serve a built registry folder over HTTP (ETag and Range support), for local use."""
    from mx.devserver import base_url, make_server

    server = make_server(directory, host, port)
    click.echo(f"serving {directory} at {base_url(server)} (Ctrl-C stops)", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
