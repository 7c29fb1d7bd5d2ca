"""The theme's HTML around each page, taken from one mkdocs-material build of a skeleton.

mkdocs is run only when what it would produce can change (title, site URL, theme, mkdocs or
the site's own assets): on a skeleton of one page per kind of slot (each page of the
navigation, a listing under tasks/, a model page two folders down), each holding markers.
The built pages are cut at the markers into shells; every real page is its shell with the
title, content and table of contents filled in. A page's relative links depend only on its
depth, so one shell serves every page of its slot."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import version
from pathlib import Path

from mx.errors import BuildError
from mx.fsutil import atomic_write_bytes

SKELETON_FORMAT = "1"
OWN_ASSETS = ("mx.css", "mx-search.js")
# slot -> the skeleton page built for it; "*" in the path stands for the real page's name.
SLOTS = {
    "home": "index.md", "search": "search.md", "audit": "audit.md", "tasks": "tasks/index.md",
    "tags": "tags/index.md", "namespaces": "namespaces/index.md",
    "listing": "tasks/mxpage.md", "model": "models/mxns/mxpage.md",
}
_NAV_SLOTS = {"home", "search", "audit", "tasks", "tags", "namespaces"}
_HOLE = re.compile("\x00([A-Z]+)\x00")
_TOC = re.compile(r'<nav class="md-nav md-nav--secondary"[^>]*>.*?</nav>', re.S)
_ARTICLE = re.compile(r'(<article class="md-content__inner md-typeset">).*?(</article>)', re.S)


@dataclass(frozen=True)
class Page:
    slot: str
    path: str  # relative to the site root
    title: str  # HTML-escaped
    content: str  # HTML
    toc: str  # HTML: the theme's table-of-contents nav


@dataclass
class Shells:
    fingerprint: str
    parts: dict[str, list[str]]  # slot -> text and hole names, alternating
    build: Path  # the skeleton's built site: assets/ and 404.html are copied from it

    def render(self, page: Page) -> str:
        values = {"TITLE": page.title, "CONTENT": page.content, "TOC": page.toc,
                  "PATH": page.path}
        parts = self.parts[page.slot]
        return "".join(p if i % 2 == 0 else values[p] for i, p in enumerate(parts))


class ShellJob:
    """The shells, from the cache at once or from a skeleton build running meanwhile: a
    cold build renders its pages on one core while mkdocs runs on the other."""

    def __init__(self, work: Path, config: str, epoch: int) -> None:
        self.fingerprint = fingerprint(config)
        self.work = work
        self.folder = work / f"shell-{self.fingerprint}"
        self.shells: Shells | None = None
        self.proc: subprocess.Popen[str] | None = None
        try:
            parts = json.loads((self.folder / "shells.json").read_text())
            self.shells = Shells(self.fingerprint, parts, self.folder / "build")
        except (FileNotFoundError, ValueError):
            _skeleton(self.folder, config)
            self.proc = _start_mkdocs(self.folder, epoch)

    def close(self) -> None:
        """Stop a skeleton build the site will not wait for (the build failed meanwhile)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()

    def ready(self) -> bool:
        return self.shells is not None or (self.proc is not None and self.proc.poll() is not None)

    def wait(self) -> Shells:
        if self.shells is None:
            assert self.proc is not None
            out, err = self.proc.communicate()
            if self.proc.returncode != 0:
                lines = [ln for ln in (err + out).splitlines() if ln.strip()]
                raise BuildError("site: mkdocs build failed: "
                                 + (lines[-1] if lines else "no output"),
                                 hint="the skeleton is in " + str(self.folder))
            parts = {slot: _cut((self.folder / "build" / (page[:-3] + ".html"))
                                .read_text(), page, slot) for slot, page in SLOTS.items()}
            atomic_write_bytes(self.folder / "shells.json", json.dumps(parts).encode())
            for old in self.work.glob("shell-*"):  # an older theme's or title's: never used
                if old != self.folder and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
            self.shells = Shells(self.fingerprint, parts, self.folder / "build")
        return self.shells


def fingerprint(config: str) -> str:
    h = hashlib.sha256(f"{SKELETON_FORMAT}\0{config}\0{version('mkdocs')}\0"
                       f"{version('mkdocs-material')}".encode())
    folder = resources.files("mx").joinpath("templates/site")
    for name in OWN_ASSETS:
        h.update(name.encode() + b"\0" + folder.joinpath(name).read_bytes())
    return h.hexdigest()[:32]


def _skeleton(folder: Path, config: str) -> None:
    docs = folder / "docs"
    for slot, page in SLOTS.items():
        target = docs / page
        target.parent.mkdir(parents=True, exist_ok=True)
        # Pages of the navigation list no headings: the theme would add a second table of
        # contents to the navigation for them.
        toc = "" if slot in _NAV_SLOTS else "\n## MXTOC\n"
        target.write_text(f"# MXTITLE\n\nMXCONTENT\n{toc}")
    (docs / "assets").mkdir(exist_ok=True)
    folder_in = resources.files("mx").joinpath("templates/site")
    for name in OWN_ASSETS:
        (docs / "assets" / name).write_bytes(folder_in.joinpath(name).read_bytes())
    (folder / "mkdocs.yml").write_text(config)


def _start_mkdocs(folder: Path, epoch: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "mkdocs", "build", "--quiet", "--strict", "--clean",
           "--config-file", str(folder / "mkdocs.yml")]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "NO_MKDOCS_2_WARNING": "1",
           "DISABLE_MKDOCS_2_WARNING": "true"}
    return subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _cut(html: str, page: str, slot: str) -> list[str]:
    """Mark the holes of a built skeleton page; fail loudly if the theme moved them."""
    built_path = page[:-3] + ".html"
    html, n_article = _ARTICLE.subn(lambda m: f"{m[1]}\x00CONTENT\x00{m[2]}", html)
    html, n_toc = _TOC.subn("\x00TOC\x00", html)
    html = html.replace('href="#mxtitle"', 'href="#mx-title"').replace("MXTITLE", "\x00TITLE\x00")
    if "mxpage" in built_path:
        html = html.replace(built_path, "\x00PATH\x00")
    if n_article != 1 or n_toc < 1 or re.search(r"(?i)mx(content|toc|title|page|ns)\b", html):
        raise BuildError(f"site: the theme's page layout is not the one mx knows ({slot}: "
                         f"{n_article} articles, {n_toc} tables of contents)",
                         hint="use the mkdocs-material version pyproject.toml names")
    pieces = _HOLE.split(html)
    return pieces
