"""`mx init [DIR] --name ns/name`"""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--name", required=True, help="Model name, <namespace>/<name>.")
@click.option("--summary", default="One line that says what this model does", show_default=True)
@click.option("--license", "license_", default="apache-2.0", show_default=True,
              help="SPDX license identifier.")
@click.option("--task", default="other", show_default=True,
              help="Hugging Face pipeline_tag, e.g. text-classification.")
@click.option("--force", is_flag=True, help="Overwrite existing scaffold files.")
@click.option("--dvc", is_flag=True, help="Also write dvc.yaml (convert, optimize and bench "
              "stages for `dvc repro`) and params.yaml.")
def init(directory: Path, name: str, summary: str, license_: str, task: str,
         force: bool, dvc: bool) -> None:
    """Scaffold a model directory: mx.yaml, a model card, .gitattributes for Git LFS,
    .pre-commit-config.yaml and a CI workflow (.github/workflows/mx.yml); with --dvc, a
    DVC pipeline (dvc.yaml, params.yaml)."""
    from mx.init import InitOptions, init_model

    # init_model creates the directory only once the name and files are known good
    written = init_model(directory, InitOptions(name, summary, license_, task, force, dvc))
    for path in written:
        click.echo(f"wrote {path}")
    import subprocess

    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=directory,
                         capture_output=True, text=True)
    if top.returncode == 0 and Path(top.stdout.strip()).resolve() != directory.resolve():
        click.echo(f"note: pre-commit and GitHub read .pre-commit-config.yaml and .github/ at "
                   f"the repository root ({top.stdout.strip()}); move them there", err=True)
    click.echo("next: add your model file, then `mx validate --write` to record its hash",
               err=True)
