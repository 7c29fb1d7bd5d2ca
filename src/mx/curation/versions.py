"""Which versions of a model the registry's sources have released (their release tags)."""

from __future__ import annotations

from pathlib import Path

from mx import gitrepo, yamlio
from mx.index_builder.registry import load_registry
from mx.index_builder.sources import locate_source, open_source
from mx.names import MANIFEST_FILE


def released_versions(registry_file: Path, name: str, cache_dir: Path) -> set[str]:
    registry = load_registry(registry_file)
    found: set[str] = set()
    for spec in registry.sources:
        source = open_source(spec, locate_source(spec, registry_file.parent, cache_dir))
        wanted = set(spec.models) if spec.models is not None else None
        for tag in gitrepo.release_tags(source.repo):
            if wanted is not None and tag.model_dir not in wanted:
                continue
            data = gitrepo.tree_entry_data(source.repo, tag.commit,
                                           gitrepo.join(tag.model_dir, MANIFEST_FILE))
            if data is None:
                continue
            try:
                doc = yamlio.load_text(data.decode("utf-8", "replace"), tag.tag)
            except Exception:  # a broken release manifest is the index builder's to report
                continue
            if isinstance(doc, dict) and doc.get("name") == name:
                found.add(str(tag.version))
    return found
