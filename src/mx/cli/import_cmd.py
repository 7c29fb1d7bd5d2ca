"""`mx import SRC [-o DEST] --name ns/name [--version V] [--license ID] [--force]`"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("import")
@click.argument("src", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("-o", "--output", "dest", type=click.Path(file_okay=False, path_type=Path),
              help="Write the mx model directory here (default: SRC, in place).")
@click.option("--name", help="Model name, <namespace>/<name> (default: the card's "
                             "model_name).")
@click.option("--version", "version", default="0.1.0", show_default=True,
              help="SemVer version for mx.yaml.")
@click.option("--summary", help="One line for mx.yaml (default: the card's first sentence).")
@click.option("--license", "license_", help="SPDX license (default: the card's license).")
@click.option("--force", is_flag=True, help="Replace an existing mx.yaml (and, with -o, "
                                            "files in a non-empty directory).")
def import_(src: Path, dest: Path | None, name: str | None, version: str,
            summary: str | None, license_: str | None, force: bool) -> None:
    """Turn a Hugging Face model folder (config.json, tokenizer files, safetensors weights or
    shards, README.md card) into an mx model directory: mx.yaml listing every file with its
    sha256 and size, .gitattributes for Git LFS, and the card with any missing required
    sections added."""
    from mx.hfimport import ImportOptions, import_folder

    result = import_folder(src, dest, ImportOptions(name, version, summary, license_, force))
    for rel in result.written:
        click.echo(f"wrote {result.dest / rel}")
    for rel, info in sorted(result.weights.items()):
        dtypes = ", ".join(f"{d} {n:,}" for d, n in sorted(info.dtypes.items()))
        click.echo(f"  {rel}: {info.format}, {info.parameters:,} parameters ({dtypes})",
                   err=True)
    for skipped in result.skipped:
        click.echo(f"skipped {skipped}", err=True)
    if result.sections_to_write:
        click.echo(f"next: write the card's {', '.join(result.sections_to_write)} "
                   f"section{'s' if len(result.sections_to_write) != 1 else ''} "
                   f"({result.dest / 'README.md'}), then `mx validate {result.dest}`",
                   err=True)
    else:
        click.echo(f"next: `mx validate {result.dest}`", err=True)
