"""The registry website, in a real browser (Debian's chromium driven by Playwright).

One registry is built for the module: the shared world, a hostile card (acme/evil) and a
card as the Hugging Face Trainer writes it, benchmarked by `mx bench` (acme/trained)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import httpx
import pytest

from mx.cli.main import run
from tests.site_cards import add_evil, add_trained, unsafe_markup
from tests.support.examples import git_home
from tests.support.servers import Host, static_host

SCREENSHOTS = Path(__file__).resolve().parents[1] / ".test-screenshots"


@pytest.fixture(scope="module")
def site_world(tmp_path_factory: pytest.TempPathFactory, world_template: Path,
               index_keys: Path) -> Path:
    root = tmp_path_factory.mktemp("site-world")
    world = root / "world"
    shutil.copytree(world_template, world, symlinks=True,
                    ignore=shutil.ignore_patterns("home", "mxhome"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in git_home(root / "home").items():
            mp.setenv(key, value)
        mp.setenv("MX_HOME", str(root / "mxhome"))
        mp.setenv("MX_INDEX_KEYS", str(index_keys))
        subprocess.run(["git", "lfs", "install", "--skip-repo"], check=True,
                       capture_output=True)
        sources = add_evil(world) + add_trained(world)
        reg = world / "registry.yaml"
        reg.write_text(reg.read_text().replace("sources:\n", "sources:\n" + sources))
        assert run(["index", "build", str(reg), "-o", str(world / "site")]) == 0
    return world


@pytest.fixture(scope="module")
def site(site_world: Path) -> Path:
    return site_world / "site"


@pytest.fixture(scope="module")
def site_host(site: Path) -> Iterator[Host]:
    with static_host(site) as host:
        yield host


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                              args=["--headless", "--no-sandbox", "--disable-gpu",
                                    "--disable-background-networking",
                                    "--disable-component-update", "--no-first-run"])
        yield b
        b.close()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_home_lists_models(browser: Any, site_host: Host) -> None:
    page = browser.new_page()
    page.goto(site_host.url)
    for name in ("acme/iris", "acme/resnet", "acme/evil", "acme/trained"):
        assert page.get_by_role("link", name=name).count() >= 1
    assert page.locator(".md-tabs__item--active").inner_text().strip() == "Models"
    shot(page, "home")
    page.close()


def test_search_fetches_small_shards(browser: Any, site_host: Host) -> None:
    page = browser.new_page()
    fetched: list[str] = []
    page.on("requestfinished", lambda r: fetched.append(r.url))
    page.goto(site_host.url + "search.html")
    page.fill(".mx-search-input", "zanzibar")
    page.wait_for_selector(".mx-search-results li a")
    assert page.locator(".mx-search-results li a").all_inner_texts() == ["acme/evil 0.2.0"]
    shot(page, "search")
    data = [u for u in fetched if "/search/" in u]
    assert not any(u.endswith("index/search.json") for u in fetched)
    assert any(re.search(r"/search/t/z[^/]*\.json$", u) for u in data)
    assert len(data) <= 4, data  # meta, one shard, one page of records
    page.fill(".mx-search-input", "zanz")  # a word's beginning finds it too
    page.wait_for_function("document.querySelector('.mx-search-results a') && document."
                           "querySelector('.mx-search-results a').textContent == 'acme/evil 0.2.0'")
    page.fill(".mx-search-input", "linear classifier")
    page.wait_for_function("document.querySelectorAll('.mx-search-results li a').length == 3")
    page.fill(".mx-search-input", "snet")  # any part of a word of a name
    page.wait_for_function("[...document.querySelectorAll('.mx-search-results li a')]"
                           ".map(a => a.textContent).join() == 'acme/resnet 0.1.0'")
    page.fill(".mx-search-input", "linear classifier")
    page.wait_for_function("document.querySelectorAll('.mx-search-results li a').length == 3")
    page.locator(".mx-search-results li a", has_text="acme/iris").click()
    page.wait_for_url("**/models/acme/iris.html")
    page.close()


def test_model_page(browser: Any, site_host: Host) -> None:
    page = browser.new_page()
    page.goto(site_host.url + "models/acme/iris.html")
    text = page.inner_text("article")
    for version in ("2.0.0-rc.1", "1.2.0", "1.1.0", "1.0.0"):
        assert version in text
    assert "yanked: wrong weights; use 1.1.0" in text and "pre-release" in text
    assert "mx install acme/iris@^1.1.0" in text
    assert 'mx.load("acme/iris@^1.1.0")' in text
    assert "fp32" in text and "model.onnx" in text and "signed with key" in text
    assert "stable" in text and "canary" in text
    lifecycle = page.locator(".mx-lifecycle")  # this registry.yaml is in no git repository
    assert lifecycle.is_visible()
    assert "stable → 1.1.0" in lifecycle.inner_text()
    assert "No history: registry.yaml is not in a git repository." in lifecycle.inner_text()
    assert page.locator(".mx-chart svg").count() == 1
    assert page.title() == "acme/iris - Test registry"
    shot(page, "model")
    page.close()


def test_audit_tab(browser: Any, site_host: Host) -> None:
    page = browser.new_page()
    page.goto(site_host.url + "index.html")
    page.locator(".md-tabs__link", has_text="Audit").click()
    page.wait_for_url("**/audit.html")
    assert page.locator(".md-tabs__item--active").inner_text().strip() == "Audit"
    assert "No history: registry.yaml is not in a git repository." in page.inner_text("article")
    page.close()


def test_trainer_card_renders_as_on_the_hub(browser: Any, site_host: Host) -> None:
    page = browser.new_page()
    page.goto(site_host.url + "models/acme/trained.html")
    card = page.locator(".mx-card")
    # A list right after a line of text is a list (CommonMark), as in every Trainer card.
    assert card.locator("ul").first.locator("li").all_inner_texts() == [
        "Loss: 2.3700", "Accuracy: 0.9312"]
    assert card.locator("del, s").inner_text() == "Old numbers"
    assert card.locator("a[href='https://example.org/notes']").count() == 1  # autolink
    cells = card.locator("table tbody tr").first.locator("td").all_inner_texts()
    assert cells == ["0.2541", "1.0", "1563", "0.2370", "0.9312"]
    # model-index as a metrics table
    rows = page.locator(".mx-results table tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").all_inner_texts() == [
        "Text Classification", "imdb", "plain_text / test", "Accuracy", "0.9312"]
    assert rows.nth(1).locator("td").all_inner_texts()[-2:] == ["Loss", "2.37"]
    assert rows.nth(0).locator("a").get_attribute("href") == \
        "https://huggingface.co/datasets/stanfordnlp/imdb"
    meta = page.locator(".mx-meta")
    assert meta.locator("a", has_text="stanfordnlp/imdb").get_attribute("href") == \
        "https://huggingface.co/datasets/stanfordnlp/imdb"
    assert meta.locator("a", has_text="google-bert/bert-base-uncased").get_attribute(
        "href") == "https://huggingface.co/google-bert/bert-base-uncased"
    assert meta.locator("a", has_text="transformers").get_attribute("href") == \
        "https://huggingface.co/models?library=transformers"
    assert [a.inner_text() for a in meta.locator("a[href*='language=']").all()] == ["en", "fr"]
    meta.locator("a", has_text="acme/iris").click()  # a base model in this registry
    page.wait_for_url("**/models/acme/iris.html")
    page.close()


def test_headings_have_anchors_that_resolve(browser: Any, site_host: Host) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 700})
    page.goto(site_host.url + "models/acme/trained.html")
    ids = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
    hrefs = page.eval_on_selector_all("a[href^='#']", "els => els.map(e => e.getAttribute('href'))")
    assert [h for h in hrefs if h[1:] not in ids] == []
    toc = page.locator(".md-sidebar--secondary .md-nav__link")
    assert "Training procedure" in toc.all_inner_texts()
    assert "Benchmarks" in toc.all_inner_texts() and "Evaluation results" in toc.all_inner_texts()
    toc.filter(has_text="Training procedure").click()
    page.wait_for_url("**#training-procedure")
    heading = page.locator("#training-procedure")
    assert heading.inner_text().startswith("Training procedure")
    assert heading.evaluate("h => h.closest('.mx-card') !== null && h.tagName") == "H3"
    assert 0 <= heading.evaluate("h => h.getBoundingClientRect().top") < 200  # scrolled to
    page.evaluate("window.scrollTo(0, 0)")
    page.get_by_role("link", name="the training procedure").click()  # a link inside the card
    page.wait_for_function("document.getElementById('training-procedure')"
                           ".getBoundingClientRect().top < 200")
    page.close()


def test_benchmark_tables_show_mx_bench_results(browser: Any, site_host: Host,
                                                site_world: Path) -> None:
    results = json.loads((site_world / "repos/trained/bench/results.json").read_text())
    ((_, hw),) = results["hardware"].items()
    page = browser.new_page()
    page.goto(site_host.url + "models/acme/trained.html")
    heading = page.locator("#mx-bench-1").inner_text()
    assert hw["cpu"] in heading and hw["backend"] in heading
    rows = page.locator(".mx-bench table tbody tr")
    assert rows.count() == len(hw["results"]) == 2
    header = page.locator(".mx-bench table thead th").all_inner_texts()
    for i, res in enumerate(hw["results"]):
        cells = dict(zip(header, rows.nth(i).locator("td").all_inner_texts(), strict=True))
        assert cells["Variant"] == res["variant"] and cells["Batch"] == str(res["batch"])
        assert cells["p50 ms"] == format(res["latency_ms"]["p50"], ".3g")
        assert cells["p99 ms"] == format(res["latency_ms"]["p99"], ".3g")
        assert cells["Items/s"] == format(res["throughput"], ".4g")
    assert cells["p50 vs fp32"] == "1.00x"
    chart = page.locator(".mx-chart svg[aria-label^='p50 latency']")
    assert chart.locator("rect").count() == 2
    shot(page, "trained")
    page.close()


def test_cards_cannot_inject_markup(browser: Any, site_host: Host, site: Path) -> None:
    html = (site / "models/acme/evil.html").read_text()
    card = html[html.index('<div class="mx-card">') + 21:html.index("</article>")]
    assert unsafe_markup(card) == []
    assert "&lt;b&gt;markup&lt;/b&gt;" in html  # the summary shows as text
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(site_host.url + "models/acme/evil.html")
    for text in ("onclick link", "click me", "spaces link", "data link", "more"):
        page.get_by_text(text, exact=False).first.click()
    page.wait_for_timeout(200)
    assert dialogs == []
    assert "zanzibar" in page.inner_text(".mx-card")
    assert page.evaluate("JSON.parse(document.getElementById('__config').textContent).base")
    page.close()


def test_model_page_reads_without_javascript(browser: Any, site_host: Host) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(site_host.url + "models/acme/resnet.html")
    text = page.inner_text("body")
    assert "acme/resnet" in text and "0.1.0" in text and "mx install acme/resnet" in text
    assert "Model card" in text and "Training data" in text
    context.close()


def test_every_internal_link_resolves(site_host: Host) -> None:
    start = site_host.url
    seen: set[str] = set()
    queue = [start]
    broken: list[str] = []
    with httpx.Client() as client:
        while queue and len(seen) < 500:
            url = queue.pop()
            if url in seen:
                continue
            seen.add(url)
            r = client.get(url)
            if r.status_code != 200:
                broken.append(url)
                continue
            if not r.headers.get("content-type", "").startswith("text/html"):
                continue
            for href in re.findall(r'(?:href|src)="([^"#]+)', r.text):
                target = urljoin(url, href)
                if urlparse(target).netloc == urlparse(start).netloc:
                    queue.append(target.split("#")[0])
    assert broken == []
    assert any(u.endswith("models/acme/iris.html") for u in seen)
    assert any("/tags/" in u for u in seen) and any("/tasks/" in u for u in seen)
    assert any("/assets/javascripts/bundle." in u for u in seen)


def test_search_listing_has_card_words(site: Path) -> None:
    listing = json.loads((site / "index/search.json").read_text())
    evil = next(m for m in listing["models"] if m["name"] == "acme/evil")
    assert {"zanzibar", "quokka"} <= set(evil["keywords"].split())


def test_cli_search_finds_card_words(mx, site_host: Host) -> None:  # type: ignore[no-untyped-def]
    res = mx("search", "quokka", "--registry", site_host.url, "--json")
    assert [m["name"] for m in json.loads(res.out)] == ["acme/evil"]
