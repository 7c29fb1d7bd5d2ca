"""`mx profile DIR --data FILE.npz [--bins N] [--batch-axis INPUT=AXIS]`"""

from __future__ import annotations

from pathlib import Path

import click

from mx.cli.shapes import parse_batch_axes


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path),
                default=".")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help=".npz of reference inputs (arrays named after the signature's inputs).")
@click.option("--bins", default=10, show_default=True, type=click.IntRange(2, 100),
              help="Quantile bins per input (or per feature).")
@click.option("--batch-axis", "batch_axes", multiple=True,
              help="The batch axis of an input, when not its first symbolic one: state=1.")
@click.option("--json", "as_json", is_flag=True, help="Print the profile's summary as JSON.")
def profile(directory: Path, data: Path, bins: int, batch_axes: tuple[str, ...],
            as_json: bool) -> None:
    """Write a reference profile of the model's inputs (quantile bins and their shares) to
    the file mx.yaml's `input_profile` names (input-profile.json, added to mx.yaml); `mx
    serve` reports drift against it (mx_input_drift_psi)."""
    from mx.cli.output import emit_json, note
    from mx.inputprofile import write_for

    out, made = write_for(directory, data, bins, parse_batch_axes(batch_axes))
    summary = {name: {"by": b.by, "features": b.features,
                      "bins": max(len(e) + 1 for e in b.edges)}
               for name, b in made.inputs.items()}
    if as_json:
        emit_json({"profile_file": str(out), "rows": made.rows, "inputs": summary})
        return
    for name, s in summary.items():
        per = f"{s['features']} features" if s["by"] == "feature" else "all values"
        click.echo(f"{name}: {s['bins']} bins over {per}")
    note(f"profile of {made.rows} rows in {out}")
