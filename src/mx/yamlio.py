"""YAML read with line numbers, and round-trip writes that keep comments and order.

ruamel.yaml's round-trip loader keeps each key's line, so a schema error on
`artifacts[1].sha256` can be reported as `mx.yaml:14: ...`, and a file that is
read then written again stays byte-stable.

Every read is bounded (mx.yaml, registry.yaml and cards come from other people's
repositories): a size cap, strict UTF-8, and caps on nesting and on what anchors and
aliases expand to, checked on the composed node graph before anything is built from it.
"""

from __future__ import annotations

import functools
import io
import itertools
from pathlib import Path
from typing import Any

from mx.errors import ConfigError
from mx.fsutil import atomic_write_bytes
from mx.yamlbounds import MAX_YAML_BYTES, YamlTooBig, bounded_composer


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # never fold long lines on write
    y.Composer = bounded_composer()
    return y


def decode(data: bytes, origin: str, limit: int = MAX_YAML_BYTES) -> str:
    """Bytes of a YAML file as text: at most `limit` bytes, strict UTF-8 (say where not)."""
    _check_size(len(data), origin, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})",
                          hint="save the file as UTF-8", path=origin, line=line) from None


def read_text(path: Path, limit: int = MAX_YAML_BYTES) -> str:
    """A YAML file's text, bounded like `decode`; FileNotFoundError is the caller's to word."""
    with path.open("rb") as f:
        data = f.read(limit + 1)  # never more than the cap, whatever the file's size
    return decode(data, str(path), limit)


def _check_size(size: int, origin: str, limit: int) -> None:
    if size > limit:
        cap = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit:,} bytes"
        raise ConfigError(f"over {cap}, the most mx reads of this file", path=origin,
                          hint="mx.yaml, registry.yaml and card front matter are small "
                          "metadata; keep data in separate files")


def load_text(text: str, origin: str, limit: int = MAX_YAML_BYTES) -> Any:
    """Parse YAML text (round-trip types); raise ConfigError with the line on bad syntax."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    _check_size(len(text), origin, limit)  # in characters here: the text is decoded already
    try:
        return _yaml().load(text)
    except YamlTooBig as exc:
        raise ConfigError(str(exc), hint=exc.hint, path=origin) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed YAML"
        raise ConfigError(
            f"invalid YAML: {problem}", hint="check indentation and quoting around that line",
            path=origin, line=mark.line + 1 if mark is not None else None) from None
    except YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=origin) from None


def load_file(path: Path, limit: int = MAX_YAML_BYTES) -> Any:
    try:
        text = read_text(path, limit)
    except FileNotFoundError:
        raise ConfigError("no such file", path=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a YAML file", path=str(path)) from None
    return load_text(text, str(path), limit)


def string(text: str) -> Any:
    """`text` as a string scalar that YAML 1.1 readers also read as a string.

    ruamel writes YAML 1.2, which quotes what 1.2 would misread ('1.0', 'VAD v6: x') but
    leaves `yes`, `on` or `1:20` plain; PyYAML and the Hugging Face Hub (YAML 1.1) read
    those as a bool or an int. Quoting them costs nothing either way."""
    from ruamel.yaml.nodes import ScalarNode
    from ruamel.yaml.scalarstring import SingleQuotedScalarString

    if str(_yaml11().resolve(ScalarNode, text, (True, False))) != "tag:yaml.org,2002:str":
        return SingleQuotedScalarString(text)
    return text


@functools.cache
def _yaml11() -> Any:
    from ruamel.yaml.resolver import VersionedResolver

    return VersionedResolver(version=(1, 1))


def dump_text(doc: Any, like: str | None = None) -> str:
    """Serialise a round-trip document, keeping the indentation `like` used."""
    y = _yaml()
    if like is not None:
        from ruamel.yaml.util import load_yaml_guess_indent

        _, seq_indent, offset = load_yaml_guess_indent(like)
        y.indent(mapping=_mapping_indent(like), sequence=seq_indent or 2, offset=offset or 0)
    buf = io.StringIO()
    y.dump(doc, buf)
    return buf.getvalue()


def _mapping_indent(text: str) -> int:
    """Indent of the first nested mapping (ruamel guesses only the sequence indent)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for cur, nxt in itertools.pairwise(lines):
        if cur.rstrip().endswith(":") and not nxt.lstrip().startswith("-"):
            step = (len(nxt) - len(nxt.lstrip())) - (len(cur) - len(cur.lstrip()))
            if step > 0:
                return step
    return 2


def write_file(path: Path, doc: Any, like: str | None = None) -> None:
    atomic_write_bytes(path, dump_text(doc, like).encode("utf-8"))


def to_plain(node: Any) -> Any:
    """Round-trip containers to plain dicts and lists (for pydantic)."""
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if hasattr(node, "isoformat"):
        return node.isoformat()
    # ruamel scalar subclasses (ScalarFloat, quoted strings) -> builtins
    for t in (bool, int, float, str):
        if isinstance(node, t):
            return t(node)
    return node


def line_of(doc: Any, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest node on `loc` that the document knows."""
    node, line = doc, None
    for key in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(node, dict) and key in node:
                if lc is not None:
                    line = lc.key(key)[0] + 1
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
                if lc is not None:
                    line = lc.item(key)[0] + 1
                node = node[key]
            else:
                break
        except (KeyError, IndexError, TypeError):
            break
    if line is None and getattr(doc, "lc", None) is not None:
        line = doc.lc.line + 1
    return line
