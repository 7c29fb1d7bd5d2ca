"""`mx search QUERY [--task] [--tag] [--json]`"""

from __future__ import annotations

import click

from mx.cli.options import allow_unsigned_index_option, registry_option


@click.command()
@click.argument("query", default="")
@click.option("--task", help="Only models for this task (e.g. text-classification).")
@click.option("--tag", help="Only models with this tag.")
@registry_option
@allow_unsigned_index_option
@click.option("--offline", is_flag=True, default=None, help="Use only the cached listing.")
@click.option("--json", "as_json", is_flag=True)
def search(query: str, task: str | None, tag: str | None, registry: str | None,
           allow_unsigned_index: bool, offline: bool | None, as_json: bool) -> None:
    """Find models by name, summary, task and tags."""
    from mx.cli.output import emit_json, warn
    from mx.client.install import ClientSession
    from mx.client.search import search as run_search
    from mx.config import load_settings

    session = ClientSession(load_settings(registry, offline,
                                     allow_unsigned_index=allow_unsigned_index or None))
    try:
        found = run_search(session.index().search_listing(), query, task, tag)
        for notice in session.take_notices():
            warn(notice)
    finally:
        session.close()
    if as_json:
        emit_json(found)
        return
    for m in found:
        tags = ", ".join(m.get("tags") or [])
        click.echo(f"{m['name']:<32} {m.get('latest', ''):<12} {m.get('task') or '-':<24} "
                   f"{m.get('summary', '')}" + (f"  [{tags}]" if tags else ""))
    if not found:
        click.echo("no models match", err=True)
