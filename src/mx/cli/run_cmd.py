"""`mx run SPEC --input PATH --output PATH [--batch-size N] [--checkpoint-rows N]
[--engine local|ray [--ray-address ADDR] [--actors N]]`"""

from __future__ import annotations

from pathlib import Path

import click

from mx.cli.options import registry_option


@click.command("run")
@click.argument("spec")
@click.option("-i", "--input", "src", required=True,
              type=click.Path(exists=True, path_type=Path),
              help="A .npy, .npz or .jsonl file, or a directory of them.")
@click.option("-o", "--output", "dest", required=True, type=click.Path(path_type=Path),
              help="The output file (.npy, .npz, .jsonl), or a directory for an input one.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1))
@click.option("--checkpoint-rows", default=4096, show_default=True, type=click.IntRange(1),
              help="Rows between checkpoints an interrupted run resumes from.")
@registry_option
@click.option("--variant", help="Artifact variant (e.g. int8) [default: fp32].")
@click.option("--threads", default=0, type=click.IntRange(0),
              help="onnxruntime intra-op threads (0: its default; with --engine ray, 1 per actor).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True,
              help="local: in this process. ray: on Ray Data, the model loaded once per "
                   "actor (needs mx[ray]); the same outputs.")
@click.option("--ray-address", metavar="ADDR",
              help="The Ray cluster for --engine ray [default: RAY_ADDRESS, else a local "
                   "Ray started for this run].")
@click.option("--actors", default=0, type=click.IntRange(0),
              help="Model replicas for --engine ray (0: one per cluster CPU but one).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def run(spec: str, src: Path, dest: Path, batch_size: int, checkpoint_rows: int,
        registry: str | None, variant: str | None, threads: int, engine: str,
        ray_address: str | None, actors: int, as_json: bool) -> None:
    """Batch inference: every row of the input through ns/name@RANGE (or a model directory).

    Rows are the first axis of each array, or the lines of a .jsonl file. An interrupted
    run resumes from its last checkpoint when run again; outputs appear only when whole.
    """
    from mx.batch.runner import Engine, RunOptions, run_files
    from mx.cli.output import emit_json, note, progress_bar, warn
    from mx.extras import require
    from mx.infer.model import resolve_model

    if engine != "ray" and (ray_address or actors):
        raise click.UsageError("--ray-address and --actors go with --engine ray")
    runner: Engine | None = None
    if engine == "ray":
        require("ray", "mx run --engine ray")  # before resolving: no download for nothing
        from mx.batch.ray_engine import RayEngine

        runner = RayEngine(ray_address, actors, threads)
    model = resolve_model(spec, registry, variant, threads)
    with progress_bar(not as_json, unit="rows") as bar:
        try:
            result = run_files(model, src, dest, RunOptions(batch_size, checkpoint_rows), bar,
                               runner)
        except KeyboardInterrupt:
            note("finished checkpoints are kept: run the same command again to resume")
            raise
    for w in result.warnings:
        warn(w)
    if as_json:
        emit_json(result.to_json())
        return
    for f in result.files:
        how = ("already done" if f.skipped else
               f"resumed after {f.resumed_rows}" if f.resumed_rows else "")
        click.echo(f"{f.output}: {f.rows} rows" + (f" ({how})" if how else ""))
