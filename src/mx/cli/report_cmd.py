"""`mx report --base REV [--head REV] [--json] [-o FILE]`"""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--base", required=True, help="The revision to compare against (e.g. origin/main).")
@click.option("--head", help="The revision to report on [default: the work tree].")
@click.option("-C", "--repo", "repo", type=click.Path(file_okay=False, exists=True,
                                                      path_type=Path), default=".",
              help="The repository [default: the current directory].")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report to FILE instead of standard output.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def report(base: str, head: str | None, repo: Path, output: Path | None, as_json: bool) -> None:
    """Pull-request review report: manifest diff, artifacts and sizes, LFS hygiene,
    validation, quality and benchmark deltas, card changes (Markdown)."""
    import json

    from mx.fsutil import atomic_write_bytes
    from mx.report import build_report
    from mx.report.render import markdown

    data = build_report(repo, base, head)
    text = (json.dumps(data, indent=2, sort_keys=True) + "\n") if as_json else markdown(data)
    if output is not None:
        atomic_write_bytes(output, text.encode("utf-8"))
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
