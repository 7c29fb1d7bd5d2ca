"""`mx convert DIR SOURCE [--from F] [--to onnx|torchscript|savedmodel|tflite] ...`"""

from __future__ import annotations

from pathlib import Path

import click

from mx.names import DEFAULT_VARIANT


def _names(value: str | None) -> list[str] | None:
    return [n.strip() for n in value.split(",") if n.strip()] if value else None


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("source", required=False)
@click.option("--from", "framework", type=click.Choice(["pytorch", "tensorflow", "jax",
                                                         "sklearn"]),
              help="The source framework (guessed from files and mx.yaml's source).")
@click.option("--to", "target", default="onnx", show_default=True,
              type=click.Choice(["onnx", "torchscript", "savedmodel", "tflite"]))
@click.option("-o", "--output", help="Artifact path inside DIR (default model.<ext>).")
@click.option("--variant", default=DEFAULT_VARIANT, show_default=True)
@click.option("--opset", default=17, show_default=True, type=click.IntRange(7, 26))
@click.option("--atol", type=float, help="Absolute tolerance (default by dtype).")
@click.option("--rtol", type=float, help="Relative tolerance (default by dtype).")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path),
              help=".npz of example inputs, by input name.")
@click.option("--input-names", help="Comma-separated input names.")
@click.option("--output-names", help="Comma-separated output names.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def convert(directory: Path, source: str | None, framework: str | None, target: str,
            output: str | None, variant: str, opset: int, atol: float | None,
            rtol: float | None, data: Path | None, input_names: str | None,
            output_names: str | None, as_json: bool) -> None:
    """Convert SOURCE (module:function, a TorchScript file, a SavedModel or Keras file)
    into an artifact of the model in DIR, check parity, and record it in mx.yaml.

    Without SOURCE, converts what mx.yaml's `source.export` names (as CI does), and
    does nothing, successfully, when it names nothing."""
    from mx.cli.output import emit_json, note
    from mx.manifest import load_manifest

    if source is None:
        declared = load_manifest(directory).manifest.source
        source = declared.export if declared else None
        if source is None:
            note(f"{directory / 'mx.yaml'} sets no source.export: nothing to convert")
            if as_json:
                emit_json({"converted": False, "reason": "no source.export"})
            return
    from mx.convert.run import ConvertOptions
    from mx.convert.run import convert as run

    opts = ConvertOptions(framework=framework, target=target, output=output, variant=variant,
                          opset=opset, atol=atol, rtol=rtol, data=data,
                          input_names=_names(input_names), output_names=_names(output_names))
    result = run(directory, source, opts)
    if as_json:
        emit_json(result.to_json())
        return
    for msg in result.notes:
        note(f"note: {msg}")
    art = result.artifact
    p = result.parity
    click.echo(f"{directory / art['path']}: {art['format']} ({art['variant']}), "
               f"{art['size']} bytes, by {result.tool}")
    click.echo(f"parity: ok over {p.input_sets} input sets, max abs error {p.max_abs:.3g}, "
               f"max rel error {p.max_rel:.3g}")
