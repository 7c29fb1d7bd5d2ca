"""Re-sign a built registry's TUF metadata after a test edited its documents, as the
publisher (or a compromised builder holding the keys) would: the layers under the signed
metadata (typed model, release signatures, artifact hashes) then get to speak."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mx.index_builder.keys import KeyRing
from mx.index_builder.trustmeta import load_current, write_metadata


def resign(site: Path) -> None:
    targets = load_current(site / "tuf")["targets"].signed.targets
    signers: dict[str, list[dict[str, Any]]] = {}
    for path, target in targets.items():
        custom = target.custom or {}
        if path.startswith("index/models/") and "mx" in custom:
            signers[path.split("/")[2]] = custom["mx"]["signers"]
    write_metadata(site, KeyRing(Path(os.environ["MX_INDEX_KEYS"])), signers)
