"""Import python-tuf without the cloud SDKs its signer package pulls in.

securesystemslib's signer package imports boto3, when it is installed, for its AWS KMS
signer: 0.3-0.5 s at every `mx index build` and at every install that refreshes signed
metadata, for a signer mx never uses (S3 goes through obstore). tuf is imported once with
boto3 hidden, which securesystemslib takes as boto3 missing; boto3 stays importable for
anything else in the process.
"""

from __future__ import annotations

import sys


def import_tuf() -> None:
    if "tuf.api.metadata" in sys.modules:
        return
    hidden = "boto3" not in sys.modules
    if hidden:
        sys.modules["boto3"] = None  # type: ignore[assignment]
    try:
        import tuf.api.metadata  # noqa: F401
    finally:
        if hidden and sys.modules.get("boto3", False) is None:
            del sys.modules["boto3"]
