"""`mx validate`'s checks that need only a release's files at its tag, cached by content.

The builder runs them on every release, so it never publishes one that `mx validate`
fails on for these reasons:
- the card: front matter, the registry's required sections, license agreement;
- an ONNX artifact committed as a plain git blob (its bytes are at hand): onnx.checker,
  opset, inputs and outputs against `signature`. Artifacts in LFS are not read: fetching
  them for a check would make every build as slow as the first.

A verdict depends only on the bytes judged (their git blob id or sha256), what they are
judged against (license, rules, signature) and the mx and onnx versions judging; keyed by
all of that, a rebuild parses nothing it has seen. Only the verdicts a build looks up are
kept, so the cache file never outgrows the registry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mx import __version__
from mx.cardrules import CardPolicy
from mx.fsutil import atomic_write_bytes
from mx.iocheck import io_problems
from mx.manifest import Artifact, Signature
from mx.validate.card_check import card_problems


class ReleaseChecks:
    def __init__(self, path: Path, policy: CardPolicy) -> None:
        self.path = path
        self.policy = policy
        self._rules = policy.fingerprint()
        try:
            loaded = json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError):
            loaded = {}
        self.entries: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
        self.used: dict[str, list[str]] = {}

    def _verdict(self, parts: list[Any], judge: Callable[[], list[str]]) -> list[str]:
        key = hashlib.sha256(json.dumps([__version__, *parts], sort_keys=True)
                             .encode()).hexdigest()
        hit = self.entries.get(key)
        if not (isinstance(hit, list) and all(isinstance(p, str) for p in hit)):
            hit = judge()
        self.used[key] = hit
        return hit

    def card(self, blob_id: str, data: bytes, origin: str, license: str) -> list[str]:
        """One line per problem of the card `origin` ("path:line: message"); [] if none."""
        def judge() -> list[str]:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                return [f"{origin}: not UTF-8 text (byte {exc.start})"]
            return [f"{where}:{line}: {msg}" if line else f"{where}: {msg}"
                    for where, line, msg in card_problems(text, origin, license, self.policy)]

        return self._verdict(["card", self._rules, blob_id, license], judge)

    def onnx(self, data: bytes, art: Artifact, signature: Signature | None,
             prefix: str) -> list[str]:
        """Problems of a plain-git ONNX artifact, each line starting with `prefix`."""
        import onnx

        sig = signature.model_dump(mode="json") if signature else None
        parts = ["onnx", onnx.__version__, hashlib.sha256(data).hexdigest(), art.opset, sig]
        return [f"{prefix}: {msg}" for msg in self._verdict(
            parts, lambda: onnx_problems(data, art.opset, signature))]

    def save(self) -> None:
        if self.used != self.entries:
            atomic_write_bytes(self.path, json.dumps(self.used, sort_keys=True,
                                                     ensure_ascii=False).encode("utf-8"))


def onnx_problems(data: bytes, opset: int | None, signature: Signature | None) -> list[str]:
    """What `mx validate` says of an ONNX file, from its bytes (no external data read)."""
    import onnx


    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # onnx raises DecodeError and friends
        return [f"not a readable ONNX model ({type(exc).__name__}: {exc})"]
    external = any(t.data_location == onnx.TensorProto.EXTERNAL
                   for t in onnx.external_data_helper._get_all_tensors(model))
    if not external:  # its data lies in other files: the checker could not read them
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else \
                type(exc).__name__
            return [f"onnx.checker: {first}"]
    out = []
    actual = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and actual is not None and actual != opset:
        out.append(f"opset is {actual} but mx.yaml says {opset}")
    if signature is not None:
        out += io_problems(model, signature.inputs, signature.outputs)
    return out
