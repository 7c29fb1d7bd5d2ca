"""Optional parts of mx and the extras that install them.

`pip install mx` gives the client and the authoring tools; `mx[serve]` adds the inference
server, `mx[site]` the registry website and `mx[s3]` S3-compatible object storage
(`s3://` artifact URLs, `mx index build -o s3://...`), `mx[ray]` Ray Data for `mx run
--engine ray`. A command that needs a missing extra says
which one, instead of failing on an import deep inside."""

from __future__ import annotations

import importlib.util

from mx.errors import MxError

EXTRAS = {
    "serve": ("uvicorn", "prometheus_client", "grpc"),
    "site": ("mkdocs", "material", "cmarkgfm", "nh3", "yaml"),
    "s3": ("obstore",),
    "ray": ("ray", "pyarrow"),
}


def require(extra: str, what: str, hint: str | None = None) -> None:
    """Raise MxError naming `extra` when any of its modules is missing."""
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise MxError(f"{what} needs the '{extra}' extra ({', '.join(missing)} not installed)",
                      hint=hint or f"pip install 'mx[{extra}]'")
