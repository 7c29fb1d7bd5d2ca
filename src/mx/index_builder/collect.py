"""Read every release of every source into version records (no artifact bytes read)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mx import dvcfiles, gitrepo, lfs, profiledoc, yamlio
from mx.dvcfiles import DvcPointer
from mx.errors import BuildError, ConfigError, DvcProblem
from mx.fsutil import atomic_write_bytes
from mx.gitrepo import ReleaseTag
from mx.index_builder.dvc import DvcObject, DvcObjects
from mx.index_builder.releasecheck import ReleaseChecks
from mx.index_builder.sources import RegistrySource
from mx.manifest import Manifest, parse_manifest
from mx.names import MANIFEST_FILE

MAX_BENCH_BYTES = 4 << 20


@dataclass
class ArtifactRef:
    """One artifact of one release and where its bytes can come from."""

    path: str
    format: str
    variant: str
    sha256: str
    size: int
    lfs_endpoint: str | None  # None for a plain git blob or a DVC object
    blob: bytes | None = None  # the bytes, when the artifact is a plain git blob (small)
    dvc: DvcObject | None = None  # where the bytes are, when DVC tracks the artifact

    def mirrored(self, mirror: bool) -> bool:
        """Whether the index lists it under artifacts/sha256/: when the registry mirrors,
        and always for what has no other URL (a git blob, a DVC object on this machine)."""
        return (mirror or self.blob is not None
                or (self.dvc is not None and self.dvc.url is None))

    @property
    def remote_url(self) -> str | None:
        """A DVC object's URL on its http(s) or s3 remote, listed after any mirror."""
        return self.dvc.url if self.dvc is not None else None


@dataclass
class Release:
    source: RegistrySource
    tag: ReleaseTag
    manifest: Manifest
    card_text: bytes
    artifacts: list[ArtifactRef]
    benchmarks: Any = None
    manifest_bytes: bytes = b""
    signature: Any = None  # SignatureRecord once checked
    input_profile: dict[str, Any] | None = None  # the profile as validated, for the record

    @property
    def where(self) -> str:
        return f"source {self.source.label}, tag {self.tag.tag}"


@dataclass
class Collected:
    releases: dict[str, dict[str, Release]] = field(default_factory=dict)  # name -> version ->
    warnings: list[str] = field(default_factory=list)
    model_source: dict[str, str] = field(default_factory=dict)  # name -> source label


class Skip(Exception):
    """This release fails validation: skipped with a warning (an error under --strict).

    `problems` are the lines `mx validate` would print, when there are several."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class ManifestCache:
    """Validated manifests by git blob id, kept between builds.

    A blob id names exact bytes, so a manifest parsed once never needs parsing again;
    the round-trip YAML parser is what a rebuild would otherwise spend its time on. The
    cache is 256 files by the id's first two hex digits, each read when first needed and
    written when it gained an entry: a rebuild that reads one new release touches one.

    Beside them (`dvc`): the sha256 of each DVC object by its md5, the other fact about
    exact bytes that a rebuild must not compute again (mx.index_builder.dvc).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.shards: dict[str, dict[str, Any]] = {}
        self.dirty: set[str] = set()
        self.dvc = DvcObjects(folder.parent / "dvc-objects.json")

    def _shard(self, blob_id: str) -> dict[str, Any]:
        key = blob_id[:2].lower()
        if key not in self.shards:
            try:
                loaded = json.loads((self.folder / f"{key}.json").read_bytes())
                self.shards[key] = loaded if isinstance(loaded, dict) else {}
            except (FileNotFoundError, ValueError):
                self.shards[key] = {}
        return self.shards[key]

    def parse(self, blob_id: str, data: bytes, origin: str) -> Manifest:
        shard = self._shard(blob_id)
        raw = shard.get(blob_id)
        if raw is not None:
            try:
                return Manifest.model_validate(raw)
            except ValidationError:
                pass  # written by another mx version: parse again
        try:
            # strict: a release must not publish a name or summary garbled by U+FFFD
            manifest, doc, _ = parse_manifest(yamlio.decode(data, origin), origin)
        except ConfigError as exc:
            raise Skip(str(exc)) from None
        shard[blob_id] = yamlio.to_plain(doc)
        self.dirty.add(blob_id[:2].lower())
        return manifest

    def save(self) -> None:
        for key in sorted(self.dirty):
            atomic_write_bytes(self.folder / f"{key}.json",
                               json.dumps(self.shards[key], sort_keys=True).encode())
        self.dirty.clear()
        self.dvc.save()


def collect_source(source: RegistrySource, out: Collected, strict: bool,
                   manifests: ManifestCache, checks: ReleaseChecks) -> None:
    wanted = set(source.spec.models) if source.spec.models is not None else None
    for tag in gitrepo.release_tags(source.repo):
        if wanted is not None and tag.model_dir not in wanted:
            continue
        where = f"source {source.label}, tag {tag.tag}"
        try:
            release = read_release(source, tag, manifests, checks)
        except Skip as exc:
            if strict:
                detail = "".join(f"; {p}" for p in exc.problems)
                raise BuildError(f"{where}: {exc}{detail}", hint="fix the release, or drop "
                                 "--strict to skip it with a warning") from None
            out.warnings += [f"{where}: {p}" for p in exc.problems]
            out.warnings.append(f"{where}: {exc} (release skipped)")
            continue
        name = release.manifest.name
        owner = out.model_source.setdefault(name, source.label)
        if owner != source.label:
            raise BuildError(f"model {name} comes from two sources: {owner} and {source.label} "
                             f"({tag.tag})", hint="a model name belongs to one repository; "
                             "rename one, or restrict the monorepo source with `models:`")
        versions = out.releases.setdefault(name, {})
        key = str(release.manifest.semver)
        # Build metadata does not make another version (SemVer 11): 1.1.0+rebuild would
        # stand in for 1.1.0 wherever a client asks for 1.1.0, and escape its yank.
        same = next((k for k, r in versions.items()
                     if r.manifest.semver == release.manifest.semver), None)
        if same is not None:
            raise BuildError(f"{where}: {name} {key} is already released by tag "
                             f"{versions[same].tag.tag}"
                             + (f" as {same} (versions that differ only in build metadata "
                                "are one version)" if same != key else ""),
                             hint="release a new version instead of re-tagging one")
        versions[key] = release


def read_release(source: RegistrySource, tag: ReleaseTag, manifests: ManifestCache,
                 checks: ReleaseChecks) -> Release:
    repo, commit = source.repo, tag.commit
    mpath = gitrepo.join(tag.model_dir, MANIFEST_FILE)
    blob_id = gitrepo.blob_id(repo, commit, mpath)
    data = gitrepo.tree_entry_data(repo, commit, mpath)
    if data is None or blob_id is None:
        raise Skip(f"{mpath} does not exist at this tag")
    manifest = manifests.parse(blob_id, data, mpath)
    if manifest.semver != tag.version:
        raise BuildError(
            f"source {source.label}, tag {tag.tag}, {mpath}: version is {manifest.version} but "
            f"the tag says {tag.version}",
            hint="the manifest's version must equal the release tag; retag or fix mx.yaml")
    card_path = gitrepo.join(tag.model_dir, manifest.card)
    card = gitrepo.tree_entry_data(repo, commit, card_path)
    if card is None:
        raise Skip(f"card {card_path} does not exist at this tag")
    card_blob = gitrepo.blob_id(repo, commit, card_path) or hashlib.sha256(card).hexdigest()
    # Every problem `mx validate` would report from these files, not only the first.
    problems = list(checks.card(card_blob, card, card_path, manifest.license))
    endpoint = source.lfs_endpoint(commit, tag.model_dir)
    artifacts = []
    for i, a in enumerate(manifest.artifacts):
        try:
            ref = _artifact(source, tag, a.path, a.format, a.variant, a.sha256, a.size, endpoint,
                            manifests.dvc)
        except Skip as exc:
            problems.append(str(exc))
            continue
        artifacts.append(ref)
        if ref.blob is not None and str(a.format) == "onnx":
            problems += checks.onnx(ref.blob, a, manifest.signature,
                                    f"{mpath}: artifacts[{i}] {a.path}")
    if problems:
        n = len(problems)
        raise Skip(f"fails `mx validate` ({n} problem{'s' if n > 1 else ''})", problems)
    benchmarks = None
    if manifest.benchmarks:
        raw = gitrepo.tree_entry_data(repo, commit, gitrepo.join(tag.model_dir,
                                                                 manifest.benchmarks))
        if raw is not None and len(raw) <= MAX_BENCH_BYTES:
            try:
                benchmarks = json.loads(raw)
            except ValueError:
                raise Skip(f"{manifest.benchmarks} is not valid JSON") from None
    profile = _input_profile(source, tag, manifest) if manifest.input_profile else None
    return Release(source, tag, manifest, card, artifacts, benchmarks, data,
                   input_profile=profile)


def _input_profile(source: RegistrySource, tag: ReleaseTag, manifest: Manifest
                   ) -> dict[str, Any]:
    """The release's input profile as its index record carries it, checked as `mx serve`
    checks one (size, strict model, inputs the signature has): a release whose profile
    `mx serve` would refuse is skipped, not published for every client to refuse."""
    assert manifest.input_profile is not None
    path = gitrepo.join(tag.model_dir, manifest.input_profile)
    raw = gitrepo.tree_entry_data(source.repo, tag.commit, path)
    if raw is None:
        raise Skip(f"input profile {path} does not exist at this tag")
    try:
        profile = profiledoc.parse(raw, path)
        if manifest.signature is not None:
            profiledoc.check_against(profile, {t.name: t for t in manifest.signature.inputs},
                                     path)
    except ConfigError as exc:
        raise Skip(exc.message) from None
    return profile.model_dump(mode="json")


def _artifact(source: RegistrySource, tag: ReleaseTag, rel: str, fmt: str, variant: str,
              sha256: str | None, size: int | None, endpoint: str | None,
              dvc: DvcObjects) -> ArtifactRef:
    path = gitrepo.join(tag.model_dir, rel)
    data = gitrepo.tree_entry_data(source.repo, tag.commit, path)
    if data is None:
        tracked, shown = _dvc_pointer(source, tag, path, dvc)
        return _dvc_artifact(source, tag, rel, path, fmt, variant, sha256, size, tracked, shown,
                             dvc)
    pointer = lfs.parse_pointer(data)
    if pointer is not None:
        digest, actual, blob = pointer.oid, pointer.size, None
    else:
        digest, actual, blob = hashlib.sha256(data).hexdigest(), len(data), data
        endpoint = None
    if sha256 is not None and sha256 != digest:
        raise Skip(f"artifact {path}: mx.yaml says sha256 {sha256} but the "
                   f"{'LFS pointer' if pointer else 'file'} says {digest}")
    if size is not None and size != actual:
        raise Skip(f"artifact {path}: mx.yaml says size {size} but it is {actual} bytes")
    return ArtifactRef(rel, str(fmt), variant, digest, actual, endpoint, blob)


def _dvc_pointer(source: RegistrySource, tag: ReleaseTag, path: str,
                 dvc: DvcObjects) -> tuple[DvcPointer, str]:
    """The DVC pointer of `path`, which git does not hold at the tag, and where it was read:
    `path`.dvc, a tracked folder's listing, else a stage output in dvc.lock."""
    try:
        found = dvc.track(source, tag, path)
    except DvcProblem as exc:
        raise Skip(f"artifact {path}: {exc}") from None
    if found is None:
        raise Skip(f"artifact {path} does not exist at this tag (nor "
                   f"{dvcfiles.pointer_path(path)}, nor a tracked folder holding it, nor a "
                   "stage output in dvc.lock)")
    return found.pointer, found.shown


def _dvc_artifact(source: RegistrySource, tag: ReleaseTag, rel: str, path: str, fmt: str,
                  variant: str, sha256: str | None, size: int | None, pointer: DvcPointer,
                  shown: str, dvc: DvcObjects) -> ArtifactRef:
    """An artifact tracked with DVC (`path`.dvc or dvc.lock at the tag, the file itself
    git-ignored)."""
    if size is not None and pointer.size not in (None, size):  # before any object is read
        raise Skip(f"artifact {path}: mx.yaml says size {size} but {shown} says "
                   f"{pointer.size} bytes")
    try:
        found = dvc.artifact(source, tag, pointer, shown)
    except DvcProblem as exc:
        raise Skip(str(exc)) from None
    if sha256 is not None and sha256 != found.sha256:
        raise Skip(f"artifact {path}: mx.yaml says sha256 {sha256} but its DVC object "
                   f"(md5 {found.pointer.md5}) has sha256 {found.sha256}")
    if size is not None and size != found.size:
        raise Skip(f"artifact {path}: mx.yaml says size {size} but its DVC object "
                   f"(md5 {found.pointer.md5}) is {found.size} bytes")
    return ArtifactRef(rel, str(fmt), variant, found.sha256, found.size, None, dvc=found.obj)
