"""Build the site: render changed pages, run mkdocs-material, copy what changed into the
output. Pages of models whose documents did not change are not rendered again, and
mkdocs rebuilds only pages whose Markdown changed (--dirty)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mx.errors import BuildError
from mx.fsutil import atomic_write_bytes, write_if_changed
from mx.site.pages import SiteRenderer, page_path

ASSETS = ("mx.css", "mx-search.js")


@dataclass
class SiteResult:
    pages_rendered: int
    files_copied: int


def _template_fingerprint() -> str:
    h = hashlib.sha256()
    folder = resources.files("mx").joinpath("templates/site")
    for name in sorted(p.name for p in folder.iterdir()):
        h.update(name.encode())
        h.update(folder.joinpath(name).read_bytes())
    return h.hexdigest()


def build_site(out: Path, work: Path, title: str, site_url: str | None,
               models: dict[str, tuple[dict[str, Any], str, bytes]],
               listing: list[dict[str, Any]], epoch: int) -> SiteResult:
    """`models`: name -> (index document, version shown, card bytes of that version)."""
    docs = work / "docs"
    state_file = work / "rendered.json"
    fingerprint = _template_fingerprint()
    try:
        state: dict[str, str] = json.loads(state_file.read_text())
    except (FileNotFoundError, ValueError):
        state = {}
    renderer = SiteRenderer(title)
    rendered = 0
    new_state: dict[str, str] = {}
    for name, (doc, latest, card) in sorted(models.items()):
        key = hashlib.sha256(fingerprint.encode() + json.dumps(doc, sort_keys=True).encode()
                             + latest.encode() + card).hexdigest()
        target = docs / page_path(name)
        new_state[name] = key
        if state.get(name) == key and target.exists():
            continue
        write_if_changed(target, renderer.model(doc, latest, card).encode())
        rendered += 1
    listings = renderer.listings(listing)
    for rel, text in listings.items():
        write_if_changed(docs / rel, text.encode())
    assets = resources.files("mx").joinpath("templates/site")
    for asset in ASSETS:
        write_if_changed(docs / "assets" / asset, assets.joinpath(asset).read_bytes())
    config = renderer.env.get_template("mkdocs.yml.j2").render(name=title, site_url=site_url)
    config_changed = write_if_changed(work / "mkdocs.yml", config.encode())
    _remove_stale_pages(docs, work / "build", {page_path(n) for n in models}, set(listings))
    _mkdocs(work, dirty=(work / "build").exists() and not config_changed, epoch=epoch)
    atomic_write_bytes(state_file, json.dumps(new_state, sort_keys=True).encode())
    copied = _sync(work / "build", out, work / "site-files.json")
    return SiteResult(rendered, copied)


def _remove_stale_pages(docs: Path, build: Path, model_pages: set[str],
                        listing_pages: set[str]) -> None:
    keep = model_pages | listing_pages
    for md in sorted(docs.rglob("*.md")):
        rel = md.relative_to(docs).as_posix()
        if rel not in keep:
            md.unlink()
            (build / rel).with_suffix(".html").unlink(missing_ok=True)


def _mkdocs(work: Path, dirty: bool, epoch: int) -> None:
    cmd = [sys.executable, "-m", "mkdocs", "build", "--quiet", "--strict",
           "--config-file", str(work / "mkdocs.yml")]
    if dirty:
        cmd.append("--dirty")
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "NO_MKDOCS_2_WARNING": "1",
           "DISABLE_MKDOCS_2_WARNING": "true"}
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        raise BuildError(f"site: mkdocs build failed: {lines[-1] if lines else 'no output'}",
                         hint="rerun with MX_DEBUG=1; the Markdown is in " + str(work / "docs"))


def _sync(build: Path, out: Path, manifest: Path) -> int:
    """Copy the built site into `out` (only files that differ) and remove site files a
    previous build wrote that this one did not; the index and artifacts are not touched."""
    try:
        previous = set(json.loads(manifest.read_text()))
    except (FileNotFoundError, ValueError):
        previous = set()
    current: set[str] = set()
    copied = 0
    for src in sorted(build.rglob("*")):
        if not src.is_file():
            continue
        rel = src.relative_to(build).as_posix()
        current.add(rel)
        dest = out / rel
        st = src.stat()
        try:
            ds = dest.stat()
            if ds.st_size == st.st_size and (ds.st_mtime_ns == st.st_mtime_ns
                                             or dest.read_bytes() == src.read_bytes()):
                continue  # unchanged: keep its mtime, so its ETag stays too
        except FileNotFoundError:
            pass
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, dest)
        copied += 1
    for rel in sorted(previous - current):
        (out / rel).unlink(missing_ok=True)
    atomic_write_bytes(manifest, json.dumps(sorted(current)).encode())
    return copied
