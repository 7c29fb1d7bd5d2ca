"""MiniLM-L6 through the pipeline: convert + parity, int8 dynamic, bench; fp32 vs int8.

Targets (issue 3): on CPU, batch 8, sequence 128, int8 dynamic against fp32 has file
size <= 0.3x, p50 latency <= 0.7x and mean cosine similarity >= 0.99 on real sentences;
convert, parity check, int8 and bench together in <= 3 minutes on 2 cores.

    .venv/bin/python bench/pipeline.py [--iterations N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import bench_env, mx_cmd, run  # noqa: E402
from tests.models import minilm  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mx-bench-pipeline-") as tmp:
        root = Path(tmp)
        env = bench_env(root)
        d = root / "minilm"
        run(mx_cmd("init", str(d), "--name", "bench/minilm", "--task", "feature-extraction"),
            env)
        shutil.copy(ROOT / "tests/models/minilm.py", d / "minilm.py")
        data = minilm.save_sentences(root / "sentences.npz", length=128)
        steps: dict[str, float] = {}
        start = time.perf_counter()
        for name, cmd in [
            ("convert + parity", mx_cmd("convert", str(d), "minilm:build", "--from", "pytorch")),
            ("int8 dynamic + quality", mx_cmd("optimize", str(d), "-t", "int8-dynamic",
                                              "--data", str(data))),
            ("bench fp32 + int8", mx_cmd("bench", str(d), "--batch", "8", "--shape", "seq=128",
                                         "--iterations", str(args.iterations))),
        ]:
            t = time.perf_counter()
            run(cmd, env)
            steps[name] = time.perf_counter() - t
        total = time.perf_counter() - start
        manifest = (d / "mx.yaml").read_text()
        results = json.loads((d / "bench/results.json").read_text())
    rows = {r["variant"]: r for hw in results["hardware"].values() for r in hw["results"]}
    fp32, int8 = rows["fp32"], rows["int8"]
    cosine = float(next(line.split("value:")[1].split(",")[0] for line in manifest.splitlines()
                        if "cosine_similarity" in line))
    size_ratio = int8["size"] / fp32["size"]
    p50_ratio = int8["latency_ms"]["p50"] / fp32["latency_ms"]["p50"]
    hw = next(iter(results["hardware"]))
    print(f"MiniLM-L6 (all-MiniLM-L6-v2), CPU, batch 8, sequence 128; {hw}")
    for name, secs in steps.items():
        print(f"  {name:<24} {secs:7.1f} s")
    print(f"  {'total':<24} {total:7.1f} s   (target <= 180 s) {'OK' if total <= 180 else 'MISS'}")
    for label, r in (("fp32", fp32), ("int8", int8)):
        lat = r["latency_ms"]
        print(f"  {label}: size {r['size'] / 1e6:6.1f} MB, p50 {lat['p50']:7.2f} ms, "
              f"p90 {lat['p90']:7.2f} ms, p99 {lat['p99']:7.2f} ms, "
              f"{r['throughput']:7.1f} sentences/s, peak {r['peak_memory_mb']:.0f} MiB")
    print(f"  size ratio int8/fp32:  {size_ratio:.3f}x  (target <= 0.3x) "
          f"{'OK' if size_ratio <= 0.3 else 'MISS'}")
    print(f"  p50 ratio int8/fp32:   {p50_ratio:.3f}x  (target <= 0.7x) "
          f"{'OK' if p50_ratio <= 0.7 else 'MISS'}")
    print(f"  cosine similarity:     {cosine:.4f}  over {len(minilm.SENTENCES)} real sentences "
          f"(target >= 0.99) {'OK' if cosine >= 0.99 else 'MISS'}")


if __name__ == "__main__":
    main()
