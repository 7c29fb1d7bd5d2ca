"""Limits on what one YAML document may cost to read.

ruamel.yaml composes an alias as a second reference to the anchored node, so a
"billion laughs" document (each level a list of aliases to the one before) parses
quickly into a small graph; it is everything that walks it afterwards (to_plain,
pydantic, json.dumps) that expands it to 10^9 nodes. The composer below measures the
graph once, memoised per node, and refuses it before anything is built from it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ruamel.yaml.composer import Composer

MAX_YAML_BYTES = 1 << 20  # mx.yaml, registry.yaml, a card's front matter
MAX_DEPTH = 64  # nesting, aliases followed; real files nest under 10, Python recursion ~1000
# Nodes that aliases may add on top of those written out: generous for shared anchors
# (a list of signers reused per namespace), tiny next to a bomb's 10^9.
MAX_ALIAS_NODES = 100_000

_BOMB_HINT = "write the values out instead of nesting anchors and aliases"


class YamlTooBig(Exception):
    """A document over one of the caps; yamlio turns it into a ConfigError naming the file."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def measure(root: Any) -> tuple[int, int]:
    """(nodes when aliases are expanded, distinct nodes) of a composed node graph.

    Raises YamlTooBig when the expanded tree nests deeper than MAX_DEPTH, or an alias
    refers to a node that contains it. Linear in the distinct nodes: each is visited once.
    """
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, expanded depth)
    open_: set[int] = set()

    def visit(node: Any, level: int) -> int:
        key = id(node)
        if key in done:
            size, depth = done[key]
            if level + depth - 1 > MAX_DEPTH:
                raise YamlTooBig(f"nests deeper than {MAX_DEPTH} levels (aliases expanded)",
                                 _BOMB_HINT)
            return size
        if key in open_:
            raise YamlTooBig("an alias refers to a node that contains it", _BOMB_HINT)
        if level > MAX_DEPTH:
            raise YamlTooBig(f"nests deeper than {MAX_DEPTH} levels (aliases expanded)",
                             "flatten the document")
        open_.add(key)
        size, depth = 1, 1
        for child in _children(node):
            size += visit(child, level + 1)
            depth = max(depth, 1 + done[id(child)][1])
        open_.discard(key)
        done[key] = (size, depth)
        return size

    total = visit(root, 1)
    return total, len(done)


def _children(node: Any) -> list[Any]:
    value = node.value
    if not isinstance(value, list):
        return []  # a scalar
    out: list[Any] = []
    for item in value:
        out.extend(item if isinstance(item, tuple) else (item,))  # mapping: (key, value)
    return out


def check(root: Any) -> None:
    expanded, distinct = measure(root)
    if expanded - distinct > MAX_ALIAS_NODES:
        raise YamlTooBig(f"aliases expand it to {expanded:,} nodes (at most "
                         f"{MAX_ALIAS_NODES:,} more than are written out): an alias bomb?",
                         _BOMB_HINT)


@functools.cache
def bounded_composer() -> type[Composer]:
    """ruamel's Composer, with the caps applied to each document it composes."""
    from ruamel.yaml.composer import Composer

    class BoundedComposer(Composer):
        mx_depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            # ruamel composes recursively: stop before Python's recursion limit does
            self.mx_depth += 1
            try:
                if self.mx_depth > MAX_DEPTH:
                    raise YamlTooBig(f"nests deeper than {MAX_DEPTH} levels",
                                     "flatten the document")
                return super().compose_node(parent, index)
            finally:
                self.mx_depth -= 1

        def compose_document(self) -> Any:
            node = super().compose_document()
            if node is not None:
                check(node)
            return node

    return BoundedComposer
