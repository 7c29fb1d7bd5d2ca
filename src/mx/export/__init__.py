"""`mx export`: an installed model for other engines: Triton, KServe and edge runtimes.

Exporters are plugins behind the `Exporter` protocol, listed in EXPORTERS.
"""

from __future__ import annotations

from mx.export.base import Exporter, ExportOptions, ExportResult
from mx.export.edge import EdgeExporter
from mx.export.kserve import KServeExporter
from mx.export.triton import TritonExporter

EXPORTERS: dict[str, Exporter] = {
    "triton": TritonExporter(),
    "kserve": KServeExporter(),
    "edge": EdgeExporter(),
}

__all__ = ["EXPORTERS", "ExportOptions", "ExportResult", "Exporter"]
