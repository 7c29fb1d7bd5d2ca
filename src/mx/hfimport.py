"""`mx import`: a Hugging Face model folder made into an mx model directory.

The folder (config.json, tokenizer files, model.safetensors or shards with their index, a
README.md card with YAML front matter) gets an `mx.yaml` listing every file with its sha256
and size, a `.gitattributes` routing the weights through Git LFS, and its card kept, with a
heading added for each required section it lacks (facts from config.json and the weights
where the files give them, else the Hub template's placeholder for the author to fill).

Everything is read and checked before anything is written: links that leave the folder, too
many files, a malformed weight header or an existing mx.yaml (without `force`) refuse the
import with nothing written. Into another directory, the files are assembled beside it and
renamed into place.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx import yamlio
from mx.card import parse_card, split_front_matter
from mx.cardrules import DEFAULT_POLICY, normalize_heading
from mx.errors import ConfigError
from mx.fsutil import atomic_write_bytes, resolve_inside, sha256_file, unsafe_relpath_reason
from mx.lfs import DEFAULT_PATTERNS, gitattributes_lfs_patterns
from mx.names import MANIFEST_FILE, check_model_name
from mx.weights import WeightsInfo, describe, kind_of

MAX_FILES = 10_000
MAX_DEPTH = 16
MAX_CONFIG = 1 << 20
CARD = "README.md"
SKIPPED_NAMES = {".git", ".cache", ".gitattributes", MANIFEST_FILE}
PLACEHOLDER = "[More Information Needed]"
LFS_PATTERNS = (*DEFAULT_PATTERNS, "*.gguf")
VARIANTS = {"F16": "fp16", "BF16": "bf16", "F32": "fp32"}


@dataclass(frozen=True)
class ImportOptions:
    name: str | None = None
    version: str = "0.1.0"
    summary: str | None = None
    license: str | None = None
    force: bool = False


@dataclass
class ImportResult:
    dest: Path
    written: list[str] = field(default_factory=list)  # mx.yaml, README.md, .gitattributes
    artifacts: list[tuple[str, str]] = field(default_factory=list)  # (path, format)
    skipped: list[str] = field(default_factory=list)  # files left out, with why
    weights: dict[str, WeightsInfo] = field(default_factory=dict)
    sections_to_write: list[str] = field(default_factory=list)  # placeholders added


def import_folder(src: Path, dest: Path | None, opts: ImportOptions) -> ImportResult:
    """Import `src` into `dest` (None: in place). Raises ConfigError, writing nothing, for
    a folder mx will not import."""
    if not src.is_dir():
        raise ConfigError(f"{src}: not a directory")
    dest = dest or src
    in_place = dest.resolve() == src.resolve()
    if (dest / MANIFEST_FILE).exists() and not opts.force:
        raise ConfigError(f"{dest / MANIFEST_FILE}: already exists; nothing was written",
                          hint="pass --force to replace it")
    if not in_place and dest.exists() and any(dest.iterdir()) and not opts.force:
        raise ConfigError(f"{dest}: exists and is not empty; nothing was written",
                          hint="import into a new directory, or pass --force")
    files = list_files(src)
    weights = {rel: describe(src, rel) for rel in files if kind_of(rel)}
    if not any(k != "index" for k in map(kind_of, weights)):
        raise ConfigError(f"{src}: no *.safetensors or *.gguf weights here",
                          hint="mx import reads safetensors and GGUF models")
    card_text, meta = _card(src)
    config = _config(src)
    result = ImportResult(dest, weights=weights)
    manifest_files = [f for f in files if f != CARD and not f.endswith(".onnx")]
    result.skipped = [f"{f} (ONNX: add it with `mx convert` or by hand, with its "
                      "signature)" for f in files if f.endswith(".onnx")]
    name = _name(opts, meta)
    license_ = _license(opts, meta, src)
    card_out, result.sections_to_write = _complete_card(card_text, meta, config, weights,
                                                        license_)
    variant = _variant(weights)
    result.artifacts = [(f, _format(f)) for f in manifest_files]
    texts = {CARD: card_out, ".gitattributes": _gitattributes(src)}
    if in_place:
        _write_in_place(src, texts, name, license_, opts, meta, config, result, variant)
    else:
        _write_beside(src, dest, files, texts, name, license_, opts, meta, config, result,
                      variant)
    return result


def list_files(src: Path) -> list[str]:
    """Every regular file under `src`, relative, sorted; links must stay inside."""
    out: list[str] = []
    root = src.resolve()
    for dirpath, dirs, names in os.walk(src, followlinks=False):
        here = Path(dirpath)
        depth = len(here.relative_to(src).parts)
        if depth > MAX_DEPTH:
            raise ConfigError(f"{here}: folders nest deeper than {MAX_DEPTH}")
        for d in list(dirs):
            if d in SKIPPED_NAMES or (here / d).is_symlink():
                dirs.remove(d)
                if (here / d).is_symlink():
                    raise ConfigError(f"{here / d}: a link to a folder; mx import copies "
                                      "files, not links", hint="copy the folder with `cp -rL`")
        for n in names:
            rel = (here / n).relative_to(src).as_posix()
            if depth == 0 and n in SKIPPED_NAMES:
                continue
            reason = unsafe_relpath_reason(rel)
            if reason:
                raise ConfigError(f"{here / n}: the name {reason}")
            if resolve_inside(root, rel) is None:
                raise ConfigError(f"{here / n}: a link that leaves {src}; nothing was written",
                                  hint="copy the files in (`cp -L`) or download with "
                                       "huggingface_hub's local_dir")
            if not (here / n).is_file():
                raise ConfigError(f"{here / n}: not a regular file")
            out.append(rel)
            if len(out) > MAX_FILES:
                raise ConfigError(f"{src}: more than {MAX_FILES} files")
    return sorted(out)


def _card(src: Path) -> tuple[str | None, dict[str, Any]]:

    path = src / CARD
    if not path.is_file():
        return None, {}
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    card = parse_card(text, str(path))
    meta = card.meta.model_dump(by_alias=True)
    return text, meta


def _config(src: Path) -> dict[str, Any]:
    path = src / "config.json"
    if not path.is_file():
        return {}
    if path.stat().st_size > MAX_CONFIG:
        raise ConfigError(f"{path}: over {MAX_CONFIG} bytes")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a JSON object")
    return doc


def _name(opts: ImportOptions, meta: dict[str, Any]) -> str:
    candidate = opts.name or meta.get("model_name")
    if not isinstance(candidate, str) or not candidate:
        raise ConfigError("no model name: the card names none as <namespace>/<name>",
                          hint="pass --name ns/name")
    try:
        return check_model_name(candidate)
    except ValueError as exc:
        raise ConfigError(f"--name: {exc}") from None


def _license(opts: ImportOptions, meta: dict[str, Any], src: Path) -> str:
    if opts.license:
        return opts.license
    lic = meta.get("license")
    lic = lic[0] if isinstance(lic, list) and lic else lic
    if lic == "other" and meta.get("license_name"):
        lic = meta["license_name"]
    if not isinstance(lic, str) or not lic:
        raise ConfigError(f"{src / CARD}: no license in the card's front matter",
                          hint="pass --license SPDX-ID (and add it to the card)")
    return lic


def _format(rel: str) -> str:
    kind = kind_of(rel)
    return kind if kind in ("safetensors", "gguf") else "other"


def _variant(weights: dict[str, WeightsInfo]) -> str:
    totals: dict[str, int] = {}
    for info in weights.values():
        if info.shards:
            continue  # an index sums its shards, counted on their own
        for dtype, n in info.dtypes.items():
            totals[dtype] = totals.get(dtype, 0) + n
    top = max(totals, key=lambda d: totals[d]) if totals else "F32"
    return VARIANTS.get(top, top.lower().replace("_", "-"))


def _framework(files: list[str], config: dict[str, Any]) -> str:
    if any(f.endswith(".gguf") for f in files) and not config:
        return "other"
    if any(f.endswith(".h5") for f in files) and not any(f.endswith(".safetensors")
                                                          for f in files):
        return "tensorflow"
    if any(f.endswith(".msgpack") for f in files):
        return "jax"
    return "pytorch"


def _summary(opts: ImportOptions, card_text: str | None, name: str) -> str:
    if opts.summary:
        return opts.summary

    body = split_front_matter(card_text, CARD)[1] if card_text else ""
    for para in _paragraphs(body):
        text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", " ".join(para.split()))
        text = re.sub(r"[*_`]", "", text)
        sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
        return sentence if len(sentence) <= 200 else sentence[:197].rstrip() + "..."
    return f"{name}, imported from a Hugging Face model folder"


def _paragraphs(body: str) -> list[str]:
    """Plain-text paragraphs of a card's body: no headings, code, HTML, lists or tables."""
    out: list[str] = []
    lines: list[str] = []
    fence = False
    for line in [*body.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fence = not fence
            continue
        if fence or stripped.startswith("#"):
            continue
        if stripped:
            lines.append(stripped)
        elif lines:
            if not lines[0].startswith(("<", "|", "-", "*", "!", ">", "[")):
                out.append(" ".join(lines))
            lines = []
    return out


def manifest_doc(name: str, license_: str, opts: ImportOptions, meta: dict[str, Any],
                 config: dict[str, Any], card_text: str | None, files: list[str],
                 digests: dict[str, tuple[str, int]], variant: str) -> Any:
    """The mx.yaml document, as the YAML library writes it."""
    tags = [t for t in meta.get("tags") or [] if isinstance(t, str)][:32]
    doc: dict[str, Any] = {
        "mx": 1, "name": name, "version": yamlio.string(opts.version),
        "summary": yamlio.string(_summary(opts, card_text, name)),
        "license": yamlio.string(license_),
    }
    if isinstance(meta.get("pipeline_tag"), str):
        doc["task"] = yamlio.string(meta["pipeline_tag"])
    doc["tags"] = [yamlio.string(t) for t in tags]
    doc["card"] = CARD
    doc["source"] = {"framework": _framework(files, config)}
    doc["artifacts"] = [{"path": yamlio.string(f), "format": _format(f), "variant": variant,
                         "sha256": digests[f][0], "size": digests[f][1]} for f in files]
    return doc


def _complete_card(text: str | None, meta: dict[str, Any], config: dict[str, Any],
                   weights: dict[str, WeightsInfo], license_: str) -> tuple[str, list[str]]:
    """The card with a heading for each required section it lacks (facts where the files
    give them, the Hub's placeholder where only the author knows)."""

    if text is None:
        text = f"---\n{yamlio.dump_text({'license': yamlio.string(license_)})}---\n"
    card = parse_card(text, CARD)
    present = {normalize_heading(h.title) for h in card.headings if h.has_text}
    facts = {"Model details": _details(config, weights),
             "Training data": _datasets(meta)}
    added, todo = [], []
    for section in DEFAULT_POLICY.required_sections:
        accepted = DEFAULT_POLICY.accepted(section)
        if any(normalize_heading(h) in present for h in accepted):
            continue
        body = facts.get(section) or PLACEHOLDER
        if body == PLACEHOLDER:
            todo.append(section)
        added.append(f"## {section}\n\n{body}\n")
    if not added:
        return text, todo
    note = "<!-- added by mx import: sections mx requires that the card lacked -->\n\n"
    return text.rstrip("\n") + "\n\n" + note + "\n".join(added), todo


def _details(config: dict[str, Any], weights: dict[str, WeightsInfo]) -> str:
    lines = []
    arch = config.get("architectures")
    if isinstance(arch, list) and arch and all(isinstance(a, str) for a in arch):
        lines.append(f"- Architecture: {', '.join(arch[:4])}")
    if isinstance(config.get("model_type"), str):
        lines.append(f"- Model type: {config['model_type']}")
    for rel, info in sorted(weights.items()):
        if kind_of(rel) == "index" or not any(
                rel in (w.shards or []) for w in weights.values()):
            dtypes = ", ".join(sorted(info.dtypes))
            lines.append(f"- Weights: `{rel}`, {info.parameters:,} parameters ({dtypes})")
    return "\n".join(lines)


def _datasets(meta: dict[str, Any]) -> str:
    sets = [d for d in meta.get("datasets") or [] if isinstance(d, str)]
    if not sets:
        return ""
    return "The card's front matter lists these datasets: " + ", ".join(sets[:50]) + "."


def _gitattributes(src: Path) -> str:
    """The folder's .gitattributes (the Hub writes one) with mx's LFS patterns added."""

    path = src / ".gitattributes"
    text = ""
    if path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_CONFIG:
        text = path.read_bytes().decode("utf-8", errors="replace")
        text = text if not text or text.endswith("\n") else text + "\n"
    have = set(gitattributes_lfs_patterns(text))
    return text + "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n"
                          for p in LFS_PATTERNS if p not in have)


def _write_in_place(src: Path, texts: dict[str, str], name: str, license_: str,
                    opts: ImportOptions, meta: dict[str, Any], config: dict[str, Any],
                    result: ImportResult, variant: str) -> None:
    files = [f for f, _ in result.artifacts]
    digests = {f: sha256_file(src / f) for f in files}
    doc = manifest_doc(name, license_, opts, meta, config, texts[CARD], files, digests,
                       variant)
    texts = {**texts, MANIFEST_FILE: yamlio.dump_text(doc)}
    for rel, text in texts.items():
        atomic_write_bytes(src / rel, text.encode("utf-8"))
        result.written.append(rel)


def _write_beside(src: Path, dest: Path, files: list[str], texts: dict[str, str], name: str,
                  license_: str, opts: ImportOptions, meta: dict[str, Any],
                  config: dict[str, Any], result: ImportResult, variant: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.mx-import-", dir=dest.parent))
    try:
        for rel in files:
            if rel == CARD:
                continue
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, stage / rel)
        listed = [f for f, _ in result.artifacts]
        digests = {f: sha256_file(stage / f) for f in listed}
        doc = manifest_doc(name, license_, opts, meta, config, texts[CARD], listed, digests,
                           variant)
        for rel, text in {**texts, MANIFEST_FILE: yamlio.dump_text(doc)}.items():
            (stage / rel).write_text(text, encoding="utf-8")
            result.written.append(rel)
        if dest.exists() and not any(dest.iterdir()):
            dest.rmdir()
        if not dest.exists():
            os.replace(stage, dest)
            return
        for path in sorted(stage.rglob("*")):  # --force over a non-empty directory
            if path.is_file():
                target = dest / path.relative_to(stage)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
