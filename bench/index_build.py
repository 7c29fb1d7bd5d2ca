"""Benchmark `mx index build` on 200 generated model repos with 3 releases each.

Targets (issue 2): at most 30 s cold (empty output, empty build cache), at most 3 s
when nothing changed. The reference, measured in the same run, is what any
git-CLI-based builder pays at least: `git for-each-ref refs/tags` in every repo.

    .venv/bin/python bench/index_build.py [--repos 200] [--versions 3] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_env, fmt, median_of, mx_cmd, run


def make_repos(root: Path, count: int, versions: int, card_words: int = 0) -> None:
    """Write real repos straight through libgit2 (LFS pointers + local LFS objects).

    `card_words` adds that many words, drawn from a 20,000-word made-up vocabulary, to
    each card's Model details, so search has realistic cards to index."""
    import random

    import pygit2
    from tests.support.examples import card_text, linear_classifier, manifest_text

    from mx.lfs import local_object

    sig = pygit2.Signature("bench", "bench@example.invalid", 1767225600, 0)
    rng = random.Random(7)
    syllables = ["ka", "lo", "mi", "ren", "tu", "sa", "vo", "ix", "pe", "dra", "nu", "qel"]
    vocabulary = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
                         for _ in range(20_000)})
    model_tmp = root / "model.onnx"
    for i in range(count):
        name = f"bench{i // 50}/model-{i:04d}"
        repo = pygit2.init_repository(str(root / "repos" / f"r{i:04d}"), bare=False,
                                      initial_head="main")
        parents: list[pygit2.Oid] = []
        for v in range(versions):
            version = f"1.{v}.0"
            linear_classifier(model_tmp, seed=i * 100 + v)
            data = model_tmp.read_bytes()
            oid = hashlib.sha256(data).hexdigest()
            obj = local_object(Path(repo.path), oid)
            obj.parent.mkdir(parents=True, exist_ok=True)
            obj.write_bytes(data)
            pointer = (f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\n"
                       f"size {len(data)}\n").encode()
            tb = repo.TreeBuilder()
            for fname, content in (
                (".gitattributes", b"*.onnx filter=lfs diff=lfs merge=lfs -text\n"),
                ("mx.yaml", manifest_text(name, version, summary=f"bench model {i}").encode()),
                ("README.md", card_text(name).replace(
                    "## Model details\n\n", "## Model details\n\n" + " ".join(
                        rng.choice(vocabulary) for _ in range(card_words)) + "\n\n").encode()),
                ("model.onnx", pointer),
            ):
                tb.insert(fname, repo.create_blob(content), pygit2.enums.FileMode.BLOB)
            commit = repo.create_commit("refs/heads/main", sig, sig, version, tb.write(),
                                        parents)
            parents = [commit]
            repo.create_tag(f"v{version}", commit, pygit2.enums.ObjectType.COMMIT, sig,
                            f"release {version}")
    sources = "".join(f"  - repo: repos/r{i:04d}\n" for i in range(count))
    (root / "registry.yaml").write_text(f"registry: 1\nname: bench\nmirror_artifacts: true\n"
                                        f"allow_unsigned: true\nsources:\n{sources}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repos", type=int, default=200)
    ap.add_argument("--versions", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mx-bench-index-"))
    try:
        env = bench_env(root)
        t0 = time.perf_counter()
        make_repos(root, args.repos, args.versions)
        print(f"generated {args.repos} repos x {args.versions} releases in "
              f"{time.perf_counter() - t0:.1f} s ({root})", flush=True)
        out, cache = root / "site", root / "build-cache"
        build = mx_cmd("index", "build", str(root / "registry.yaml"), "-o", str(out),
                       "--cache-dir", str(cache))

        def wipe() -> None:
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)

        cold, cold_s = median_of(args.runs, lambda: run(build, env), wipe)
        warm, warm_s = median_of(args.runs, lambda: run(build, env))
        repos = sorted((root / "repos").iterdir())

        def reference() -> None:
            for r in repos:
                subprocess.run(["git", "-C", str(r), "for-each-ref", "refs/tags"],
                               check=True, capture_output=True)

        ref, ref_s = median_of(args.runs, reference)
        n = args.repos * args.versions
        print(f"\n{args.repos} repos, {n} releases, {args.runs} runs, medians")
        print(f"reference (git for-each-ref in each repo):   {ref:.3f} s  [{fmt(ref_s)}]")
        print(f"mx index build, cold:                        {cold:.3f} s  [{fmt(cold_s)}]"
              f"  ratio {cold / ref:.2f}x  (target <= 30 s) {'OK' if cold <= 30 else 'MISSED'}")
        print(f"mx index build, nothing changed:             {warm:.3f} s  [{fmt(warm_s)}]"
              f"  ratio {warm / ref:.2f}x  (target <= 3 s) {'OK' if warm <= 3 else 'MISSED'}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
