"""Model names (`<namespace>/<name>`): a light module, imported on the client's hot path."""

from __future__ import annotations

import re

MANIFEST_FILE = "mx.yaml"
# The variant an artifact is when it names none, and the one installed by default.
DEFAULT_VARIANT = "fp32"
_PART = r"[a-z0-9][a-z0-9._-]{0,63}"
NAME_RE = re.compile(rf"^{_PART}/{_PART}$")


def check_model_name(name: str) -> str:
    """Return `name` if it is a valid `<namespace>/<name>`, else raise ValueError."""
    if not NAME_RE.match(name) or ".." in name:
        raise ValueError(
            f"{name!r} is not a model name: use <namespace>/<name>, each part lower-case "
            "letters, digits, '.', '_' or '-', starting with a letter or digit, no '..'"
        )
    return name
