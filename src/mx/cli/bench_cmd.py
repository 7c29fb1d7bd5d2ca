"""`mx bench DIR [--variant V ...] [--device cpu|cuda] [--batch 1,8,32] [--threads N]`"""

from __future__ import annotations

from pathlib import Path

import click

from mx.cli.shapes import parse_batch_axes, parse_shapes


def _batches(value: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: comma-separated sizes, e.g. 1,8,32") from None
    if not out or min(out) < 1:
        raise click.BadParameter(f"{value!r}: batch sizes are positive integers")
    return out


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path),
                default=".")
@click.option("--variant", "variants", multiple=True,
              help="A variant label or artifact path (repeatable; default all runnable).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--batch", "batch", default="1", show_default=True, help="Batch sizes: 1,8,32.")
@click.option("--threads", default=0, type=click.IntRange(0), help="Intra-op threads (0: "
                                                                   "the runtime's default).")
@click.option("--shape", "shapes", multiple=True, help="Size of a symbolic dim: seq=128.")
@click.option("--batch-axis", "batch_axes", multiple=True,
              help="The batch axis of an input, when not its first symbolic one: state=1.")
@click.option("--iterations", default=50, show_default=True, type=click.IntRange(1))
@click.option("--warmup", default=5, show_default=True, type=click.IntRange(0))
@click.option("--compare", is_flag=True, help="Print a table across variants from the "
                                              "results file instead of measuring.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench(directory: Path, variants: tuple[str, ...], device: str, batch: str, threads: int,
          shapes: tuple[str, ...], batch_axes: tuple[str, ...], iterations: int, warmup: int,
          compare: bool, as_json: bool) -> None:
    """Measure latency (p50/p90/p99), throughput, peak memory, load time and size of a
    model's artifacts; results go to the file mx.yaml's `benchmarks` names."""
    from mx.bench import results
    from mx.bench.run import DEFAULT_RESULTS, BenchOptions, compare_rows
    from mx.bench.run import bench as run
    from mx.cli.output import emit_json, human_size, note
    from mx.manifest import load_manifest

    if compare:
        man = load_manifest(directory).manifest
        path = directory / (man.benchmarks or DEFAULT_RESULTS)
        rows = compare_rows(results.load(path, man.name))
        if as_json:
            emit_json(rows)
            return
        if not rows:
            note(f"{path}: no results yet; run `mx bench {directory}` first")
            return
        current = None
        header = (f"{'variant':<14} {'format':<11} {'batch':>5} {'p50 ms':>9} {'p99 ms':>9} "
                  f"{'items/s':>10} {'size':>10} {'p50 x':>6} {'size x':>6}")
        for r in rows:
            if r["hardware"] != current:
                current = r["hardware"]
                click.echo(f"\n{current}\n{header}")
            ratio = f"{r['p50_ratio']:.2f}" if r["p50_ratio"] is not None else "-"
            sratio = f"{r['size_ratio']:.2f}" if r["size_ratio"] is not None else "-"
            click.echo(f"{r['variant']:<14} {r['format']:<11} {r['batch']:>5} "
                       f"{r['latency_ms']['p50']:>9.3f} {r['latency_ms']['p99']:>9.3f} "
                       f"{r['throughput']:>10.1f} {human_size(r['size']):>10} {ratio:>6} "
                       f"{sratio:>6}")
        return
    opts = BenchOptions(list(variants), device, _batches(batch), threads, parse_shapes(shapes),
                        warmup, iterations, batch_axes=parse_batch_axes(batch_axes))
    out_path, measured = run(directory, opts)
    if as_json:
        emit_json({"results_file": str(out_path), "results": measured})
        return
    for r in measured:
        lat = r["latency_ms"]
        click.echo(f"{r['artifact']} ({r['variant']}) batch {r['batch']}: p50 {lat['p50']:.3f} "
                   f"ms, p90 {lat['p90']:.3f}, p99 {lat['p99']:.3f}, {r['throughput']:.1f} "
                   f"items/s, load {r['load_time_ms']:.0f} ms, peak {r['peak_memory_mb']:.0f} "
                   f"MiB")
    note(f"results in {out_path}")
