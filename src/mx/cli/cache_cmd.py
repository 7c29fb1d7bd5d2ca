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
@click.option("--repair", is_flag=True,
              help="Remove corrupt blobs and broken installs (the next install redoes them).")
@click.option("--json", "as_json", is_flag=True)
def verify(repair: bool, as_json: bool) -> None:
    """Re-hash every cached blob and check every installed file."""
    from mx.cli.output import emit_json
    from mx.client.cache_gc import verify as verify_cache

    bad, broken = verify_cache(_cache(), repair)
    if as_json:
        emit_json({"corrupt": bad, "repaired": repair,
                   "broken": {str(k): v for k, v in sorted(broken.items())}})
    done = " (removed)" if repair else ""
    for sha in bad:
        click.echo(f"corrupt blob {sha}{done}", err=True)
    for variant_dir, files in sorted(broken.items()):
        what = ", ".join(files) if files else "uses a corrupt blob"
        click.echo(f"broken install {variant_dir}: {what}{done}", err=True)
    if (bad or broken) and not repair:
        raise IntegrityError(f"{len(bad)} corrupt blob(s) and {len(broken)} broken "
                             "install(s) in the cache",
                             hint="run `mx cache verify --repair`, then install again")
    if not as_json and not bad and not broken:
        click.echo("cache ok", err=True)


@cache.command()
def prune() -> None:
    """Remove blobs no installed model uses, and what interrupted commands left behind."""
    from mx.cli.output import human_size
    from mx.client.cache_gc import prune as prune_cache

    count, freed = prune_cache(_cache())
    click.echo(f"removed {count} files, {human_size(freed)}")


@cache.command()
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.option("--wait", type=click.FloatRange(min=0), default=600, show_default=True,
              metavar="SECONDS", help="How long to wait for other mx processes using the cache.")
def clean(yes: bool, wait: float) -> None:
    """Remove everything in the cache (once no other mx process is using it)."""
    from mx.client.cache_gc import clean as clean_cache

    c = _cache()
    if not yes:
        click.confirm(f"remove everything under {c.home}?", abort=True)
    clean_cache(c, wait)
    click.echo(f"emptied {c.home}")
