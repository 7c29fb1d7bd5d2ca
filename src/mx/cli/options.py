"""Options several commands share, defined once so their names, help and environment
variables agree."""

from __future__ import annotations

import click

registry_option = click.option(
    "--registry", envvar="MX_REGISTRY", show_envvar=True,
    help="Registry base URL, local folder, or a name from config.toml "
         "[default: default_registry].")

allow_unsigned_index_option = click.option(
    "--allow-unsigned-index", is_flag=True, envvar="MX_ALLOW_UNSIGNED_INDEX",
    show_envvar=True, help="Read a registry that publishes no signed (TUF) metadata.")
