"""`--shape NAME=SIZE` options shared by optimize and bench."""

from __future__ import annotations

import click


def parse_shapes(values: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        name, sep, size = value.partition("=")
        if not sep or not name or not size.isdigit() or int(size) < 1:
            raise click.BadParameter(f"{value!r}: write NAME=SIZE, e.g. seq=128",
                                     param_hint="--shape")
        out[name] = int(size)
    return out
