"""Benchmark `mx install` against curl + sha256 on the same 127.0.0.1 server.

Targets: cold install of a 1 GiB artifact at most 1.25x the reference (curl to a file,
then sha256 of that file with hashlib); the registry's signed metadata (TUF) adds at most
5% to that cold install (the same registry built with --unsigned-index, read with
--allow-unsigned-index); signature verification adds at most 10% to a cold install of a
500 MB model (signed vs the same bytes unsigned); `mx install` of a version already in
the cache at most 0.3 s wall for the whole process.

    .venv/bin/python bench/install.py [--size-mib 1024] [--signed-mib 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_env, fmt, median_of, mx_cmd, run


def write_weights(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            chunk = min(left, 64 << 20)
            f.write(hashlib.sha256(str(left).encode()).digest() * (chunk // 32)
                    + b"\0" * (chunk % 32))
            left -= chunk


def make_repo(root: Path, name: str, size: int) -> Path:
    from tests.support.examples import card_text, git

    repo = root / "repos" / name.replace("/", "-")
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "lfs", "install", "--local")
    (repo / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    write_weights(repo / "weights.bin", size)
    (repo / "README.md").write_text(card_text(name))
    (repo / "mx.yaml").write_text(
        f"mx: 1\nname: {name}\nversion: 1.0.0\nsummary: a large artifact for benchmarks\n"
        "license: apache-2.0\nartifacts:\n  - path: weights.bin\n    format: other\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", name)
    git(repo, "tag", "-a", "-m", "release", "v1.0.0")
    return repo


def make_registry(root: Path, size: int, signed_size: int, env: dict[str, str]) -> Path:
    """bench/big (unsigned) for the download comparison; bench/half and
    bench/half-unsigned (same bytes, one signed) for the cost of verification."""
    from tests.support.examples import make_signing_key, sign_all_releases

    private, _ = make_signing_key(root / "keys", "bench")
    repos = [make_repo(root, "bench/big", size), make_repo(root, "bench/half", signed_size),
             make_repo(root, "bench/half-unsigned", signed_size)]
    sign_all_releases(repos[1], private)
    sources = "".join(f"  - repo: {r.relative_to(root)}\n" for r in repos)
    (root / "registry.yaml").write_text(
        "registry: 1\nname: bench\nmirror_artifacts: true\nallow_unsigned: true\n"
        f"sources:\n{sources}"
        "namespaces:\n  bench:\n    signers: [{public_key: keys/bench.pub}]\n")
    out = root / "site"
    run(mx_cmd("index", "build", str(root / "registry.yaml"), "-o", str(out)), env)
    run(mx_cmd("index", "build", str(root / "registry.yaml"), "-o", str(root / "unsigned"),
               "--unsigned-index", "--no-site"), env)
    for repo in repos:
        shutil.rmtree(repo)  # keep disk use down; the mirror holds the bytes now
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--signed-mib", type=int, default=500)
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
        site = make_registry(root, size, args.signed_mib << 20, env)
        server = subprocess.Popen(mx_cmd("index", "serve", str(site), "--port", "0"),
                                  stderr=subprocess.PIPE, text=True, env=env)
        assert server.stderr is not None
        url = server.stderr.readline().split(" at ")[1].split()[0]
        plain = subprocess.Popen(mx_cmd("index", "serve", str(root / "unsigned"), "--port",
                                        "0"), stderr=subprocess.PIPE, text=True, env=env)
        assert plain.stderr is not None
        plain_url = plain.stderr.readline().split(" at ")[1].split()[0]
        # The unsigned copy has no artifacts of its own: it names the signed host's.
        for doc in (root / "unsigned/index/models").rglob("*.json"):
            doc.write_text(doc.read_text().replace('"artifacts/sha256/',
                                                   f'"{url}artifacts/sha256/'))
        big = json.loads((site / "index/models/bench/big.json").read_text())
        blob_url = url + big["versions"]["1.0.0"]["artifacts"][0]["urls"][0]
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
        ref, cold = statistics.median(ref_samples), statistics.median(mx_samples)
        untrusted_cmd = mx_cmd("install", "bench/big@^1", "--registry", plain_url,
                               "--allow-unsigned-index")
        trusted_s, untrusted_s = [], []
        for _ in range(args.runs):
            untrusted_s.append(median_of(1, lambda: run(untrusted_cmd, env), fresh_cache)[0])
            trusted_s.append(median_of(1, lambda: run(install, env), fresh_cache)[0])
        trusted, untrusted = statistics.median(trusted_s), statistics.median(untrusted_s)
        signed_cmd = mx_cmd("install", "bench/half@1.0.0", "--registry", url)
        unsigned_cmd = mx_cmd("install", "bench/half-unsigned@1.0.0", "--registry", url)
        signed_s, unsigned_s = [], []
        for _ in range(args.runs):
            unsigned_s.append(median_of(1, lambda: run(unsigned_cmd, env), fresh_cache)[0])
            signed_s.append(median_of(1, lambda: run(signed_cmd, env), fresh_cache)[0])
        signed, unsigned = statistics.median(signed_s), statistics.median(unsigned_s)
        run(install, env)
        cached, cached_s = median_of(args.runs, lambda: run(install, env))
        refresh, refresh_s = median_of(
            args.runs, lambda: run([*install, "--refresh"], env))
        server.terminate()
        server.wait()
        plain.terminate()
        plain.wait()
        print(f"\nartifact: {args.size_mib} MiB over http://127.0.0.1, {args.runs} runs, medians")
        print(f"reference (curl to file, then hashlib sha256): {ref:.3f} s  [{fmt(ref_samples)}]")
        print(f"mx install, cold cache:                        {cold:.3f} s  [{fmt(mx_samples)}]")
        print(f"  ratio cold/reference: {cold / ref:.2f}x   (target <= 1.25x)"
              f"  {'OK' if cold / ref <= 1.25 else 'MISSED'}")
        print(f"\ncold install, index verified with TUF metadata: {trusted:.3f} s  "
              f"[{fmt(trusted_s)}]")
        print(f"same install, unsigned index (--allow-unsigned-index): {untrusted:.3f} s  "
              f"[{fmt(untrusted_s)}]")
        print(f"  metadata overhead: {trusted / untrusted - 1:+.1%}   (target <= +5%)"
              f"  {'OK' if trusted / untrusted <= 1.05 else 'MISSED'}")
        print(f"\nsigned {args.signed_mib} MiB release, cold, verified:   {signed:.3f} s  "
              f"[{fmt(signed_s)}]")
        print(f"same bytes, unsigned release, cold:           {unsigned:.3f} s  "
              f"[{fmt(unsigned_s)}]")
        print(f"  verification overhead: {signed / unsigned - 1:+.1%}   (target <= +10%)"
              f"  {'OK' if signed / unsigned <= 1.10 else 'MISSED'}")
        print(f"\nmx install, already cached (fresh index):      {cached:.3f} s  [{fmt(cached_s)}]"
              f"  (target <= 0.3 s) {'OK' if cached <= 0.3 else 'MISSED'}")
        print(f"mx install, already cached, --refresh (ETag):  {refresh:.3f} s  "
              f"[{fmt(refresh_s)}]  (target <= 0.3 s) {'OK' if refresh <= 0.3 else 'MISSED'}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
