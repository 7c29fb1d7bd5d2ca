"""`--shape NAME=SIZE` and `--batch-axis INPUT=AXIS` options shared by optimize and bench."""

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


def parse_batch_axes(values: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        name, sep, axis = value.rpartition("=")
        try:
            number = int(axis)
        except ValueError:
            number = None
        if not sep or not name or number is None:
            raise click.BadParameter(f"{value!r}: write INPUT=AXIS, e.g. state=1",
                                     param_hint="--batch-axis")
        out[name] = number
    return out
