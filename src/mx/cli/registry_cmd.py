"""`mx registry promote|yank|unyank|history`: curation, as edits to registry.yaml."""

from __future__ import annotations

from pathlib import Path

import click

_registry = click.option("-r", "--registry", "registry_file", default="registry.yaml",
                         show_default=True,
                         type=click.Path(dir_okay=False, exists=True, path_type=Path),
                         help="The registry.yaml to edit.")
_no_check = click.option("--no-check", is_flag=True,
                         help="Do not read the sources to check that the version was released.")


@click.group()
def registry() -> None:
    """Curate a registry: channels, yanks, and their history (edits registry.yaml)."""


def _known(registry_file: Path, name: str, no_check: bool) -> set[str] | None:
    if no_check:
        return None
    from mx.config import default_home
    from mx.curation.versions import released_versions

    return released_versions(registry_file, name, default_home() / "build")


def _done(summary: str, path: Path) -> None:
    click.echo(f"{path}: {summary}")
    click.echo(f"next: git commit -m \"{summary}\" {path}, and open a pull request", err=True)


@registry.command()
@click.argument("name")
@click.argument("version")
@click.option("--channel", default="stable", show_default=True)
@_registry
@_no_check
def promote(name: str, version: str, channel: str, registry_file: Path, no_check: bool) -> None:
    """Point CHANNEL of NAME at VERSION (a released version)."""
    from mx.curation.edit import promote as run

    edit = run(registry_file, name, version, channel, _known(registry_file, name, no_check))
    _done(edit.summary, registry_file)


@registry.command()
@click.argument("name")
@click.argument("version")
@click.option("--reason", required=True, help="Why, and what to use instead.")
@_registry
@_no_check
def yank(name: str, version: str, reason: str, registry_file: Path, no_check: bool) -> None:
    """Mark VERSION of NAME yanked: ranges stop choosing it."""
    from mx.curation.edit import yank as run

    edit = run(registry_file, name, version, reason, _known(registry_file, name, no_check))
    _done(edit.summary, registry_file)


@registry.command()
@click.argument("name")
@click.argument("version")
@_registry
def unyank(name: str, version: str, registry_file: Path) -> None:
    """Take a yank back."""
    from mx.curation.edit import unyank as run

    _done(run(registry_file, name, version).summary, registry_file)


@registry.command()
@click.argument("name")
@_registry
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON.")
def history(name: str, registry_file: Path, as_json: bool) -> None:
    """Promotions and yanks of NAME: who, when, which commit (from git history)."""
    from mx.cli.output import emit_json
    from mx.curation.history import history as run

    events = run(registry_file, name)
    if as_json:
        emit_json([e.to_json() for e in events])
        return
    if not events:
        click.echo(f"no channel or yank changes for {name} in {registry_file}'s history", err=True)
    for e in events:
        what = {"promote": f"promoted {e.version} to {e.channel}"
                           + (f" (was {e.previous})" if e.previous else ""),
                "unpromote": f"removed channel {e.channel} (was {e.version})",
                "yank": f"yanked {e.version}: {e.reason}",
                "unyank": f"unyanked {e.version}"}[e.action]
        click.echo(f"{e.date}  {e.commit[:12]}  {e.author} <{e.email}>  {what}")


@registry.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--root", "root_file", type=click.Path(dir_okay=False, exists=True,
                                                     path_type=Path),
              help="Pin this root.json (from the registry's keepers) as the root of trust.")
@click.option("--root-sha256", help="Pin the root whose file has this sha256.")
@click.option("--allow-unsigned-index", is_flag=True,
              help="Read this registry even though it publishes no signed metadata.")
@click.option("--require-signatures", is_flag=True,
              help="Refuse releases of this registry that are not signed.")
@click.option("--default", "make_default", is_flag=True,
              help="Make it the default registry.")
def add(name: str, url: str, root_file: Path | None, root_sha256: str | None,
        allow_unsigned_index: bool, require_signatures: bool, make_default: bool) -> None:
    """Add (or replace) registry NAME at URL in the user's config.toml."""
    from mx.client.config_edit import add_registry

    path = add_registry(name, url, root_file, root_sha256, allow_unsigned_index,
                        require_signatures, make_default)
    pinned = ("root pinned" if root_file or root_sha256 else
              "root trusted on first use" if not allow_unsigned_index else "unsigned index")
    click.echo(f"{path}: registry {name} = {url} ({pinned})")
