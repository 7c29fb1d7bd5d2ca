"""`mx cache ls|verify|prune|clean`"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mx.errors import IntegrityError

if TYPE_CHECKING:
    from mx.client.cache import Cache


def _cache() -> Cache:
    from mx.client.cache import Cache
    from mx.config import default_home

    return Cache(default_home())


@click.group()
def cache() -> None:
    """Inspect and tidy the local model cache ($MX_HOME)."""


@cache.command("ls")
@click.option("--json", "as_json", is_flag=True)
def ls(as_json: bool) -> None:
    """List installed models."""
    from mx.cli.output import emit_json, human_size

    rows = _cache().installed()
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']:<32} {r['version']:<14} {r['variant']:<8} "
                   f"{human_size(r['size']):>10}  {r['path']}")
    if not rows:
        click.echo("(no models installed)", err=True)


@cache.command()
@click.option("--repair", is_flag=True, help="Remove corrupt blobs and the models using them.")
@click.option("--json", "as_json", is_flag=True)
def verify(repair: bool, as_json: bool) -> None:
    """Re-hash every cached blob."""
    from mx.cli.output import emit_json

    bad = _cache().verify(repair)
    if as_json:
        emit_json({"corrupt": bad, "repaired": repair})
    for sha in bad:
        click.echo(f"corrupt blob {sha}" + (" (removed)" if repair else ""), err=True)
    if bad and not repair:
        raise IntegrityError(f"{len(bad)} corrupt blob(s) in the cache",
                             hint="run `mx cache verify --repair`, then install again")
    if not as_json and not bad:
        click.echo("cache ok", err=True)


@cache.command()
def prune() -> None:
    """Remove blobs no installed model uses, and stale temp files."""
    from mx.cli.output import human_size

    count, freed = _cache().prune()
    click.echo(f"removed {count} files, {human_size(freed)}")


@cache.command()
@click.option("--yes", is_flag=True, help="Do not ask.")
def clean(yes: bool) -> None:
    """Remove everything in the cache."""
    c = _cache()
    if not yes:
        click.confirm(f"remove everything under {c.home}?", abort=True)
    c.clean()
    click.echo(f"emptied {c.home}")
