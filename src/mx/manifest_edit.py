"""Change mx.yaml and the files it lists together, or not at all.

`mx convert` and `mx optimize` add artifacts: they write each new file to a temp path in
the model directory, build the new manifest text on the ruamel round-trip document
(comments, order and unknown keys kept), validate it, and only then move the files into
place and write the manifest. If anything fails, files already moved are put back, so a
failed step leaves the repository as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mx import yamlio
from mx.fsutil import atomic_write_bytes, sha256_file
from mx.manifest import LoadedManifest, Manifest, parse_manifest
from mx.names import DEFAULT_VARIANT


def _flow(value: dict[str, Any]) -> Any:
    from ruamel.yaml.comments import CommentedMap

    m = CommentedMap(value)
    m.fa.set_flow_style()
    return m


def _block(value: dict[str, Any]) -> Any:
    from ruamel.yaml.comments import CommentedMap

    return CommentedMap(value)


@dataclass
class Staged:
    final: Path
    temp: Path


@dataclass
class ManifestChange:
    loaded: LoadedManifest
    staged: list[Staged] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def doc(self) -> Any:
        return self.loaded.doc

    def add_file(self, temp: Path, rel: str) -> None:
        self.staged.append(Staged(self.loaded.path.parent / rel, temp))

    def upsert_artifact(self, entry: dict[str, Any], temp: Path | None = None) -> None:
        """Add an artifact (replacing one with the same path, or the same format and variant).

        sha256 and size are taken from the staged file, so mx.yaml and the bytes agree.
        """
        rel = str(entry["path"])
        if temp is not None:
            self.add_file(temp, rel)
            digest, size = sha256_file(temp)
            entry = {**entry, "sha256": digest, "size": size}
        for name in ("transform", "quality"):
            if isinstance(entry.get(name), dict):
                entry[name] = _flow(entry[name])
        arts = self.doc["artifacts"]
        key = (entry.get("format"), entry.get("variant", DEFAULT_VARIANT))
        for i, art in enumerate(arts):
            same_key = (art.get("format"), art.get("variant", DEFAULT_VARIANT)) == key
            if art.get("path") == rel or same_key:
                merged = _block({k: v for k, v in art.items() if k not in entry})
                arts[i] = _block({**entry, **merged})
                return
        arts.append(_block(entry))

    def set_signature(self, signature: dict[str, Any]) -> None:
        specs = {kind: [_flow({"name": t["name"], "dtype": t["dtype"],
                               **({"shape": _flow_list(t["shape"])}
                                  if t.get("shape") is not None else {}),
                               **({"type": t["type"]} if t.get("type", "tensor") != "tensor"
                                  else {})})
                         for t in signature[kind]]
                 for kind in ("inputs", "outputs")}
        self._set_after("signature", _block(specs), after=("source", "card", "tags", "task"))

    def set_source(self, values: dict[str, Any]) -> None:
        current = self.doc.get("source")
        merged = dict(current) if isinstance(current, dict) else {}
        merged.update({k: v for k, v in values.items() if v is not None})
        self._set_after("source", _block(merged), after=("card", "tags", "task", "license"))

    def set_value(self, key: str, value: Any) -> None:
        self.doc[key] = value

    def _set_after(self, key: str, value: Any, after: tuple[str, ...]) -> None:
        if key in self.doc:
            self.doc[key] = value
            return
        keys = list(self.doc.keys())
        pos = next((keys.index(k) + 1 for k in after if k in keys), len(keys))
        self.doc.insert(pos, key, value)

    def new_text(self) -> tuple[str, Manifest]:
        text = yamlio.dump_text(self.doc, like=self.loaded.text)
        manifest, _, _ = parse_manifest(text, str(self.loaded.path))
        return text, manifest

    def commit(self) -> Manifest:
        """Validate the new manifest, move the staged files into place, write mx.yaml."""
        text, manifest = self.new_text()  # raises before anything moves
        moved: list[tuple[Staged, Path | None]] = []
        try:
            for st in self.staged:
                st.final.parent.mkdir(parents=True, exist_ok=True)
                backup = None
                if st.final.exists():
                    backup = st.final.with_name(f".{st.final.name}.mx-old")
                    os.replace(st.final, backup)
                os.replace(st.temp, st.final)
                moved.append((st, backup))
            atomic_write_bytes(self.loaded.path, text.encode("utf-8"))
        except BaseException:
            for st, backup in reversed(moved):
                st.final.unlink(missing_ok=True)
                if backup is not None:
                    os.replace(backup, st.final)
            raise
        for _, backup in moved:
            if backup is not None:
                backup.unlink(missing_ok=True)
        return manifest

    def discard(self) -> None:
        for st in self.staged:
            st.temp.unlink(missing_ok=True)


def _flow_list(values: list[Any]) -> Any:
    from ruamel.yaml.comments import CommentedSeq

    s = CommentedSeq(values)
    s.fa.set_flow_style()
    return s


def temp_path(model_dir: Path, rel: str) -> Path:
    """A temp file beside where `rel` will live (same filesystem, so the move is a rename)."""
    final = model_dir / rel
    final.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix: onnxruntime tells an .ort file from an .onnx one by its name.
    return final.with_name(f".mx-{os.getpid()}-tmp.{final.name}")
