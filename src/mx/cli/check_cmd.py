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
    operators, dims against the signature, size; with a table of operators and parameters.
    safetensors and GGUF files get their headers checked, parameter count and dtypes."""
    from mx.check.arch import check_onnx
    from mx.check.targets import parse_target
    from mx.cli.output import emit_json, human_size
    from mx.errors import ConfigError, ValidationFailed
    from mx.manifest import load_manifest
    from mx.validate.weights_check import infos

    loaded = load_manifest(directory)
    m = loaded.manifest
    names = [t.strip() for spec in (targets or ("cpu",)) for t in spec.split(",") if t.strip()]
    chosen = [parse_target(t) for t in names]
    weights, weight_problems = infos(loaded)
    weights = {k: v for k, v in weights.items() if not artifacts or k in artifacts}
    weight_problems = [p for p in weight_problems if not artifacts or any(
        p.path == str(directory / a) for a in artifacts)]
    arts = [a for a in m.artifacts if a.format == "onnx" and (not artifacts or
                                                              a.path in artifacts)]
    unknown = set(artifacts) - {a.path for a in arts} - set(weights) - {
        p.path.removeprefix(f"{directory}/") for p in weight_problems}
    if unknown:
        raise ConfigError(f"--artifact {sorted(unknown)[0]}: not an ONNX artifact or weight "
                          "file in mx.yaml")
    if not arts and not weights and not weight_problems:
        raise ConfigError(f"{directory / 'mx.yaml'}: no ONNX artifact or weight file to check")
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
        emit_json({"targets": [t.label for t in chosen],
                   "artifacts": [r.to_json() for r in reports],
                   "weights": [{"path": rel, **w.to_json()}
                               for rel, w in sorted(weights.items())],
                   "weight_problems": [str(p) for p in weight_problems]})
    else:
        for rel, w in sorted(weights.items()):
            dtypes = ", ".join(f"{d} {n:,}" for d, n in sorted(w.dtypes.items()))
            shards = f" in {len(w.shards)} shards" if w.shards else ""
            click.echo(f"{rel}: {w.format}{shards}, {w.tensors:,} tensors, "
                       f"{w.parameters:,} parameters ({dtypes or 'none'})")
        for p in weight_problems:
            click.echo(f"{p.path}: error: {p.message}")
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
    if weight_problems:
        raise ValidationFailed(f"{len(weight_problems)} weight file"
                               f"{'s' if len(weight_problems) != 1 else ''} malformed",
                               hint=None if as_json else "see the errors above")
    if bad:
        raise ValidationFailed(f"{len(bad)} artifact{'s' if len(bad) != 1 else ''} failed "
                               f"the architecture check for {', '.join(t.label for t in chosen)}",
                               hint=None if as_json else "see the errors above")
