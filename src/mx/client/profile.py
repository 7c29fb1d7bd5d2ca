"""The input profile a release's index record carries, installed as a file of the release.

The builder embeds the profile in the version record (docs/formats.md); the client writes
it at the path the release's mx.yaml names (`input_profile`, checked as a path by
mx.indexdoc), beside the installed mx.yaml, where `mx serve` finds it. Its bytes are the
record's JSON as `mx profile` writes a profile (sorted keys, indent 1), so a profile
written by `mx profile` is installed byte for byte as it was released.

The index is hostile input like a repository: before the file is written the JSON is
checked with the model `mx serve` reads profiles with (mx.profiledoc: size bound, strict
types, consistent bins). A profile that fails, or whose path is another installed file's,
is left out with a warning: the model installs, and is served without drift.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

PROFILE_FORMAT = "input-profile"  # the `format` of its entry in the variant's record


def profile_file(record: dict[str, Any], taken: Iterable[str]
                 ) -> tuple[dict[str, bytes], list[str]]:
    """({path: bytes}, warnings): the record's input profile as the file to install, not
    yet checked against the typed model (`check`). Empty when the record has none."""
    profile = record.get("input_profile")
    rel = (record.get("manifest") or {}).get("input_profile")
    if profile is None or not isinstance(rel, str):
        return {}, []
    if rel in set(taken):
        return {}, [f"the index's input profile would replace {rel}, another file of the "
                    "release; installed without it (mx serve reports no drift)"]
    try:
        text = json.dumps(profile, indent=1, sort_keys=True, allow_nan=False) + "\n"
    except (ValueError, TypeError, RecursionError):
        text = "null"  # not JSON a profile can be: `check` says so
    return {rel: text.encode()}, []


def check(files: dict[str, bytes], origin: str) -> tuple[dict[str, bytes], list[str]]:
    """The files whose profile the typed model accepts, and a warning for each other."""
    # pydantic costs a fifth of a second to import: only an install that writes a profile
    # pays for it, never one that finds the release installed already.
    from mx.errors import ConfigError
    from mx.profiledoc import parse

    kept, warnings = {}, []
    for rel, data in files.items():
        try:
            parse(data, f"{origin}: input_profile ({rel})")
        except ConfigError as exc:
            warnings.append(f"{exc.message}; installed without it (mx serve reports no "
                            "drift)")
            continue
        kept[rel] = data
    return kept, warnings


def entries(files: dict[str, bytes]) -> list[dict[str, Any]]:
    """Record entries of made files, shaped like the artifacts' (no URL: not fetched)."""
    return [{"path": rel, "format": PROFILE_FORMAT, "variant": None,
             "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "urls": []}
            for rel, data in sorted(files.items())]
