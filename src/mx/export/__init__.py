"""`mx export`: an installed model for other engines: Triton, KServe, edge runtimes, and a
Docker image running `mx serve`.

Exporters are plugins behind the `Exporter` protocol, listed in EXPORTERS.
"""

from __future__ import annotations

from mx.export.base import Exporter, ExportOptions, ExportResult
from mx.export.docker import DockerExporter
from mx.export.edge import EdgeExporter
from mx.export.kserve import KServeExporter
from mx.export.triton import TritonExporter

EXPORTERS: dict[str, Exporter] = {
    "triton": TritonExporter(),
    "kserve": KServeExporter(),
    "edge": EdgeExporter(),
    "docker": DockerExporter(),
}

__all__ = ["EXPORTERS", "ExportOptions", "ExportResult", "Exporter"]
