"""Benchmark the registry website: build time, rebuild after one change, search size and
search latency in headless Chromium.

Targets (issue 5): 1,000 models, full site build at most 60 s on 2 cores, rebuild after
one model changed at most 10 s; search data under 5 MB and first results within 300 ms
of typing at 5,000 models. The reference, measured in the same run, is `mx index build
--no-site` (the index alone) on the same registry.

    .venv/bin/python bench/site.py [--models 1000 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_env, fmt, median_of, mx_cmd, run
from index_build import make_repos


def search_latency(url: str, word: str, runs: int) -> tuple[list[float], list[float]]:
    """ms from typing to the first result: with a fresh page (fetches the listing) and
    again on the same page (listing already loaded)."""
    from playwright.sync_api import sync_playwright

    cold, warm = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"])
        for _ in range(runs):
            page = browser.new_page()
            page.goto(url + "search.html")
            page.wait_for_load_state("networkidle")
            for samples, query in ((cold, word), (warm, word[:-1])):
                start = time.perf_counter()
                page.fill(".mx-search-input", query)
                page.wait_for_selector(".mx-search-results li a")
                samples.append((time.perf_counter() - start) * 1000)
                page.fill(".mx-search-input", "")
            page.close()
        browser.close()
    return cold, warm


def bench(n: int, runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix=f"mx-bench-site-{n}-"))
    try:
        env = bench_env(root)
        make_repos(root, n, 1, card_words=120)
        reg, out, cache = root / "registry.yaml", root / "site", root / "cache"
        build = mx_cmd("index", "build", str(reg), "-o", str(out), "--cache-dir", str(cache))

        def wipe() -> None:
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)

        index_only, index_s = median_of(runs, lambda: run([*build, "--no-site"], env), wipe)
        full, full_s = median_of(max(1, runs // 2), lambda: run(build, env), wipe)
        run(build, env)

        def change_one() -> None:
            # A new release of one model: new manifest, new card, new page.
            import pygit2

            repo = pygit2.Repository(str(root / "repos" / "r0000"))
            head = repo[repo.head.target]
            text = repo[head.tree["mx.yaml"].id].data.decode()
            version = f"9.{int(time.time() * 1000) % 100000}.0"
            old = next(ln for ln in text.splitlines() if ln.startswith("version:"))
            tb = repo.TreeBuilder(head.tree)
            tb.insert("mx.yaml", repo.create_blob(text.replace(old, f"version: {version}")),
                      pygit2.enums.FileMode.BLOB)
            sig = pygit2.Signature("bench", "bench@example.invalid")
            commit = repo.create_commit("refs/heads/main", sig, sig, version, tb.write(),
                                        [head.id])
            repo.create_tag(f"v{version}", commit, pygit2.enums.ObjectType.COMMIT, sig, "r")

        rebuild, rebuild_s = median_of(runs, lambda: run(build, env), change_one)
        size = (out / "index" / "search.json").stat().st_size
        server = subprocess.Popen(mx_cmd("index", "serve", str(out), "--port", "0"),
                                  stderr=subprocess.PIPE, text=True, env=env)
        assert server.stderr is not None
        url = server.stderr.readline().split(" at ")[1].split()[0]
        import json

        listing = json.loads((out / "index" / "search.json").read_text())
        word = listing["models"][n // 2]["keywords"].split()[0]  # a rare word of one card
        cold, warm = search_latency(url, word, runs)
        server.terminate()
        server.wait()
        print(f"\n{n} models, {runs} runs, medians")
        print(f"reference: mx index build --no-site, cold:      {index_only:6.2f} s  "
              f"[{fmt(index_s)}]")
        print(f"mx index build with the site, cold:             {full:6.2f} s  [{fmt(full_s)}]"
              f"  ratio {full / index_only:.2f}x"
              + (f"  (target <= 60 s) {'OK' if full <= 60 else 'MISSED'}" if n <= 1000 else ""))
        print(f"rebuild after one model changed:                {rebuild:6.2f} s  "
              f"[{fmt(rebuild_s)}]"
              + (f"  (target <= 10 s) {'OK' if rebuild <= 10 else 'MISSED'}" if n <= 1000 else ""))
        print(f"search data (index/search.json):                {size / 1e6:6.2f} MB"
              f"  (target < 5 MB) {'OK' if size < 5e6 else 'MISSED'}")
        print(f"search, typing to first result, fresh page:     {statistics.median(cold):6.1f} ms"
              f"  [{fmt([c / 1000 for c in cold])} s]  (target < 300 ms) "
              f"{'OK' if statistics.median(cold) < 300 else 'MISSED'}")
        print(f"search, typing to first result, listing loaded: {statistics.median(warm):6.1f} ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    for n in args.models:
        bench(n, args.runs)


if __name__ == "__main__":
    main()
