"""Build the site into the output: the theme's shells (mkdocs-material, run only when the
theme, title or site URL changed), a page per model rendered only when its model changed,
the listings, the sharded search data and the sitemap. A file whose bytes did not change
is not written again (its mtime, and so its ETag, stays)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from mx.fsutil import atomic_write_bytes, walk_files, write_if_changed
from mx.lifecycle import Log
from mx.site import searchdata, shell
from mx.site.governance import History
from mx.site.pages import SiteRenderer, page_path, template_env

SITE_FOLDERS = ("models", "namespaces", "tags", "tasks", "search")  # the site's alone

STATE_FORMAT = 3  # 3: page keys come from the index builder, with each page's lifecycle


PageData = tuple[dict[str, Any], str, bytes]  # index document, version shown, its card


@dataclass(frozen=True)
class PageInput:
    """A model's page: `key` changes whenever what the page shows changes; `load` gives
    the page's inputs, read only when the page is rendered."""

    key: str
    load: Callable[[], PageData]


@dataclass
class SiteResult:
    pages_rendered: int
    files_copied: int  # site files written (pages, listings, search data, assets)


def build_site(out: Path, work: Path, title: str, site_url: str | None,
               models: dict[str, PageInput], listing: list[dict[str, Any]],
               epoch: int, history: Log | None = None, forget: bool = False) -> SiteResult:
    """`models`: name -> its page's key and inputs; `listing`: the entries of
    index/search.json; `history`: registry.yaml's channel and yank changes
    (mx.lifecycle.walk), for the lifecycle sections and the audit page. `forget`: the
    output was written by a build that did not keep its state in `work` (another cache
    dir): render every page, and sweep the site's folders of files this build does not
    write."""
    work.mkdir(parents=True, exist_ok=True)
    if forget:
        for name in ("pages.json", "search-state.bin"):
            (work / name).unlink(missing_ok=True)
    # What the earlier builder (mkdocs over every page) left in the cache.
    for old in ("docs", "build", "rendered.json", "mkdocs.yml"):
        path = work / old
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    config = template_env().get_template("mkdocs.yml.j2").render(name=title, site_url=site_url)
    job = shell.ShellJob(work, config, epoch)
    try:
        return _build(out, work, site_url, models, listing, job, title, History.of(history),
                      forget)
    finally:
        job.close()


def _build(out: Path, work: Path, site_url: str | None,
           models: dict[str, PageInput], listing: list[dict[str, Any]],
           job: shell.ShellJob, title: str, history: History, forget: bool) -> SiteResult:
    state_file = work / "pages.json"
    state = _load_state(state_file, job.fingerprint)
    names = set(models)
    renderer = SiteRenderer(title, names, work / "templates")
    writer = _Writer(out, job)
    rendered = 0
    new_state: dict[str, Any] = {}
    for name, model in sorted(models.items()):
        rel = page_path(name)
        writer.current.add(rel)
        key = hashlib.sha256(model.key.encode() + b"\0" + history.model_key(name)).hexdigest()
        old = state.get(name)
        # A base model joining or leaving the registry turns its link to the Hub into one to
        # its page here (or back): the page is rendered again even if its model did not change.
        if (old and old["key"] == key and os.path.exists(f"{out}/{rel}")
                and all((b in names) == internal for b, internal in old["refs"].items())):
            new_state[name] = old
            continue
        doc, latest, card = model.load()
        page, refs = renderer.model(doc, latest, card, history)
        writer.page(page)
        rendered += 1
        new_state[name] = {"key": key, "refs": {b: b in names for b in refs}}
    for page in [*renderer.listings(listing).values(), renderer.audit(history)]:
        writer.current.add(page.path)
        writer.page(page)
    shells = writer.flush()
    changed, every = searchdata.update(listing, work / "search-state.bin")
    if any(rel not in changed and not (out / "search" / rel).is_file() for rel in every):
        changed = searchdata.build(listing)  # a file went missing from the output: all again
    for rel in every:
        if rel in changed:
            writer.file(f"search/{rel}", changed[rel])
        else:
            writer.current.add(f"search/{rel}")
    writer.file("audit.json", history.audit_json(title))
    writer.file("audit.xml", history.atom(title, site_url, names))
    _copy_theme(shells.build, writer)
    if site_url:
        writer.file("sitemap.xml", _sitemap(site_url, writer.current))
    atomic_write_bytes(state_file, json.dumps({"format": STATE_FORMAT,
                                               "shell": shells.fingerprint,
                                               "pages": new_state}, sort_keys=True).encode())
    _remove_stale(out, work / "site-files.json", writer.current, forget)
    return SiteResult(rendered, writer.written)


class _Writer:
    """Writes pages into their shells as soon as the shells exist; until then (mkdocs
    building the skeleton) keeps them."""

    def __init__(self, out: Path, job: shell.ShellJob) -> None:
        self.out, self.job = out, job
        self.pending: list[shell.Page] = []
        self.current: set[str] = set()  # every site file of this build
        self.written = 0

    def file(self, rel: str, data: bytes) -> None:
        self.current.add(rel)
        self.written += write_if_changed(self.out / rel, data)

    def page(self, page: shell.Page) -> None:
        if not self.job.ready():
            self.pending.append(page)
            return
        self.flush()
        self.file(page.path, self.job.wait().render(page).encode())

    def flush(self) -> shell.Shells:
        shells = self.job.wait()
        for page in self.pending:
            self.file(page.path, shells.render(page).encode())
        self.pending.clear()
        return shells


def _load_state(path: Path, fingerprint: str) -> dict[str, Any]:
    """Pages rendered by the last build, if it used the same shells and state format."""
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT \
            or state.get("shell") != fingerprint:
        return {}
    pages = state.get("pages")
    return pages if isinstance(pages, dict) else {}


def _copy_theme(build: Path, writer: _Writer) -> None:
    """The theme's assets and 404 page, from the skeleton's build."""
    files = [build / "404.html", *sorted(p for p in (build / "assets").rglob("*") if p.is_file())]
    for src in files:
        writer.file(src.relative_to(build).as_posix(), src.read_bytes())


def _sitemap(site_url: str, files: set[str]) -> bytes:
    base = site_url.rstrip("/") + "/"
    urls = "".join(f"<url><loc>{escape(base + rel)}</loc></url>\n"
                   for rel in sorted(files) if rel.endswith(".html") and rel != "404.html")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            f"{urls}</urlset>\n").encode()


def _remove_stale(out: Path, manifest: Path, current: set[str], sweep: bool) -> None:
    """Remove site files a previous build wrote that this one did not (a model, tag or
    shard that is gone); the index, cards and artifacts are never touched. `sweep`: the
    previous build is unknown; every file of the site's own folders counts as its."""
    try:
        previous = set(json.loads(manifest.read_text()))
    except (FileNotFoundError, ValueError):
        previous = set()
    if sweep:
        previous.update(rel for top in SITE_FOLDERS for rel, _ in walk_files(out / top, top))
    for rel in sorted(previous - current):
        (out / rel).unlink(missing_ok=True)
    atomic_write_bytes(manifest, json.dumps(sorted(current)).encode())
