"""Benchmark `mx install` against curl + sha256 on the same 127.0.0.1 server.

Targets: cold install of a 1 GiB artifact at most 1.25x the reference (curl to a file,
then sha256 of that file with hashlib); the registry's signed metadata (TUF) adds at most
5% to that cold install (the same registry built with --unsigned-index, read with
--allow-unsigned-index); signature verification adds at most 10% to a cold install of a
500 MB model (signed vs the same bytes unsigned); `mx install` of a version already in
the cache at most 0.3 s wall for the whole process.

Big models (`--big-gib`, default 4; 0 skips; `--big-only` runs just this part): one
file of that size and a model of ten shards of a tenth of it each, from a local HTTP server
with Range support (`mx index serve`). `mx install`, cold, against `curl -o` of the same
file(s) from the same server with no hashing (the shards with `curl --parallel`, as many at
once as mx fetches files), alternating; target at most 1.10x. Peers are timed in the same
rotation when installed (bench/peers.py): huggingface_hub's `http_get`, `dvc pull` from an
HTTP remote on the same server, and `git clone` with git-lfs (its batch answers point at
the same server).

    .venv/bin/python bench/install.py [--size-mib 1024] [--signed-mib 500] [--runs 5]
                                      [--big-gib 4] [--big-only] [--peers hf,dvc,lfs]
                                      [--also-parts 4]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers
from common import bench_env, fmt, median_of, mx_cmd, run


def write_weights(path: Path, size: int, salt: str = "") -> None:
    """`size` bytes, quickly; files with different salts differ (the cache would share
    identical shards)."""
    with path.open("wb") as f:
        left = size
        while left:
            chunk = min(left, 64 << 20)
            f.write(hashlib.sha256(f"{salt}{left}".encode()).digest() * (chunk // 32)
                    + b"\0" * (chunk % 32))
            left -= chunk


def make_repo(root: Path, name: str, size: int, files: int = 1) -> Path:
    from tests.support.examples import card_text, git

    repo = root / "repos" / name.replace("/", "-")
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "lfs", "install", "--local")
    (repo / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    names = ["weights.bin"] if files == 1 else [f"shard-{i:02}.bin" for i in range(files)]
    for file in names:
        write_weights(repo / file, size, f"{name}/{file}")
    (repo / "README.md").write_text(card_text(name))
    (repo / "mx.yaml").write_text(
        f"mx: 1\nname: {name}\nversion: 1.0.0\nsummary: a large artifact for benchmarks\n"
        "license: apache-2.0\nartifacts:\n"
        + "".join(f"  - path: {file}\n    format: other\n" for file in names))
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


def serve(site: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(mx_cmd("index", "serve", str(site), "--port", "0"),
                              stderr=subprocess.PIPE, text=True, env=env)
    assert server.stderr is not None
    return server, server.stderr.readline().split(" at ")[1].split()[0]


def row(label: str, value: str) -> None:
    print(f"{label:<40}{value}")


def bench_big(root: Path, env: dict[str, str], gib: float, runs: int,
              which: set[str], also_parts: list[int]) -> None:
    """One `gib` GiB file and ten shards of a tenth of it: mx cold vs curl -o, no hashing,
    and the peers beside them."""
    big, shard = int(gib * (1 << 30)), int(gib * (1 << 30)) // 10
    # the LFS repos (tree and store), the site, and one download, which dvc and git-lfs
    # write twice (their cache, then the work tree); DVC's remote is links
    need = 5 * (big + 10 * shard)
    free = shutil.disk_usage(root).free
    if need > free * 0.8:
        raise SystemExit(f"bench: --big-gib {gib} needs about {need >> 30} GiB in {root}, "
                         f"{free >> 30} GiB are free; pass a smaller --big-gib")
    print(f"building a registry with one {gib:g} GiB file and 10 shards of "
          f"{shard >> 20} MiB in {root} ...", flush=True)
    repos = {"bench/huge": make_repo(root, "bench/huge", big),
             "bench/shards": make_repo(root, "bench/shards", shard, 10)}
    (root / "big-registry.yaml").write_text(
        "registry: 1\nname: bench-big\nmirror_artifacts: true\nallow_unsigned: true\n"
        "sources:\n" + "".join(f"  - repo: {r.relative_to(root)}\n" for r in repos.values()))
    site = root / "big-site"
    run(mx_cmd("index", "build", str(root / "big-registry.yaml"), "-o", str(site),
               "--no-site"), env)
    bares = {name: peers.lfs_bare(repo, root / "lfs-remotes") if "lfs" in which else None
             for name, repo in repos.items()}
    for repo in repos.values():
        shutil.rmtree(repo)
    server, url = serve(site, env)
    out = root / "curl-out"
    parts = os.environ.get("MX_PARALLEL_PARTS", "4 (default)")

    def compare(name: str, what: str, lfs: str) -> None:
        doc = json.loads((site / f"index/models/{name}.json").read_text())
        arts = doc["versions"]["1.0.0"]["artifacts"]
        urls = [url + a["urls"][0] for a in arts]
        curl = ["curl", "-sf"]
        if len(urls) > 1:
            curl += ["--parallel", "--parallel-max", "4"]
        for i, u in enumerate(urls):
            curl += ["-o", str(out / f"{i}.bin"), u]
        install = mx_cmd("install", f"{name}@1.0.0", "--registry", url)
        slug = name.replace("/", "-")
        others = [peer() for key, peer in (
            ("hf", lambda: peers.hf_peer(urls, out)),
            ("dvc", lambda: peers.dvc_peer(root / "dvc" / slug, site, url, arts, env)),
            ("lfs", lambda: peers.lfs_peer(lfs, bares[name], root / "lfs-clone", env)))
            if key in which]

        def fresh() -> None:
            shutil.rmtree(root / "mx-cache", ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            for peer in others:
                peer.fresh()

        fresh()
        run(curl)  # warm the server's page cache once, for every side alike
        sides = [("curl", lambda: run(curl)), ("mx", lambda: run(install, env))]
        for n in also_parts:  # the same install with n parts forced (one_stream_rate 0)
            forced = root / f"mx-config-parts-{n}.toml"
            mine = Path(env["MX_CONFIG"])
            forced.write_text((mine.read_text() if mine.exists() else "")
                              + f"\n[limits]\nparallel_parts = {n}\none_stream_rate = 0\n")
            sides.append((f"mx parts={n}",
                          lambda f=forced: run(install, {**env, "MX_CONFIG": str(f)})))
        sides += [(p.label, p.fetch) for p in others if p.fetch is not None]
        samples: dict[str, list[float]] = {label: [] for label, _ in sides}
        for _ in range(runs):  # A B C D A B C D: drift in load hits every side alike
            for label, fetch in sides:
                samples[label].append(median_of(1, fetch, fresh)[0])
        fresh()
        ref, cold = statistics.median(samples["curl"]), statistics.median(samples["mx"])
        print(f"\n{what} over http://127.0.0.1, {runs} runs, medians "
              f"(MX_PARALLEL_PARTS={parts}; a first piece at 256 MiB/s or faster keeps a "
              "file to one stream)")
        row("curl -o (no hashing):", f"{ref:.3f} s  [{fmt(samples['curl'])}]")
        row("mx install, cold (sha256'd):", f"{cold:.3f} s  [{fmt(samples['mx'])}]")
        print(f"  ratio mx/curl: {cold / ref:.2f}x   (target <= 1.10x)"
              f"  {'OK' if cold / ref <= 1.10 else 'MISSED'}")
        for n in also_parts:
            t = statistics.median(samples[f"mx parts={n}"])
            row(f"mx install, {n} parts forced:",
                f"{t:.3f} s  [{fmt(samples[f'mx parts={n}'])}]  ({t / ref:.2f}x curl)")
        left_out = sorted({"hf", "dvc", "lfs"} - which)
        if left_out:
            print(f"  not measured this run (--peers): {', '.join(left_out)}")
        for peer in others:
            if peer.fetch is None:
                row(f"{peer.label}:", peer.why_not)
                continue
            t = statistics.median(samples[peer.label])
            row(f"{peer.label}:", f"{t:.3f} s  [{fmt(samples[peer.label])}]  ({t / ref:.2f}x curl)")

    try:
        with peers.lfs_batch(url) as lfs:
            compare("bench/huge", f"one {gib:g} GiB file", lfs)
            compare("bench/shards", f"10 shards of {shard >> 20} MiB", lfs)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(site, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--signed-mib", type=int, default=500)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--big-gib", type=float, default=4,
                    help="size of the big single-file model (the sharded one is the same in "
                         "10 files); 0 skips them")
    ap.add_argument("--big-only", action="store_true", help="run only the big-model part")
    ap.add_argument("--also-parts", default="",
                    help="also time mx install of the big models with this many ranged parts "
                         "forced ([limits] one_stream_rate = 0), comma-separated (e.g. 4)")
    ap.add_argument("--peers", default="hf,dvc,lfs",
                    help="peers timed beside mx on the big models, comma-separated (hf, dvc, "
                         "lfs); git-lfs gets its batch answers from a stub here and its bytes "
                         "from the same server")
    args = ap.parse_args()
    size = args.size_mib << 20
    if shutil.which("curl") is None:
        raise SystemExit("bench: curl is needed for the reference (apt-get install curl)")
    root = Path(tempfile.mkdtemp(prefix="mx-bench-install-"))
    try:
        env = bench_env(root)
        if args.big_gib > 0:
            bench_big(root, env, args.big_gib, args.runs, set(args.peers.split(",")),
                      [int(n) for n in args.also_parts.split(",") if n])
        if args.big_only:
            return
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
