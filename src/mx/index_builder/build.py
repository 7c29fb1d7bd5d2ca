"""Orchestrate a build: collect releases, check objects, write documents deterministically.

Everything that can refuse the build runs before the first byte is written, so a
refused build leaves the output directory as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx import gitrepo
from mx.errors import BuildError
from mx.extras import require
from mx.fsutil import walk_files, write_if_changed
from mx.http import Transport
from mx.index_builder.collect import Collected, ManifestCache, Release, collect_source
from mx.index_builder.keys import KeyRing
from mx.index_builder.memo import (
    BuildMemo,
    ModelOutput,
    SourceOutput,
    curation_digest,
    settings_digest,
    source_fingerprint,
    source_key,
)
from mx.index_builder.mirror import ObjectLocator
from mx.index_builder.registry import Registry, load_registry
from mx.index_builder.releasecheck import ReleaseChecks
from mx.index_builder.signatures import SignatureChecker
from mx.index_builder.sources import locate_source, open_source
from mx.index_builder.trustmeta import write_metadata
from mx.index_builder.workspace import reclaim_output, state_path, temp_dir
from mx.indexdoc import ModelDocument, SearchListing, parse
from mx.lifecycle import walk
from mx.semver import Version
from mx.site.build import PageData, PageInput, build_site
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
    registry = load_registry(registry_file, cache_dir / "registry-parsed.json")
    registry_dir = registry_file.resolve().parent
    transport = transport or Transport()
    checker = SignatureChecker(registry, registry_dir, allow_unsigned, trust_config)
    memo = BuildMemo(state_path(out, cache_dir, "memo"),
                     settings_digest(registry, registry_dir, strict, allow_unsigned,
                                     checker.trust_config), out)
    collected = Collected()
    manifests = ManifestCache(cache_dir / "manifests")
    checks = ReleaseChecks(cache_dir / "release-checks.json", registry.card)
    reused: dict[str, ModelOutput] = {}
    fresh: list[tuple[str, SourceOutput, set[str]]] = []  # memo key, its record, its models
    for spec in registry.sources:
        key, path = source_key(spec), locate_source(spec, registry_dir, cache_dir)
        fingerprint = source_fingerprint(path)
        hit = memo.reuse(key, fingerprint, registry, out)
        if hit is not None:
            for name in hit.models:
                _claim(collected, name, spec.repo)
            collected.warnings += hit.warnings
            reused.update(hit.models)
            continue
        before, warned = set(collected.releases), len(collected.warnings)
        collect_source(open_source(spec, path), collected, strict, manifests, checks)
        record = SourceOutput(fingerprint or "", warnings=collected.warnings[warned:])
        fresh.append((key, record, set(collected.releases) - before))
    _check_curation(registry, {**{n: set(v) for n, v in collected.releases.items()},
                               **{n: set(m.versions) for n, m in reused.items()}}, collected)
    releases = [r for versions in collected.releases.values() for r in versions.values()]
    for release in releases:
        release.signature = checker.check(release, manifests.dvc)
    locator = ObjectLocator(transport, cache_dir / "lfs-verified.json")
    need = locator.locate(releases, out, registry.mirror_artifacts)

    docs, outputs, pages = _documents(out, registry, collected)
    for name, model in reused.items():
        pages[name] = PageInput(model.page_key, _page_loader(out, name, model))
    outputs_all = {**reused, **outputs}
    listing = [m.search for _, m in sorted(outputs_all.items())]
    docs.update(_listings(out, registry, registry_dir, listing))
    signed = {rel: (f[0], f[1]) for m in outputs_all.values() for rel, f in m.files.items()}
    for path in (out / "index" / "search.json", out / "index" / "config.json"):
        data = docs[path]
        signed[path.relative_to(out).as_posix()] = (len(data), hashlib.sha256(data).hexdigest())

    # Nothing was refused: from here on, write.
    result = BuildResult(out, warnings=collected.warnings, models=len(outputs_all),
                         versions=sum(len(m.versions) for m in outputs_all.values()))
    tmp = temp_dir(out, cache_dir)
    previous = memo.published_files()
    try:
        if previous is None or memo.interrupted():
            reclaim_output(out)
        memo.begin()
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
        _remove_stale(out, set(signed), previous)
        for model in outputs.values():  # an edit by hand then shows as a changed mtime
            for rel, f in model.files.items():
                f[2] = os.stat(out / rel).st_mtime_ns
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if keys is not None:
        namespaces = sorted({m.namespace for m in outputs_all.values()})
        signers = {ns: [s.to_json() for s in checker.signers(ns)] for ns in namespaces}
        result.metadata_written = write_metadata(out, keys, signers, files=signed).written
    if site:
        commit_time = gitrepo.head_commit_time(registry_dir)
        history = walk(registry_file, registry.history_commits, cache_dir / "lifecycle.json")
        # the site's state is per output, as the memo is: the default cache dir serves
        # every output built on the machine
        built = build_site(out, state_path(out, cache_dir, "site"), registry.name,
                           registry.base_url, pages, listing, commit_time, history,
                           forget=memo.foreign)
        result.pages_rendered, result.site_files_written = (built.pages_rendered,
                                                            built.files_copied)
    for key, record, names in fresh:
        record.models = {n: outputs[n] for n in sorted(names) if n in outputs}
        memo.record(key, record)
    memo.save()
    return result


def _claim(collected: Collected, name: str, label: str) -> None:
    owner = collected.model_source.setdefault(name, label)
    if owner != label:
        raise BuildError(f"model {name} comes from two sources: {owner} and {label}",
                         hint="a model name belongs to one repository; rename one, or "
                              "restrict the monorepo source with `models:`")


def _page_loader(out: Path, name: str, model: ModelOutput) -> Callable[[], PageData]:
    """A reused model's page inputs, read back from what the last build published."""
    def load() -> PageData:
        ns, short = name.split("/")
        doc = json.loads((out / model.document).read_bytes())
        card = (out / "cards" / ns / short / f"{model.shown}.md").read_bytes()
        return doc, model.shown, card
    return load


def _documents(out: Path, registry: Registry, collected: Collected
               ) -> tuple[dict[Path, bytes], dict[str, ModelOutput], dict[str, PageInput]]:
    """The documents, cards, manifests and signature files of the models read this build,
    by output path, and what the memo and the site need to know of each model."""
    docs: dict[Path, bytes] = {}
    outputs: dict[str, ModelOutput] = {}
    pages: dict[str, PageInput] = {}
    base = registry.artifacts_url or ""  # mirrored objects are under artifacts/ all the same
    for name in sorted(collected.releases):
        doc, card_files = model_document(name, collected.releases[name], registry)
        ns, short = name.split("/")
        # What clients will refuse is never written: the one typed model decides for both.
        parse(ModelDocument, doc, f"index/models/{ns}/{short}.json")
        data = dumps(doc)
        files = {f"index/models/{ns}/{short}.json": data,
                 **{p.as_posix(): b for p, b in card_files.items()}}
        docs.update({out / rel: b for rel, b in files.items()})
        shown = latest_version(doc) or max(doc["versions"], key=Version.parse)
        card = collected.releases[name][shown].card_text
        page_key = hashlib.sha256(data + b"\0" + shown.encode() + b"\0" + card).hexdigest()
        pages[name] = PageInput(page_key, _fixed((doc, shown, card)))
        outputs[name] = ModelOutput(
            curation=curation_digest(registry, name), versions=sorted(doc["versions"]),
            namespace=ns,
            files={rel: [len(b), hashlib.sha256(b).hexdigest(), 0] for rel, b in files.items()},
            mirrored={a["sha256"]: a["size"] for v in doc["versions"].values()
                      for a in v["artifacts"]
                      if a["urls"][:1] == [f"{base}artifacts/sha256/{a['sha256']}"]},
            search=_search_entry(doc, shown, card), page_key=page_key, shown=shown)
    return docs, outputs, pages


def _fixed(data: PageData) -> Callable[[], PageData]:
    return lambda: data


def _listings(out: Path, registry: Registry, registry_dir: Path,
              entries: list[dict[str, Any]]) -> dict[Path, bytes]:
    """index/search.json (every model) and index/config.json."""
    listing = {"mx_index": INDEX_FORMAT, "models": entries}
    parse(SearchListing, listing, "index/search.json")
    return {out / "index" / "search.json": dumps(listing),
            out / "index" / "config.json": dumps({
                "mx_index": INDEX_FORMAT, "name": registry.name, "base_url": registry.base_url,
                "generated_from": gitrepo.head_commit(registry_dir)})}


def _publish_order(out: Path, path: Path) -> tuple[int, Path]:
    """Files a document names before the document: cards, manifests and signatures, then
    model documents, then search.json and config.json, which name the models."""
    rel = path.relative_to(out).as_posix()
    if not rel.startswith("index/"):
        return 0, path
    if rel.startswith("index/models/"):
        return 1, path
    return (2 if rel == "index/search.json" else 3), path


def _check_curation(registry: Registry, released: dict[str, set[str]],
                    collected: Collected) -> None:
    for name, channels in sorted(registry.channels.items()):
        for channel, version in sorted(channels.items()):
            if str(version) not in released.get(name, set()):
                raise BuildError(f"registry.yaml: channels.{name}.{channel}: {version} is not a "
                                 f"released version of {name}",
                                 hint="promote a version that has a release tag")
    for name, yanks in sorted(registry.yanked.items()):
        for version in sorted(yanks):
            if str(version) not in released.get(name, set()):
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
                                           a.lfs_endpoint, a.mirrored(registry.mirror_artifacts),
                                           registry.artifacts_url or "", a.remote_url)
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
        if rel.input_profile is not None:
            record["input_profile"] = rel.input_profile
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
                     artifacts_url: str = "", remote_url: str | None = None) -> dict[str, Any]:
    urls = []
    if mirrored:
        urls.append(f"{artifacts_url}artifacts/sha256/{sha256}")
    if remote_url is not None:  # a DVC remote's http(s) or s3 URL
        urls.append(remote_url)
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
            "task": m.get("task"), "tags": m.get("tags", []),
            "keywords": " ".join(keywords(card))}


def _remove_stale(out: Path, keep: set[str], previous: set[str] | None) -> None:
    """Drop documents and cards of models that left the registry (mirrored blobs stay):
    those the last build published and this one does not, or, without a record of the
    last build, every file of the signed folders that this build did not write."""
    if previous is None:
        stale = {rel for top in ("index/models", "cards", "manifests", "signatures")
                 for rel, _ in walk_files(out / top, top)} - keep
    else:
        stale = previous - keep
    folders: set[Path] = set()
    for rel in stale:
        path = out / rel
        path.unlink(missing_ok=True)
        folders.update(p for p in path.parents if p != out and out in p.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty
