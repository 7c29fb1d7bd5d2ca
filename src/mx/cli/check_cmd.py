"""`mx check DIR [--target cpu|cuda|mobile[@VERSION] ...] [--artifact PATH] [--json]`"""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path),
                default=".")
@click.option("-t", "--target", "targets", multiple=True,
              help="cpu, cuda or mobile, optionally @VERSION of onnxruntime (cpu@1.17). "
                   "Repeatable or comma-separated; default cpu at the installed version.")
@click.option("--artifact", "artifacts", multiple=True, help="Only this artifact (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(directory: Path, targets: tuple[str, ...], artifacts: tuple[str, ...],
          as_json: bool) -> None:
    """Check ONNX artifacts' architecture against target runtimes: IR and opset versions,
    operators, dims against the signature, size; with a table of operators and parameters."""
    from mx.check.arch import check_onnx
    from mx.check.targets import parse_target
    from mx.cli.output import emit_json, human_size
    from mx.errors import ConfigError, ValidationFailed
    from mx.manifest import load_manifest

    m = load_manifest(directory).manifest
    names = [t.strip() for spec in (targets or ("cpu",)) for t in spec.split(",") if t.strip()]
    chosen = [parse_target(t) for t in names]
    arts = [a for a in m.artifacts if a.format == "onnx" and (not artifacts or
                                                              a.path in artifacts)]
    unknown = set(artifacts) - {a.path for a in arts}
    if unknown:
        raise ConfigError(f"--artifact {sorted(unknown)[0]}: not an ONNX artifact in mx.yaml")
    if not arts:
        raise ConfigError(f"{directory / 'mx.yaml'}: no ONNX artifact to check")
    reports = []
    for art in arts:
        path = directory / art.path
        if not path.is_file():
            raise ConfigError(f"{path}: not in the working tree",
                              hint="run `git lfs pull` if it is an LFS pointer")
        sig = m.signature
        reports.append(check_onnx(path, chosen, sig.inputs if sig else None,
                                  sig.outputs if sig else None))
    if as_json:
        emit_json({"targets": [t.label for t in chosen], "artifacts": [r.to_json()
                                                                       for r in reports]})
    else:
        for r in reports:
            info = r.info
            head = f"{r.path}: {human_size(r.size)}"
            if info:
                opsets = ", ".join(f"{d} {v}" for d, v in sorted(info.opsets.items()))
                head += (f", IR {info.ir_version}, opsets {opsets}, "
                         f"{info.parameters:,} parameters")
            click.echo(head)
            for f in r.findings:
                tag = "error" if f.severity == "error" else "warning"
                click.echo(f"  {tag}: {f.target + ': ' if f.target else ''}{f.message}")
            rows = r.op_table()
            if rows:
                width = max(len(op if d == "ai.onnx" else f"{d}::{op}") for d, op, _ in rows)
                for d, op, n in rows:
                    name = op if d == "ai.onnx" else f"{d}::{op}"
                    click.echo(f"    {name:<{width}}  {n:>6}")
    bad = [r for r in reports if not r.ok]
    if bad:
        raise ValidationFailed(f"{len(bad)} artifact{'s' if len(bad) != 1 else ''} failed "
                               f"the architecture check for {', '.join(t.label for t in chosen)}",
                               hint=None if as_json else "see the errors above")
