"""`mx export triton|kserve|edge|docker SPEC -o DIR [options]`"""

from __future__ import annotations

from pathlib import Path

import click

from mx.cli.options import registry_option


@click.command("export")
@click.argument("target", type=click.Choice(["triton", "kserve", "edge", "docker"]))
@click.argument("spec")
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path),
              help="triton: the model repository; kserve, edge: the directory to write; docker: "
                   "the build context.")
@registry_option
@click.option("--variant", help="Artifact variant to export [default: fp32].")
@click.option("--model-name", help="Name to serve it under [default: the name part].")
@click.option("--max-batch-size", default=32, show_default=True, type=click.IntRange(1))
@click.option("--max-queue-delay-us", default=2000, show_default=True, type=click.IntRange(0))
@click.option("--gpu", is_flag=True, help="Run on a GPU (Triton KIND_GPU; KServe asks for one).")
@click.option("--instances", default=1, show_default=True, type=click.IntRange(1),
              help="Triton instances (KServe: minimum replicas).")
@click.option("--storage-uri", help="kserve: where the model repository will be uploaded; "
              "docker: where model/ will be (adds inferenceservice.yaml).")
@click.option("--no-int8", is_flag=True, help="edge: leave out the int8 variant.")
@click.option("--image", help="docker: the image tag servingruntime.yaml runs "
              "[default: mx-<name>:<version>].")
@click.option("--fetch-at-start", is_flag=True, help="docker: install the model from the "
              "registry by mx.lock when the container starts, instead of baking it in.")
@click.option("--force", is_flag=True, help="Replace an existing export.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def export(target: str, spec: str, out: Path, registry: str | None, variant: str | None,
           model_name: str | None, max_batch_size: int, max_queue_delay_us: int, gpu: bool,
           instances: int, storage_uri: str | None, no_int8: bool, image: str | None,
           fetch_at_start: bool, force: bool, as_json: bool) -> None:
    """Export ns/name@RANGE (or a model directory) for Triton, KServe or edge runtimes, or
    as a Docker build context running `mx serve`."""
    from mx.cli.output import emit_json, note
    from mx.export import EXPORTERS, ExportOptions
    from mx.export.base import run_export
    from mx.export.source import open_source

    if target != "docker" and (image is not None or fetch_at_start):
        raise click.BadParameter(f"applies to `mx export docker` only, not {target}",
                                 param_hint="--image" if image is not None
                                 else "--fetch-at-start")
    opts = ExportOptions(model_name, max_batch_size, max_queue_delay_us, gpu, instances,
                         storage_uri, not no_int8, force, image, fetch_at_start)
    exporter = EXPORTERS[target]
    result = run_export(exporter, open_source(spec, registry, variant), out, opts)
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(f"{result.path}: {target} export of {result.model} {result.version}")
    for f in result.files:
        click.echo(f"  {f}")
    for n in result.notes:
        note(f"note: {n}")
