"""Orchestrate a build: collect releases, check objects, write documents deterministically.

Everything that can refuse the build runs before the first byte is written, so a
refused build leaves the output directory as it was.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx import gitrepo
from mx.errors import BuildError
from mx.extras import require
from mx.fsutil import write_if_changed
from mx.http import Transport
from mx.index_builder.collect import Collected, ManifestCache, Release, collect_source
from mx.index_builder.keys import KeyRing
from mx.index_builder.mirror import ObjectLocator
from mx.index_builder.registry import Registry, load_registry
from mx.index_builder.releasecheck import ReleaseChecks
from mx.index_builder.signatures import SignatureChecker
from mx.index_builder.sources import open_source
from mx.index_builder.trustmeta import write_metadata
from mx.index_builder.workspace import reclaim_output, temp_dir
from mx.indexdoc import ModelDocument, SearchListing, parse
from mx.semver import Version
from mx.site.build import build_site
from mx.site.pages import keywords

INDEX_FORMAT = "1.0"


@dataclass
class BuildResult:
    out: Path
    models: int = 0
    versions: int = 0
    artifacts_written: int = 0
    documents_written: int = 0
    pages_rendered: int = 0
    site_files_written: int = 0
    metadata_written: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out), "models": self.models, "versions": self.versions,
                "artifacts_written": self.artifacts_written,
                "documents_written": self.documents_written,
                "pages_rendered": self.pages_rendered,
                "site_files_written": self.site_files_written,
                "metadata_written": self.metadata_written, "warnings": self.warnings}


def dumps(obj: Any) -> bytes:
    """The one serialisation of index documents: sorted keys, so bytes are reproducible."""
    return (json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            + "\n").encode("utf-8")


def build_index(registry_file: Path, out: Path, cache_dir: Path, strict: bool = False,
                transport: Transport | None = None, allow_unsigned: bool = False,
                trust_config: Path | None = None, site: bool = True,
                keys: KeyRing | None = None) -> BuildResult:
    """Build the index (signed with TUF metadata when `keys` is given) and its site."""
    if site:  # before anything is read or written: a refused build changes nothing
        require("site", "the registry website",
                hint="pip install 'mx[site]', or build the index alone with --no-site")
    registry = load_registry(registry_file)
    registry_dir = registry_file.resolve().parent
    transport = transport or Transport()
    collected = Collected()
    manifests = ManifestCache(cache_dir / "manifests.json")
    checks = ReleaseChecks(cache_dir / "release-checks.json", registry.card)
    for spec in registry.sources:
        source = open_source(spec, registry_dir, cache_dir)
        collect_source(source, collected, strict, manifests, checks)
    _check_curation(registry, collected)
    releases = [r for versions in collected.releases.values() for r in versions.values()]
    checker = SignatureChecker(registry, registry_dir, allow_unsigned, trust_config)
    for release in releases:
        release.signature = checker.check(release)
    locator = ObjectLocator(transport, cache_dir / "lfs-verified.json")
    need = locator.locate(releases, out, registry.mirror_artifacts)

    docs, pages, search = _documents(out, registry, registry_dir, collected)

    # Nothing was refused: from here on, write.
    result = BuildResult(out, warnings=collected.warnings, models=len(pages),
                         versions=sum(len(doc["versions"]) for doc, _, _ in pages.values()))
    tmp = temp_dir(out, cache_dir)
    try:
        reclaim_output(out)
        # Publish in dependency order, so that a build killed at any point leaves no
        # document naming a file that is not there yet: artifacts, then cards, manifests
        # and signatures, then model documents, then the listing and config, then the TUF
        # metadata (which names them all).
        # Plain-git artifacts have no URL but the mirror: they are written even when
        # mirror_artifacts is off (LFS objects are then fetched from their LFS server).
        result.artifacts_written = locator.mirror(
            releases, need if registry.mirror_artifacts else {}, out, tmp)
        locator.save()
        manifests.save()
        checks.save()
        for path, data in sorted(docs.items(), key=lambda item: _publish_order(out, item[0])):
            result.documents_written += write_if_changed(path, data, tmp_dir=tmp)
        _remove_stale(out, set(docs))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if keys is not None:
        signers = {ns: [s.to_json() for s in checker.signers(ns)]
                   for ns in sorted({n.split("/")[0] for n in collected.releases})}
        result.metadata_written = write_metadata(out, keys, signers).written
    if site:

        commit_time = gitrepo.head_commit_time(registry_dir)
        built = build_site(out, cache_dir / "site", registry.name, registry.base_url, pages,
                           search, commit_time)
        result.pages_rendered, result.site_files_written = (built.pages_rendered,
                                                            built.files_copied)
    return result


Pages = dict[str, tuple[dict[str, Any], str, bytes]]  # name -> (document, shown version, card)


def _documents(out: Path, registry: Registry, registry_dir: Path,
               collected: Collected) -> tuple[dict[Path, bytes], Pages, list[dict[str, Any]]]:
    """Every index document, card, manifest and signature file, by output path."""
    docs: dict[Path, bytes] = {}
    search: list[dict[str, Any]] = []
    pages: Pages = {}
    for name in sorted(collected.releases):
        doc, card_files = model_document(name, collected.releases[name], registry)
        ns, short = name.split("/")
        # What clients will refuse is never written: the one typed model decides for both.
        parse(ModelDocument, doc, f"index/models/{ns}/{short}.json")
        docs[out / "index" / "models" / ns / f"{short}.json"] = dumps(doc)
        docs.update({out / p: data for p, data in card_files.items()})
        shown = latest_version(doc) or max(doc["versions"], key=Version.parse)
        card = collected.releases[name][shown].card_text
        search.append(_search_entry(doc, shown, card))
        pages[name] = (doc, shown, card)
    _trim_keywords(search)
    listing = {"mx_index": INDEX_FORMAT, "models": search}
    parse(SearchListing, listing, "index/search.json")
    docs[out / "index" / "search.json"] = dumps(listing)
    docs[out / "index" / "config.json"] = dumps({
        "mx_index": INDEX_FORMAT, "name": registry.name, "base_url": registry.base_url,
        "generated_from": gitrepo.head_commit(registry_dir)})
    return docs, pages, search


def _publish_order(out: Path, path: Path) -> tuple[int, Path]:
    """Files a document names before the document: cards, manifests and signatures, then
    model documents, then search.json and config.json, which name the models."""
    rel = path.relative_to(out).as_posix()
    if not rel.startswith("index/"):
        return 0, path
    if rel.startswith("index/models/"):
        return 1, path
    return (2 if rel == "index/search.json" else 3), path


def _check_curation(registry: Registry, collected: Collected) -> None:
    for name, channels in sorted(registry.channels.items()):
        for channel, version in sorted(channels.items()):
            if str(version) not in collected.releases.get(name, {}):
                raise BuildError(f"registry.yaml: channels.{name}.{channel}: {version} is not a "
                                 f"released version of {name}",
                                 hint="promote a version that has a release tag")
    for name, yanks in sorted(registry.yanked.items()):
        for version in sorted(yanks):
            if str(version) not in collected.releases.get(name, {}):
                collected.warnings.append(f"registry.yaml: yanked.{name}: {version} is not a "
                                          "released version (ignored)")


def model_document(name: str, releases: dict[str, Release],
                   registry: Registry) -> tuple[dict[str, Any], dict[Path, bytes]]:
    yanked = registry.yanked.get(name, {})
    versions: dict[str, Any] = {}
    cards: dict[Path, bytes] = {}
    ns, short = name.split("/")
    source = next(iter(releases.values())).source
    for key in sorted(releases, key=Version.parse):
        rel = releases[key]
        card_rel = Path("cards") / ns / short / f"{key}.md"
        cards[card_rel] = rel.card_text
        manifest_rel = Path("manifests") / ns / short / f"{key}.yaml"
        cards[manifest_rel] = rel.manifest_bytes
        record: dict[str, Any] = {
            "tag": rel.tag.tag,
            "commit": rel.tag.commit,
            "created": rel.tag.created,
            "yanked": key in yanked,
            "manifest": rel.manifest.model_dump(mode="json", exclude_none=True),
            "card": {"url": card_rel.as_posix(),
                     "sha256": hashlib.sha256(rel.card_text).hexdigest(),
                     "size": len(rel.card_text)},
            "artifacts": [_artifact_record(a.path, a.format, a.variant, a.size, a.sha256,
                                           a.lfs_endpoint, registry.mirror_artifacts or
                                           a.blob is not None, registry.artifacts_url or "")
                          for a in rel.artifacts],
            "manifest_file": {"url": manifest_rel.as_posix(),
                              "sha256": hashlib.sha256(rel.manifest_bytes).hexdigest(),
                              "size": len(rel.manifest_bytes)},
            "signature": None,
        }
        if rel.signature is not None:
            sig_rel = Path("signatures") / ns / short / f"{key}.sigstore.json"
            cards[sig_rel] = rel.signature.data
            record["signature"] = {"url": sig_rel.as_posix(), "sha256": rel.signature.sha256,
                                   "size": len(rel.signature.data),
                                   "signer": rel.signature.signer}
        if key in yanked:
            record["yanked_reason"] = yanked[key]
        if rel.benchmarks is not None:
            record["benchmarks"] = rel.benchmarks
        versions[key] = record
    doc = {
        "mx_index": INDEX_FORMAT,
        "name": name,
        "repo": {"url": source.url, "web": source.spec.web},
        "channels": dict(sorted(registry.channels.get(name, {}).items())),
        "versions": versions,
    }
    return doc, cards


def _artifact_record(path: str, fmt: str, variant: str, size: int, sha256: str,
                     endpoint: str | None, mirrored: bool,
                     artifacts_url: str = "") -> dict[str, Any]:
    urls = []
    if mirrored:
        urls.append(f"{artifacts_url}artifacts/sha256/{sha256}")
    if endpoint is not None:
        urls.append(f"lfs+{endpoint}#{sha256}")
    return {"path": path, "format": fmt, "variant": variant, "size": size, "sha256": sha256,
            "urls": urls}


def latest_version(doc: dict[str, Any]) -> str | None:
    """Highest release that is not yanked and not a pre-release (else highest not yanked)."""
    candidates = [Version.parse(v) for v, r in doc["versions"].items() if not r.get("yanked")]
    stable = [v for v in candidates if not v.is_prerelease]
    pick = max(stable or candidates, default=None)
    return str(pick) if pick else None


def _search_entry(doc: dict[str, Any], latest: str, card: bytes) -> dict[str, Any]:

    m = doc["versions"][latest]["manifest"]
    return {"name": doc["name"], "latest": latest, "summary": m.get("summary", ""),
            "task": m.get("task"), "tags": m.get("tags", []), "keywords": keywords(card)}


KEYWORDS_PER_MODEL = 80


def _trim_keywords(entries: list[dict[str, Any]]) -> None:
    """Keep the card words that tell models apart, as one space-separated string.

    Words in more than a fifth of the cards find everything; the rarest words are what
    people type to find one model. At most KEYWORDS_PER_MODEL words a model keeps the
    listing under 5 MB at 5,000 models."""
    counts: dict[str, int] = {}
    for e in entries:
        for w in e["keywords"]:
            counts[w] = counts.get(w, 0) + 1
    limit = len(entries) // 5 if len(entries) >= 50 else len(entries)
    for e in entries:
        kept = sorted((w for w in e["keywords"] if counts[w] <= limit),
                      key=lambda w: counts[w])[:KEYWORDS_PER_MODEL]
        e["keywords"] = " ".join(sorted(kept))


def _remove_stale(out: Path, keep: set[Path]) -> None:
    """Drop documents and cards of models that left the registry (mirrored blobs stay)."""
    for sub in (out / "index" / "models", out / "cards", out / "manifests",
                out / "signatures"):
        if not sub.exists():
            continue
        for path in sorted(sub.rglob("*"), reverse=True):
            if path.is_file() and path not in keep:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                shutil.rmtree(path)

