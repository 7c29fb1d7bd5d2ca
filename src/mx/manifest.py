"""The `mx.yaml` manifest (schema `mx: 1`): pydantic models, loading and JSON Schema.

Loading keeps the ruamel round-trip document beside the validated model, so
`mx validate --write` can fill in hashes and write the file back with its
comments, key order and unknown keys intact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from mx import yamlio
from mx.errors import ConfigError
from mx.fsutil import unsafe_relpath_reason
from mx.names import MANIFEST_FILE, check_model_name
from mx.semver import InvalidVersion, Version
from mx.tensorspec import Dim, DType, Signature, TensorSpec, _Open

__all__ = ["DType", "Dim", "LoadedManifest", "Manifest", "Signature", "TensorSpec"]

SCHEMA_MAJOR = 1
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# SPDX short identifiers and simple expressions, case-insensitive as the Hub writes them.
LICENSE_RE = re.compile(r"^[A-Za-z0-9.+-]+(?: (?:AND|OR|WITH) [A-Za-z0-9.+-]+)*$")


class Framework(StrEnum):
    pytorch = "pytorch"
    tensorflow = "tensorflow"
    jax = "jax"
    sklearn = "sklearn"
    onnx = "onnx"
    other = "other"


class ArtifactFormat(StrEnum):
    onnx = "onnx"
    ort = "ort"
    torchscript = "torchscript"
    savedmodel = "savedmodel"
    tflite = "tflite"
    safetensors = "safetensors"
    gguf = "gguf"
    other = "other"


# Formats whose one variant may span several files: safetensors shards, GGUF splits, and the
# configuration and tokenizer files beside the weights (`other`).
MULTI_FILE_FORMATS = frozenset({ArtifactFormat.safetensors, ArtifactFormat.gguf,
                                ArtifactFormat.other})


class Source(_Open):
    framework: Framework
    framework_version: str | None = None
    export: str | None = None
    entry: str | None = None  # what `mx convert` converted: module:function or a file
    converter: str | None = None  # the exporter and its version, written by `mx convert`

    @field_validator("framework_version", mode="before")
    @classmethod
    def _as_text(cls, v: Any) -> Any:
        # `framework_version: 2.13` is a YAML float; keep what the author meant.
        return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


class MeasuredOn(_Open):
    """Where a quality figure was measured: int8 arithmetic differs between CPUs."""

    cpu: str | None = None
    features: list[str] = Field(default_factory=list)  # avx2, avx512_vnni, ... (/proc/cpuinfo)
    int8: str | None = None  # vnni | avx2 | other: how u8 x s8 products accumulate
    onnxruntime: str | None = None


class Quality(_Open):
    metric: str
    value: float
    against: str | None = None
    samples: int | None = Field(default=None, ge=0)
    measured_on: MeasuredOn | None = None


class Artifact(_Open):
    path: str = Field(min_length=1)
    format: ArtifactFormat
    variant: str = Field(default="fp32", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    sha256: str | None = None
    size: int | None = Field(default=None, ge=0)
    opset: int | None = Field(default=None, ge=1)
    derived_from: str | None = None
    transform: dict[str, Any] | None = None
    quality: Quality | None = None

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not SHA256_RE.match(v):
            raise ValueError(f"{v!r} is not a lower-case hex sha256 (64 characters)")
        return v

    @field_validator("variant")
    @classmethod
    def _not_a_record(cls, v: str) -> str:
        if v.endswith(".record.json"):
            raise ValueError(f"variant {v!r} ends in '.record.json', which names the record "
                             "file of another variant in the cache")
        return v

    @field_validator("path")
    @classmethod
    def _safe(cls, v: str) -> str:

        reason = unsafe_relpath_reason(v)
        if reason:
            raise ValueError(f"path {v!r} {reason}; artifact paths are relative, inside the model")
        return v


class Manifest(_Open):
    mx: int
    name: str
    version: str
    summary: str = Field(min_length=1, max_length=200)
    license: str
    task: str | None = None
    tags: list[str] = Field(default_factory=list)
    card: str = "README.md"
    source: Source | None = None
    signature: Signature | None = None
    artifacts: list[Artifact] = Field(min_length=1)
    runtime: dict[str, str] = Field(default_factory=dict)
    benchmarks: str | None = None
    input_profile: str | None = None  # reference bins of the inputs, for drift (mx profile)

    @field_validator("mx")
    @classmethod
    def _major(cls, v: int) -> int:
        if v > SCHEMA_MAJOR:
            raise ValueError(
                f"manifest schema mx: {v} is newer than this mx understands "
                f"(mx: {SCHEMA_MAJOR}); upgrade mx"
            )
        if v < 1:
            raise ValueError(f"mx: {v} is not a manifest schema version (use mx: 1)")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_model_name(v)

    @field_validator("version", mode="before")
    @classmethod
    def _version_number(cls, v: Any) -> Any:
        if isinstance(v, int | float) and not isinstance(v, bool):
            raise ValueError(f"{v} is a YAML number, not a SemVer version; write MAJOR.MINOR.PATCH "
                             "(e.g. 1.4.0), quoted if need be")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        try:
            Version.parse(v)
        except InvalidVersion as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("summary")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if "\n" in v.strip():
            raise ValueError("summary must be one line")
        return v

    @field_validator("license")
    @classmethod
    def _license(cls, v: str) -> str:
        if not LICENSE_RE.match(v):
            raise ValueError(f"{v!r} is not an SPDX license identifier (e.g. apache-2.0, mit)")
        return v

    @field_validator("input_profile")
    @classmethod
    def _inside(cls, v: str | None) -> str | None:

        reason = unsafe_relpath_reason(v) if v is not None else None
        if reason:
            raise ValueError(f"{v!r} {reason}; the input profile is a path inside the model")
        return v

    @model_validator(mode="after")
    def _unique_variants(self) -> Manifest:
        seen: dict[tuple[str, str], str] = {}
        paths: set[str] = set()
        for a in self.artifacts:
            key = (str(a.format), a.variant)
            if key in seen and a.format not in MULTI_FILE_FORMATS:
                raise ValueError(
                    f"artifacts {seen[key]!r} and {a.path!r} are both format {key[0]}, "
                    f"variant {key[1]}; (format, variant) must be unique (several files "
                    "may share one only as safetensors, gguf or other)"
                )
            seen[key] = a.path
            if a.path in paths:
                raise ValueError(f"artifact path {a.path!r} is listed twice")
            paths.add(a.path)
        return self

    @property
    def semver(self) -> Version:
        return Version.parse(self.version)

    @property
    def namespace(self) -> str:
        return self.name.split("/", 1)[0]


@dataclass
class LoadedManifest:
    """A validated manifest with its source text and round-trip document."""

    manifest: Manifest
    path: Path
    text: str
    doc: Any
    warnings: list[ConfigError] = field(default_factory=list)

    def write(self) -> None:
        yamlio.write_file(self.path, self.doc, like=self.text)


def _unknown_keys(
    doc: Any, model: type[BaseModel], loc: tuple[int | str, ...]
) -> list[tuple[int | str, ...]]:
    out: list[tuple[int | str, ...]] = []
    if not isinstance(doc, dict):
        return out
    for key, value in doc.items():
        fld = model.model_fields.get(str(key))
        if fld is None:
            out.append((*loc, str(key)))
            continue
        sub = _submodel(fld.annotation)
        if sub is None:
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                out.extend(_unknown_keys(item, sub, (*loc, str(key), i)))
        else:
            out.extend(_unknown_keys(value, sub, (*loc, str(key))))
    return out


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _loc_text(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_manifest(text: str, origin: str) -> tuple[Manifest, Any, list[ConfigError]]:
    """Validate manifest text; raise ConfigError naming the field and line."""
    doc = yamlio.load_text(text, origin)
    if not isinstance(doc, dict):
        raise ConfigError("a manifest is a YAML mapping (mx: 1, name: ..., ...)",
                          path=origin, line=1)
    try:
        manifest = Manifest.model_validate(yamlio.to_plain(doc))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        field_name = _loc_text(loc) or "(top level)"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{field_name}: {msg}{more}",
                          hint="see `mx schema manifest` for the manifest format",
                          path=origin, line=yamlio.line_of(doc, loc) or None) from None
    # Warnings are errors not raised: the same fields, kept for the caller to report.
    warnings = [ConfigError(f"unknown key {_loc_text(loc)!r} (kept as is)", path=origin,
                            line=yamlio.line_of(doc, loc) or None)
                for loc in _unknown_keys(doc, Manifest, ())]
    return manifest, doc, warnings


def load_manifest(model_dir: Path) -> LoadedManifest:
    """`model_dir/mx.yaml`, validated. Raises ConfigError (with `path` and `line`) for a
    missing, unreadable, oversized or invalid manifest."""
    path = model_dir / MANIFEST_FILE
    try:
        text = yamlio.read_text(path)
    except FileNotFoundError:
        raise ConfigError("no manifest here", hint="create one with `mx init --name ns/name`",
                          path=str(path)) from None
    manifest, doc, warnings = parse_manifest(text, str(path))
    return LoadedManifest(manifest, path, text, doc, warnings)


def json_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://mx.dev/schemas/manifest-1.json"
    schema["title"] = "mx.yaml (mx: 1)"
    return schema
