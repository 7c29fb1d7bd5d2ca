"""Benchmark `mx install` against curl + sha256 on the same 127.0.0.1 server.

Targets (issue 2): cold install of a 1 GiB artifact at most 1.25x the reference
(curl to a file, then sha256 of that file with hashlib); `mx install` of a version
already in the cache at most 0.3 s wall for the whole process.

    .venv/bin/python bench/install.py [--size-mib 1024] [--runs 5]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_env, fmt, median_of, mx_cmd, run


def make_registry(root: Path, size: int, env: dict[str, str]) -> Path:
    from mx.examples import card_text, git

    repo = root / "repos" / "big"
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "lfs", "install", "--local")
    (repo / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    with (repo / "weights.bin").open("wb") as f:
        left = size
        while left:
            chunk = min(left, 64 << 20)
            f.write(hashlib.sha256(str(left).encode()).digest() * (chunk // 32)
                    + b"\0" * (chunk % 32))
            left -= chunk
    (repo / "README.md").write_text(card_text("bench/big"))
    (repo / "mx.yaml").write_text(
        "mx: 1\nname: bench/big\nversion: 1.0.0\nsummary: a large artifact for benchmarks\n"
        "license: apache-2.0\nartifacts:\n  - path: weights.bin\n    format: other\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "big")
    git(repo, "tag", "v1.0.0")
    (root / "registry.yaml").write_text("registry: 1\nname: bench\nmirror_artifacts: true\n"
                                        "sources:\n  - repo: repos/big\n")
    out = root / "site"
    run(mx_cmd("index", "build", str(root / "registry.yaml"), "-o", str(out)), env)
    shutil.rmtree(repo)  # keep disk use down; the mirror holds the bytes now
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    size = args.size_mib << 20
    if shutil.which("curl") is None:
        raise SystemExit("bench: curl is needed for the reference (apt-get install curl)")
    root = Path(tempfile.mkdtemp(prefix="mx-bench-install-"))
    try:
        env = bench_env(root)
        print(f"building a registry with one {args.size_mib} MiB artifact in {root} ...",
              flush=True)
        site = make_registry(root, size, env)
        server = subprocess.Popen(mx_cmd("index", "serve", str(site), "--port", "0"),
                                  stderr=subprocess.PIPE, text=True, env=env)
        assert server.stderr is not None
        url = server.stderr.readline().split(" at ")[1].split()[0]
        blob_url = url + "artifacts/sha256/" + next((site / "artifacts/sha256").iterdir()).name
        target = root / "curl.out"

        def reference() -> None:
            subprocess.run(["curl", "-sf", "-o", str(target), blob_url], check=True)
            h = hashlib.sha256()
            with target.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            h.hexdigest()

        def fresh_cache() -> None:
            shutil.rmtree(root / "mx-cache", ignore_errors=True)
            target.unlink(missing_ok=True)

        install = mx_cmd("install", "bench/big@^1", "--registry", url)
        # Warm the server's page cache once so neither side pays for the disk.
        reference()
        # Alternate the two so drift in machine load hits both alike.
        ref_samples, mx_samples = [], []
        for _ in range(args.runs):
            ref_samples.append(median_of(1, reference, fresh_cache)[0])
            mx_samples.append(median_of(1, lambda: run(install, env), fresh_cache)[0])
        import statistics

        ref, cold = statistics.median(ref_samples), statistics.median(mx_samples)
        cached, cached_s = median_of(args.runs, lambda: run(install, env))
        refresh, refresh_s = median_of(
            args.runs, lambda: run([*install, "--refresh"], env))
        server.terminate()
        server.wait()
        print(f"\nartifact: {args.size_mib} MiB over http://127.0.0.1, {args.runs} runs, medians")
        print(f"reference (curl to file, then hashlib sha256): {ref:.3f} s  [{fmt(ref_samples)}]")
        print(f"mx install, cold cache:                        {cold:.3f} s  [{fmt(mx_samples)}]")
        print(f"  ratio cold/reference: {cold / ref:.2f}x   (target <= 1.25x)"
              f"  {'OK' if cold / ref <= 1.25 else 'MISSED'}")
        print(f"mx install, already cached (fresh index):      {cached:.3f} s  [{fmt(cached_s)}]"
              f"  (target <= 0.3 s) {'OK' if cached <= 0.3 else 'MISSED'}")
        print(f"mx install, already cached, --refresh (ETag):  {refresh:.3f} s  "
              f"[{fmt(refresh_s)}]  (target <= 0.3 s) {'OK' if refresh <= 0.3 else 'MISSED'}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
