"""`mx optimize DIR -t int8-dynamic -t fp16 ... [--data F.npz] [--min-quality Q]`"""

from __future__ import annotations

from pathlib import Path

import click

from mx.cli.shapes import parse_batch_axes, parse_shapes


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path),
                default=".")
@click.option("-t", "--transform", "transforms", multiple=True, required=True,
              help="int8-dynamic, int8-static, fp16, graph, prune[:SPARSITY], ort "
                   "(repeatable, or comma-separated).")
@click.option("--from", "parent", help="The parent artifact (default the fp32 ONNX one).")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path),
              help=".npz of real inputs for the quality measurement (and calibration); also "
                   "written as the input profile, as `mx profile --data` does.")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path),
              help=".npz of calibration inputs for int8-static.")
@click.option("--metric", type=click.Choice(["agreement_top1", "cosine_similarity",
                                             "max_abs_error"]),
              help="Quality metric (default from the task).")
@click.option("--min-quality", type=float, help="Refuse a variant whose agreement or "
                                                "cosine similarity is below this.")
@click.option("--max-error", type=float, help="Refuse a variant whose max abs error is above.")
@click.option("--shape", "shapes", multiple=True, help="Size of a symbolic dim: seq=128.")
@click.option("--batch-axis", "batch_axes", multiple=True,
              help="The batch axis of an input, when not its first symbolic one: state=1.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def optimize(directory: Path, transforms: tuple[str, ...], parent: str | None,
             data: Path | None, calibration: Path | None, metric: str | None,
             min_quality: float | None, max_error: float | None, shapes: tuple[str, ...],
             batch_axes: tuple[str, ...], as_json: bool) -> None:
    """Add optimized variants of an ONNX artifact, each measured against its parent.
    With --data, also write the input profile of that data (as `mx profile`)."""
    from mx.cli.output import emit_json, human_size, note, warn
    from mx.errors import ConfigError
    from mx.inputprofile import write_for
    from mx.optimize.run import OptimizeOptions
    from mx.optimize.run import optimize as run

    wanted = [t.strip() for group in transforms for t in group.split(",") if t.strip()]
    opts = OptimizeOptions(wanted, parent, data, calibration, metric, min_quality,
                           max_error, parse_shapes(shapes), parse_batch_axes(batch_axes))
    results, warnings = run(directory, opts)
    profile_file = None
    if data is not None:
        # The profile `mx profile --data` writes, so a release the CI loop makes carries
        # one; data that suits a quality check but not a profile keeps the variants.
        try:
            profile_file, _ = write_for(directory, data, given_axes=opts.batch_axes)
        except ConfigError as exc:
            warnings.append(f"input profile not written: {exc.message}")
    for w in warnings:
        warn(w)
    if as_json:
        emit_json({"variants": [r.to_json() for r in results], "warnings": warnings,
                   "input_profile": str(profile_file) if profile_file else None})
        return
    for r in results:
        a = r.artifact
        q = r.quality
        click.echo(f"{directory / a['path']}: {a['format']} {a['variant']}, "
                   f"{human_size(a['size'])} ({a['size'] / max(r.parent_size, 1):.2f}x), "
                   f"{q.metric} {q.value:.4f} over {q.samples} samples")
    if profile_file is not None:
        note(f"input profile of {data} in {profile_file}")
