"""Benchmark the registry website: what the site adds to `mx index build`, the rebuild
after one model changed, and search latency in headless Chromium.

Goals (issue "Right on real models and real cards", item 8), on a 2-core machine:
- the site adds at most 30% to the index build: full build / `--no-site` build <= 1.30;
- a one-model change rebuilds (index and site) in at most 3 s at 5,000 models;
- first search result on a fresh page within 300 ms, at any size.
The reference, `mx index build --no-site` (the index alone), runs in the same process,
alternating with the measured side; figures are medians.

    .venv/bin/python bench/site.py [--models 1000 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_env, fmt, mx_cmd, run, timed
from index_build import make_repos

# In the page: ms from the input event to the first result link in the list.
_IN_PAGE = """() => new Promise(resolve => {
  const input = document.querySelector('.mx-search-input');
  const list = document.querySelector('.mx-search-results');
  let start = 0;
  input.addEventListener('input', () => { start = performance.now(); },
                         {capture: true, once: true});
  new MutationObserver((_, obs) => {
    if (start && list.querySelector('li a')) {
      obs.disconnect();
      resolve(performance.now() - start);
    }
  }).observe(list, {childList: true, subtree: true});
})"""


def search_latency(url: str, out_dir: Path, word: str, runs: int) -> dict[str, list[float]]:
    """ms from typing to the first result: with a fresh page (nothing of the search data
    loaded but what the page fetched by itself) and again on the same page; `in_page` is
    the fresh page's time from the input event to the result, without Playwright's
    round trips."""
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {"cold": [], "warm": [], "in_page": [], "kb": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"])
        for _ in range(runs):
            page = browser.new_page()
            fetched: list[str] = []
            page.on("requestfinished", lambda r, seen=fetched: seen.append(r.url))
            page.goto(url + "search.html")
            page.wait_for_load_state("networkidle")
            # Not awaited here: the promise resolves once the query below is typed.
            page.evaluate("() => { window.__mxFirst = (" + _IN_PAGE + ")(); }")
            for samples, query in ((out["cold"], word), (out["warm"], word[:-1])):
                start = time.perf_counter()
                page.fill(".mx-search-input", query)
                page.wait_for_selector(".mx-search-results li a")
                samples.append((time.perf_counter() - start) * 1000)
                if samples is out["cold"]:
                    out["in_page"].append(page.evaluate("window.__mxFirst"))
                    data = [u.split("/search/", 1)[1] for u in fetched if "/search/" in u]
                    out["kb"].append(sum((out_dir / "search" / d).stat().st_size
                                         for d in data) / 1024)
                page.fill(".mx-search-input", "")
            page.close()
        browser.close()
    return out


def change_one(root: Path) -> None:
    """A new release of one model: new manifest, new card, new page."""
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
    commit = repo.create_commit("refs/heads/main", sig, sig, version, tb.write(), [head.id])
    repo.create_tag(f"v{version}", commit, pygit2.enums.ObjectType.COMMIT, sig, "r")


def alternate(runs: int, a: Any, b: Any, before: Any) -> tuple[list[float], list[float]]:
    """Time a and b in turns (a, b, a, b, ...), `before` ahead of each run."""
    sa, sb = [], []
    for _ in range(runs):
        for fn, samples in ((a, sa), (b, sb)):
            before()
            samples.append(timed(fn))
    return sa, sb


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


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

        index_s, full_s = alternate(runs, lambda: run([*build, "--no-site"], env),
                                    lambda: run(build, env), wipe)
        run(build, env)
        # One model changed: the whole build, then the index alone, in turns.
        change_s, change_index_s = alternate(runs, lambda: run(build, env),
                                             lambda: run([*build, "--no-site"], env),
                                             lambda: change_one(root))
        run(build, env)
        server = subprocess.Popen(mx_cmd("index", "serve", str(out), "--port", "0"),
                                  stderr=subprocess.PIPE, text=True, env=env)
        assert server.stderr is not None
        url = server.stderr.readline().split(" at ")[1].split()[0]
        listing = json.loads((out / "index" / "search.json").read_text())
        word = listing["models"][n // 2]["keywords"].split()[0]  # a rare word of one card
        try:
            lat = search_latency(url, out, word, runs)
        finally:
            server.terminate()
            server.wait()
        index, full = statistics.median(index_s), statistics.median(full_s)
        change, change_index = statistics.median(change_s), statistics.median(change_index_s)
        cold, in_page = statistics.median(lat["cold"]), statistics.median(lat["in_page"])
        shards = sorted((out / "search").rglob("*.json"), key=lambda p: p.stat().st_size)
        print(f"\n{n} models, {runs} runs each side, alternating, medians")
        print(f"reference: mx index build --no-site, cold:   {index:7.2f} s  [{fmt(index_s)}]")
        print(f"mx index build with the site, cold:          {full:7.2f} s  [{fmt(full_s)}]")
        print(f"  site / index alone:                        {full / index:7.2f}x  "
              f"(goal <= 1.30x) {verdict(full / index <= 1.30)}")
        print(f"one model changed, whole build:              {change:7.2f} s  [{fmt(change_s)}]"
              + (f"  (goal <= 3 s at 5,000) {verdict(change <= 3)}" if n >= 5000 else ""))
        print(f"  the index alone, one model changed:        {change_index:7.2f} s  "
              f"[{fmt(change_index_s)}]  site share {change - change_index:+.2f} s")
        listing_mb = (out / "index/search.json").stat().st_size / 1e6
        print(f"search data: index/search.json {listing_mb:.2f} MB; {len(shards)} files under "
              f"search/, largest {shards[-1].stat().st_size / 1024:.1f} kB")
        print(f"search, typing to first result, fresh page:  {cold:7.1f} ms  "
              f"[{fmt([c / 1000 for c in lat['cold']])} s]  (goal <= 300 ms) "
              f"{verdict(cold <= 300)}")
        print(f"  in the page, input event to first result:  {in_page:7.1f} ms  "
              f"(search data fetched: {statistics.median(lat['kb']):.1f} kB)")
        warm = statistics.median(lat["warm"])
        print(f"search, typing to first result, data loaded: {warm:7.1f} ms")
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
