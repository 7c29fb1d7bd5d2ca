"""Entry point: one place that turns errors into exit codes.

0 success, 1 an error the user can fix (MxError: one line, then a hint),
2 usage, 3 a bug (traceback only with MX_DEBUG=1), 130 Ctrl-C.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from mx import __version__
from mx.errors import MxError

COMMANDS = {
    "init": ("mx.cli.init_cmd", "init"),
    "import": ("mx.cli.import_cmd", "import_"),
    "validate": ("mx.cli.validate_cmd", "validate"),
    "schema": ("mx.cli.schema_cmd", "schema"),
    "index": ("mx.cli.index_cmd", "index"),
    "install": ("mx.cli.install_cmd", "install"),
    "info": ("mx.cli.info_cmd", "info"),
    "cache": ("mx.cli.cache_cmd", "cache"),
    "search": ("mx.cli.search_cmd", "search"),
    "sign": ("mx.cli.sign_cmd", "sign"),
    "verify": ("mx.cli.verify_cmd", "verify"),
    "convert": ("mx.cli.convert_cmd", "convert"),
    "optimize": ("mx.cli.optimize_cmd", "optimize"),
    "check": ("mx.cli.check_cmd", "check"),
    "bench": ("mx.cli.bench_cmd", "bench"),
    "profile": ("mx.cli.profile_cmd", "profile"),
    "hook": ("mx.cli.hook_cmd", "hook"),
    "report": ("mx.cli.report_cmd", "report"),
    "registry": ("mx.cli.registry_cmd", "registry"),
    "serve": ("mx.cli.serve_cmd", "serve"),
    "run": ("mx.cli.run_cmd", "run"),
    "export": ("mx.cli.export_cmd", "export"),
    "ci": ("mx.cli.ci_cmd", "ci"),
}


class LazyGroup(click.Group):
    """Import a command's module only when it runs, so `mx install` starts fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        import importlib

        module, attr = COMMANDS[cmd_name]
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mx")
def cli() -> None:
    """mx: Git-native exchange for machine-learning models."""


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="mx", standalone_mode=False)
        return 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        exc.show()
        return 2
    except click.ClickException as exc:
        exc.show()
        return 1
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted", err=True)
        return 130
    except MxError as exc:
        click.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        return 1
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug: say so briefly
        if os.environ.get("MX_DEBUG") == "1":
            traceback.print_exc()
        else:
            click.echo(f"mx: internal error: {type(exc).__name__}: {exc}", err=True)
            click.echo("hint: this is a bug in mx; rerun with MX_DEBUG=1 for the traceback "
                       "and report it", err=True)
        return 3


if __name__ == "__main__":
    main()
