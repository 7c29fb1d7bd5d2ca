"""The registry website, in a real browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import httpx
import pytest

from mx.examples import card_text, make_model_repo, sign_all_releases
from tests.support.servers import Host, static_host

SCREENSHOTS = Path(__file__).resolve().parents[1] / ".test-screenshots"
EVIL_CARD_BODY = """
## Model details

Trained near zanzibar on a quokka corpus.

<script>alert("card script")</script>
[click me](javascript:alert('link'))
<img src="x" onerror="alert('img')">
<iframe src="https://example.invalid/"></iframe>
<a href="#" onclick="alert('click')">onclick link</a>

## Intended use

Tests of the site's sanitiser.

## Limitations

None known.

## Bias and risks

None known.

## Training data

Synthetic.

## Evaluation

Not evaluated.
"""


@pytest.fixture
def site_world(mx, world: Path) -> Path:  # type: ignore[no-untyped-def]
    """The shared world plus acme/evil, whose card tries every trick; built with its site."""
    repo = world / "repos" / "evil"
    make_model_repo(repo, "acme/evil", ["0.1.0"], summary="A card | with <b>markup</b>",
                    tags=("nlp", "<script>x</script>"))
    front, _, _ = card_text("acme/evil").partition("\n## Model details")
    (repo / "README.md").write_text(front + "\n" + EVIL_CARD_BODY)
    from mx.examples import git

    git(repo, "commit", "-qam", "the evil card")
    git(repo, "tag", "-a", "-m", "r", "v0.2.0")
    (repo / "mx.yaml").write_text((repo / "mx.yaml").read_text().replace("0.1.0", "0.2.0"))
    git(repo, "commit", "-qam", "version")
    git(repo, "tag", "-d", "v0.2.0")
    git(repo, "tag", "-a", "-m", "r", "v0.2.0")
    sign_all_releases(repo, world / "keys" / "acme.pem")
    reg = world / "registry.yaml"
    reg.write_text(reg.read_text().replace("sources:\n", "sources:\n  - repo: repos/evil\n"))
    res = mx("index", "build", reg, "-o", world / "site")
    assert res.code == 0, res.err
    return world / "site"


@pytest.fixture
def site_host(site_world: Path) -> Iterator[Host]:
    with static_host(site_world) as host:
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
    for name in ("acme/iris", "acme/resnet", "acme/evil"):
        assert page.get_by_role("link", name=name).count() >= 1
    shot(page, "home")
    page.close()


def test_search_finds_a_word_of_one_card(browser: Any, site_host: Host) -> None:
    page = browser.new_page()
    page.goto(site_host.url + "search.html")
    page.fill(".mx-search-input", "zanzibar")
    page.wait_for_selector(".mx-search-results li a")
    links = page.locator(".mx-search-results li a").all_inner_texts()
    assert links == ["acme/evil 0.2.0"]
    shot(page, "search")
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
    assert page.locator(".mx-chart svg").count() == 1
    shot(page, "model")
    page.close()


def test_cards_cannot_inject_markup(browser: Any, site_host: Host, site_world: Path) -> None:
    html = (site_world / "models/acme/evil.html").read_text()
    body = html[html.index("mx-card"):]
    for bad in ("<script>alert", "javascript:", "onerror=", "onclick=", "<iframe"):
        assert bad not in body, bad
    assert "&lt;b&gt;markup&lt;/b&gt;" in html  # the summary shows as text
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(site_host.url + "models/acme/evil.html")
    page.get_by_text("onclick link").click()
    page.get_by_text("click me").click()
    page.wait_for_timeout(200)
    assert dialogs == []
    assert "zanzibar" in page.inner_text(".mx-card")
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


def test_search_listing_has_card_words(site_world: Path) -> None:
    listing = json.loads((site_world / "index/search.json").read_text())
    evil = next(m for m in listing["models"] if m["name"] == "acme/evil")
    assert {"zanzibar", "quokka"} <= set(evil["keywords"].split())


def test_site_is_deterministic_and_incremental(mx, world: Path, registry_file: Path,  # type: ignore[no-untyped-def]
                                               tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    res = mx("index", "build", registry_file, "-o", first, "--json")
    assert json.loads(res.out)["pages_rendered"] == 2
    shutil.rmtree(tmp_path / "mxhome", ignore_errors=True)
    assert mx("index", "build", registry_file, "-o", second).code == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    res = mx("index", "build", registry_file, "-o", second, "--json")
    summary = json.loads(res.out)
    assert summary["pages_rendered"] == 0 and summary["site_files_written"] == 0
    from mx.examples import make_model_repo

    make_model_repo(world / "repos/iris", "acme/iris", ["1.3.0"])
    sign_all_releases(world / "repos/iris", world / "keys/acme.pem")
    res = mx("index", "build", registry_file, "-o", second, "--json")
    summary = json.loads(res.out)
    assert summary["pages_rendered"] == 1  # only acme/iris; acme/resnet untouched
    assert "1.3.0" in (second / "models/acme/iris.html").read_text()


def test_cli_search_finds_card_words(mx, site_host: Host) -> None:  # type: ignore[no-untyped-def]
    res = mx("search", "quokka", "--registry", site_host.url, "--json")
    assert [m["name"] for m in json.loads(res.out)] == ["acme/evil"]
