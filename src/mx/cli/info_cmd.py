"""`mx info ns/name [--json]`"""

from __future__ import annotations

import click

from mx.cli.options import allow_unsigned_index_option, registry_option


@click.command()
@click.argument("name")
@registry_option
@allow_unsigned_index_option
@click.option("--offline", is_flag=True, default=None, help="Use only the cached index.")
@click.option("--json", "as_json", is_flag=True, help="Print the index document as JSON.")
def info(name: str, registry: str | None, allow_unsigned_index: bool, offline: bool | None,
         as_json: bool) -> None:
    """Show a model's versions, channels, yanks and variants."""
    from mx.cli.output import emit_json, human_size, warn
    from mx.client.install import ClientSession
    from mx.client.spec import parse_requirement
    from mx.config import load_settings
    from mx.index_builder.build import latest_version
    from mx.semver import Version

    req = parse_requirement(name)
    settings = load_settings(registry, offline, allow_unsigned_index=allow_unsigned_index or None)
    session = ClientSession(settings, refresh=True)
    try:
        doc = session.index().model(req.name)
        for notice in session.take_notices():
            warn(notice)
    finally:
        session.close()
    if as_json:
        emit_json(doc)
        return
    latest = latest_version(doc)
    m = doc["versions"][latest]["manifest"] if latest else {}
    click.echo(f"{doc['name']}  {m.get('summary', '')}")
    click.echo(f"  license {m.get('license', '?')}   task {m.get('task') or '-'}   "
               f"latest {latest or '-'}")
    if doc.get("channels"):
        click.echo("  channels " + ", ".join(f"{k}={v}" for k, v in
                                             sorted(doc["channels"].items())))
    click.echo("  versions:")
    for v in sorted(doc["versions"], key=Version.parse, reverse=True):
        rec = doc["versions"][v]
        mark = f"  YANKED: {rec.get('yanked_reason') or ''}" if rec.get("yanked") else ""
        click.echo(f"    {v:<16} {rec.get('created', '')}{mark}")
        for a in rec["artifacts"]:
            click.echo(f"      {a.get('variant', 'fp32'):<8} {a['format']:<12} "
                       f"{human_size(a['size']):>10}  {a['path']}")
