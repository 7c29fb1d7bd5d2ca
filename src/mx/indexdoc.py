"""The index documents as one typed wire format, shared by the builder and every client.

The builder validates what it writes against these models, and clients validate what a
host serves before acting on any of it: every value that becomes part of a filesystem
path (artifact paths, sha256 digests, versions, variants, names) is checked here, so the
cache never builds a path from an unchecked string. Unknown keys are ignored (the format
may grow); a newer major `mx_index` is refused.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from mx.errors import IndexFormatError
from mx.fsutil import MAX_NAME_BYTES, unsafe_relpath_reason
from mx.names import DEFAULT_VARIANT, NAME_RE
from mx.semver import Version

SUPPORTED_MAJOR = 1

# Bounds on what one document may hold: far above any real registry, low enough that a
# hostile document cannot make a client allocate or loop without end.
MAX_VERSIONS = 10_000
MAX_ARTIFACTS = 10_000
MAX_URLS = 16
MAX_URL_LENGTH = 4096
MAX_PATH_LENGTH = 1024
MAX_FILE_SIZE = 1 << 50

VARIANT_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
FORMAT_RE = r"^[a-z0-9][a-z0-9._-]{0,31}$"
CHANNEL_RE = r"^[a-z][a-z0-9._-]{0,63}$"
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
RECORD_SUFFIX = ".record.json"


def _relpath(value: str) -> str:
    if len(value) > MAX_PATH_LENGTH:
        raise ValueError(f"path is longer than {MAX_PATH_LENGTH} characters")
    reason = unsafe_relpath_reason(value)
    if reason is None and any(part in ("", ".") for part in value.split("/")):
        reason = "is not normalised (empty or '.' parts)"
    if reason is not None:
        raise ValueError(f"path {value!r} {reason}")
    return value


def _version(value: str) -> str:
    try:
        Version.parse(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a SemVer version") from None
    if value != value.strip() or value.startswith("v"):
        raise ValueError(f"{value!r} is not a plain SemVer version")
    if len(value) > MAX_NAME_BYTES:  # a version is a folder in the cache
        raise ValueError(f"version is longer than {MAX_NAME_BYTES} characters")
    return value


def _variant(value: str) -> str:
    # `<variant>.record.json` is the record file beside each variant folder.
    if value.endswith(RECORD_SUFFIX):
        raise ValueError(f"variant {value!r} ends in {RECORD_SUFFIX!r}, which names the "
                         "record file of another variant")
    return value


def _model_name(value: str) -> str:
    if not NAME_RE.match(value) or ".." in value:
        raise ValueError(f"{value!r} is not a model name <namespace>/<name>")
    return value


def _url(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("URL contains whitespace or control characters")
    return value


Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
RelPath = Annotated[str, AfterValidator(_relpath)]
VersionStr = Annotated[str, AfterValidator(_version)]
ModelName = Annotated[str, AfterValidator(_model_name)]
Variant = Annotated[str, StringConstraints(pattern=VARIANT_RE), AfterValidator(_variant)]
Format = Annotated[str, StringConstraints(pattern=FORMAT_RE)]
ChannelName = Annotated[str, StringConstraints(pattern=CHANNEL_RE)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH),
                AfterValidator(_url)]
Size = Annotated[int, Field(ge=0, le=MAX_FILE_SIZE, strict=True)]
ShortText = Annotated[str, StringConstraints(max_length=4096)]


class _Doc(BaseModel):
    # strict: a number where a string belongs is a malformed document, not a value to coerce.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


T = TypeVar("T", bound="_Doc")


class FileRef(_Doc):
    """A file the client fetches and checks: a card, a manifest, a signature bundle."""

    url: Url
    sha256: Sha256
    size: Size


class SignerRecord(_Doc):
    """Who signed a release, as the builder found it (information: clients trust the
    signers that signed metadata names, never this record)."""

    public_key: ShortText | None = None
    key_id: ShortText | None = None
    issuer: ShortText | None = None
    identity: ShortText | None = None
    certificate_identity: ShortText | None = None


class SignatureRef(FileRef):
    signer: SignerRecord | None = None


class ArtifactRecord(_Doc):
    path: RelPath
    format: Format
    variant: Variant = DEFAULT_VARIANT
    size: Size
    sha256: Sha256
    urls: list[Url] = Field(max_length=MAX_URLS)


class VersionRecord(_Doc):
    tag: ShortText
    commit: ShortText
    created: ShortText
    yanked: bool = False
    yanked_reason: ShortText | None = None
    manifest: dict[str, Any] = Field(default_factory=dict)
    card: FileRef | None = None
    manifest_file: FileRef | None = None
    signature: SignatureRef | None = None
    artifacts: list[ArtifactRecord] = Field(max_length=MAX_ARTIFACTS)
    benchmarks: Any = None
    # Checked by the client against mx.profiledoc, not here: a profile it cannot read (a
    # newer format) is left out of the install, and the model still installs.
    input_profile: Any = None

    @field_validator("manifest")
    @classmethod
    def _installed_paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        # The card and the input profile are installed under the paths the manifest names:
        # paths like any other.
        for key in ("card", "input_profile"):
            rel = value.get(key)
            if rel is None:
                continue
            if not isinstance(rel, str):
                raise ValueError(f"{key} is not a string")
            try:
                _relpath(rel)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _unique_paths(self) -> VersionRecord:
        seen: set[tuple[str, str]] = set()
        for art in self.artifacts:
            key = (art.variant, art.path)
            if key in seen:
                raise ValueError(f"artifact {art.path!r} is listed twice for variant "
                                 f"{art.variant!r}")
            seen.add(key)
        # A variant folder holds its artifacts, the card, mx.yaml and the input profile: no
        # two may need the same name for a file and a folder, or differ only in case (one
        # file on macOS).
        extra = []
        if self.card is not None:
            extra.append(self.manifest.get("card") or "README.md")
        if self.manifest_file is not None:
            extra.append("mx.yaml")
        profile_path = self.manifest.get("input_profile")
        if self.input_profile is not None and profile_path is not None:
            extra.append(profile_path)
        for variant in sorted({a.variant for a in self.artifacts}):
            problem = _layout_conflict(
                [a.path for a in self.artifacts if a.variant == variant] + extra)
            if problem is not None:
                raise ValueError(f"variant {variant!r}: {problem}")
        return self


def _layout_conflict(paths: list[str]) -> str | None:
    folded: dict[str, str] = {}
    for path in paths:
        other = folded.setdefault(path.casefold(), path)
        if other != path:
            return f"paths {other!r} and {path!r} differ only in case"
    folders = {key.rsplit("/", i)[0] for key in folded for i in range(1, key.count("/") + 1)}
    for key, path in folded.items():
        if key in folders:
            return f"{path!r} is a file and also a folder of other paths"
    return None


class RepoRef(_Doc):
    url: ShortText | None = None
    web: ShortText | None = None


class ModelDocument(_Doc):
    """index/models/<ns>/<name>.json"""

    mx_index: ShortText = "1.0"
    name: ModelName
    repo: RepoRef = Field(default_factory=RepoRef)
    channels: dict[ChannelName, VersionStr] = Field(default_factory=dict)
    versions: dict[VersionStr, VersionRecord] = Field(max_length=MAX_VERSIONS)

    @model_validator(mode="after")
    def _distinct_versions(self) -> ModelDocument:
        # Clients look versions up by precedence, which ignores build metadata: two keys
        # that differ only there would let one stand in for the other (and its yank).
        seen: dict[Version, str] = {}
        for key in self.versions:
            version = Version.parse(key)
            if version in seen:
                raise ValueError(f"versions {seen[version]!r} and {key!r} differ only in "
                                 "build metadata (one version, two releases)")
            seen[version] = key
        return self


class SearchEntry(_Doc):
    name: ModelName
    latest: VersionStr
    summary: ShortText = ""
    task: ShortText | None = None
    tags: list[ShortText] = Field(default_factory=list, max_length=256)
    keywords: Annotated[str, StringConstraints(max_length=65536)] = ""


class SearchListing(_Doc):
    mx_index: ShortText = "1.0"
    models: list[SearchEntry] = Field(max_length=1_000_000)


class IndexConfig(_Doc):
    mx_index: ShortText = "1.0"
    name: ShortText | None = None
    base_url: ShortText | None = None
    generated_from: ShortText | None = None


def check_major(raw: Any, origin: str) -> None:
    """A newer major format is refused before any field is looked at."""
    if not isinstance(raw, dict):
        raise IndexFormatError(f"{origin}: not an index document (expected a JSON object)")
    fmt = raw.get("mx_index", "1.0")
    major = fmt.split(".", 1)[0] if isinstance(fmt, str) else ""
    if not major.isdigit() or len(major) > 6 or int(major) > SUPPORTED_MAJOR:
        shown = fmt[:40] if isinstance(fmt, str) else f"({type(fmt).__name__})"
        raise IndexFormatError(
            f"{origin}: index format mx_index {shown} is newer than this mx understands "
            f"({SUPPORTED_MAJOR}.x)", hint="upgrade mx (pip install -U mx)")


def parse(model: type[T], raw: Any, origin: str) -> T:
    """`raw` (decoded JSON) as `model`, or IndexFormatError naming the field and value."""
    check_major(raw, origin)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise IndexFormatError(f"{origin}: {describe(exc)}",
                               hint="the registry's index is malformed or was tampered "
                                    "with; tell its maintainers") from None


def describe(exc: ValidationError) -> str:
    """The first problem of a validation error as `field.path: message (value)`."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(_clip(str(p), 40) for p in first["loc"]) or "(document)"
    value = _clip(repr(first.get("input")), 80)
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {_clip(first['msg'], 300)} (got {value}){more}"


def _clip(text: str, limit: int) -> str:
    """A hostile document's keys and values are quoted in errors: one line, bounded."""
    return text if len(text) <= limit else text[:limit - 3] + "..."
