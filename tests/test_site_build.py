"""The site build without a browser: determinism, incremental rebuilds, the card renderer
and sanitiser, front matter, and the sharded search data."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from mx.site import cardfacts, searchdata, shell
from mx.site.build import PageInput, build_site
from mx.site.sanitize import card_html
from tests.site_cards import unsafe_markup
from tests.support.examples import make_model_repo, sign_all_releases


def _mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns
            for p in root.rglob("*") if p.is_file()}


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
    sitemap = (first / "sitemap.xml").read_text()  # registry.yaml has a base_url
    assert "<loc>http://127.0.0.1/models/acme/iris.html</loc>" in sitemap
    res = mx("index", "build", registry_file, "-o", second, "--json")
    summary = json.loads(res.out)
    assert summary["pages_rendered"] == 0 and summary["site_files_written"] == 0
    before = _mtimes(second)
    time.sleep(0.01)
    make_model_repo(world / "repos/iris", "acme/iris", ["1.3.0"])
    sign_all_releases(world / "repos/iris", world / "keys/acme.pem")
    res = mx("index", "build", registry_file, "-o", second, "--json")
    summary = json.loads(res.out)
    assert summary["pages_rendered"] == 1  # only acme/iris; acme/resnet untouched
    assert "1.3.0" in (second / "models/acme/iris.html").read_text()
    after = _mtimes(second)
    changed = {f for f in after if after[f] != before.get(f)}
    site_changed = {f for f in changed if f.endswith(".html") or f.startswith("search/")}
    assert "models/acme/iris.html" in site_changed and "index.html" in site_changed
    assert "models/acme/resnet.html" not in changed and "search.html" not in changed
    assert not any(f.startswith("assets/") for f in changed)


def _inputs(site: Path) -> tuple[dict[str, PageInput], list[dict[str, Any]]]:
    models = {}
    for doc_file in sorted((site / "index/models").rglob("*.json")):
        doc = json.loads(doc_file.read_text())
        latest = max(doc["versions"])
        card = (site / doc["versions"][latest]["card"]["url"]).read_bytes()
        models[doc["name"]] = _page(doc, latest, card)
    return models, json.loads((site / "index/search.json").read_text())["models"]


def _page(doc: dict[str, Any], latest: str, card: bytes) -> PageInput:
    key = hashlib.sha256(json.dumps(doc, sort_keys=True).encode() + latest.encode() + card)
    return PageInput(key.hexdigest(), lambda: (doc, latest, card))


def test_base_model_link_follows_the_registry(world: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    models, listing = _inputs(world / "site")
    doc, latest, card = models["acme/iris"].load()
    card = card.replace(b"license:", b"base_model: acme/base\nlicense:", 1)
    models["acme/iris"] = _page(doc, latest, card)
    out, work = tmp_path / "out", tmp_path / "work"
    build_site(out, work, "T", None, models, listing, 0)
    assert 'href="https://huggingface.co/acme/base"' in (out / "models/acme/iris.html").read_text()
    # The shells are reused: mkdocs does not run again.
    monkeypatch.setattr(shell, "_start_mkdocs", lambda *a: pytest.fail("mkdocs ran again"))
    resnet_doc, resnet_latest, resnet_card = models["acme/resnet"].load()
    base_doc = json.loads(json.dumps(resnet_doc).replace("acme/resnet", "acme/base"))
    models["acme/base"] = _page(base_doc, resnet_latest, resnet_card)
    listing = [*listing, {**listing[0], "name": "acme/base"}]
    result = build_site(out, work, "T", None, models, listing, 0)
    assert result.pages_rendered == 2  # the new model, and iris whose base model joined
    assert 'href="../../models/acme/base.html"' in (out / "models/acme/iris.html").read_text()
    del models["acme/base"]
    build_site(out, work, "T", None, models, listing[:-1], 0)
    assert not (out / "models/acme/base.html").exists()
    assert 'huggingface.co/acme/base"' in (out / "models/acme/iris.html").read_text()


HOSTILE = [
    "<script>alert(1)</script>", "[x](javascript:alert(1))", "<a href='JAVASCRIPT:x'>a</a>",
    "<a href=' javascript:x'>a</a>", "<img src=x onerror=alert(1)>", "<svg onload=alert(1)>",
    "<iframe src=https://e.invalid></iframe>", "<math><mi xlink:href=javascript:x>m</mi></math>",
    "<a href='data:text/html,x'>d</a>", "<details ontoggle=alert(1) open>x</details>",
    "<p style='position:fixed'>s</p>", "<h2 id='__config'>c</h2>",
    "<code class='mx-search'>c</code>",
    "<javascript:alert(1)>", "<form><button formaction=javascript:x>b</button></form>",
    "<a href='vbscript:x'>v</a>", "<div onmouseover='x'>d</div>", "<base href='https://e.invalid/'>",
    "<meta http-equiv=refresh content='0;url=javascript:x'>", "<object data=x></object>",
]


@pytest.mark.parametrize("markup", HOSTILE)
def test_hostile_card_markup_is_removed(markup: str) -> None:
    out = card_html(f"Text before.\n\n{markup}\n\n- item\n").html
    assert unsafe_markup(out) == [], out
    assert "<li>item</li>" in out


def test_card_headings_get_unique_ids_and_shift_a_level() -> None:
    card = card_html("# Top\n\n## Usage\n\n## Usage\n\n### `code` *and* emphasis\n\n"
                     "## Versions\n\n###### Six\n", reserved={"versions"})
    assert [(h.level, h.id) for h in card.headings] == [
        (2, "top"), (3, "usage"), (3, "usage-1"), (4, "code-and-emphasis"), (3, "versions-1"),
        (6, "six")]
    assert '<h2 id="top">Top</h2>' in card.html and '<h6 id="six">Six</h6>' in card.html
    assert card_html("It achieves:\n- Loss: 2.37\n").html.count("<li>") == 1
    linked = card_html("See README.md, https://example.org/x and <a@b.org>.").html
    assert linked.count("<a ") == 2 and "http://README.md" not in linked


def test_front_matter_fast_path_and_bounded_aliases() -> None:
    front, body = cardfacts.split(b"---\ndatasets: [a/b]\nlanguage: en\n---\n# Card\n")
    assert body == "# Card\n" and cardfacts.front_matter(front)["datasets"] == ["a/b"]
    assert cardfacts.split(b"---\nnever closed\n") == (None, "---\nnever closed\n")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    start = time.perf_counter()
    assert cardfacts.front_matter(bomb) == {}  # refused by the bounded reader
    assert time.perf_counter() - start < 5
    info = cardfacts.card_info({"datasets": ["ok/set", "javascript:x", "<b>"],
                               "base_model": "x\" onclick=\"y", "language": [["nested"]],
                               "model-index": [{"results": "not a list"}]}, set(), "")
    assert [d.href for d in info.datasets] == ["https://huggingface.co/datasets/ok/set", None,
                                               None]
    assert info.base_models[0].href is None and info.languages == [] and info.metrics == []


def _lookup(files: dict[str, bytes], word: str) -> set[str]:
    """What mx-search.js does for one word, in Python."""
    meta = json.loads(files["meta.json"])
    keys = meta["shards"]
    own = [k for k in keys if not k.endswith("_") and word.startswith(k)]
    shards = own or [k for k in keys if k.startswith(word)]
    ids = set()
    for key in shards:
        for term, postings in json.loads(files[f"t/{key}.json"]).items():
            if term.startswith(word):
                ids.update(p >> 1 for p in postings)
    docs = meta["docs"]
    return {json.loads(files[f"d/{i // docs}.json"])[i % docs][0] for i in ids}


def test_search_shards_are_small_and_find_every_word(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(searchdata, "SHARD_POSTINGS", 40)
    entries = [{"name": f"ns{i % 7}/model-{i:03d}", "latest": "1.0.0", "summary": f"s{i}",
                "task": "text-classification", "tags": ["t"],
                "keywords": f"word{i} kalo{i % 13} common"} for i in range(300)]
    files = searchdata.build(entries)
    assert files == searchdata.build(list(reversed(entries)))  # deterministic
    sizes = {k: len(json.loads(v)) for k, v in files.items() if k.startswith("t/")}
    big = {k: n for k, n in sizes.items()
           if sum(map(len, json.loads(files[k]).values())) > 40}
    assert all(len(json.loads(files[k])) == 1 for k in big)  # only a single common term
    def named(ids: list[int]) -> set[str]:
        return {f"ns{i % 7}/model-{i:03d}" for i in ids}

    assert _lookup(files, "word17") == named([17, *range(170, 180)])  # words it begins
    assert _lookup(files, "word1") == named([i for i in range(300) if str(i).startswith("1")])
    assert len(_lookup(files, "kalo5")) == len([i for i in range(300) if i % 13 == 5])
    assert _lookup(files, "del") == {e["name"] for e in entries}  # suffix
    assert len(_lookup(files, "common")) == 300


def test_search_update_equals_a_full_build(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The incremental search data (from the last build's postings) is byte for byte what a
    full build gives, and only the files a change touches are returned."""
    monkeypatch.setattr(searchdata, "SHARD_POSTINGS", 40)
    entries = [{"name": f"ns{i % 7}/model-{i:03d}", "latest": "1.0.0", "summary": f"s{i}",
                "task": "text-classification", "tags": ["t"],
                "keywords": f"word{i} kalo{i % 13} common"} for i in range(300)]
    state = tmp_path / "search-state.bin"
    first, every = searchdata.update(entries, state)
    assert first == searchdata.build(entries) and sorted(every) == sorted(first)
    entries[17] = {**entries[17], "summary": "renamed thing", "keywords": "zebra kalo1 word17"}
    entries[200] = {**entries[200], "latest": "2.0.0", "tags": ["model"]}  # a name term
    changed, every = searchdata.update(entries, state)
    full = searchdata.build(entries)
    assert sorted(every) == sorted(full)
    assert all(full[rel] == data for rel, data in changed.items())
    assert 1 < len(changed) < len(full) / 2  # only what the change touched
    unchanged = set(full) - set(changed)
    assert all(first.get(rel) == full[rel] for rel in unchanged)
    # a model added: the ids shift, so everything is computed again
    entries.append({**entries[0], "name": "aa/new"})
    changed, _ = searchdata.update(entries, state)
    assert changed == searchdata.build(entries)
