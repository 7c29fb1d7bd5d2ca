"""Input drift of served models: PSI of recent requests against the release's input profile
(`mx.inputprofile`), as the gauge `mx_input_drift_psi{model,version,input}`.

A model version whose mx.yaml names an `input_profile` (a local model directory, or an
installed release, whose index record carries the profile and `mx install` writes it into
the variant folder) gets one window per profiled input:
bin counts of the requests that ran, the oldest requests dropped once the newer ones hold
`window` rows. Counting is numpy's searchsorted and bincount per request (at most
`inputprofile.VALUES_PER_ROW` values a row); PSI is computed when /metrics is read, NaN
until a request has been counted. A profile that does not validate is refused with a log
line naming the file and field; the model is served all the same, without drift.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Gauge

from mx import inputprofile, profiledoc
from mx.errors import ConfigError, MxError
from mx.infer.model import LoadedModel, is_local_spec
from mx.manifest import load_manifest
from mx.names import MANIFEST_FILE
from mx.serve.batcher import Feeds

log = logging.getLogger("mx.serve")
DEFAULT_WINDOW = 1000  # rows


class Window:
    """Bin counts of one input over the last `size` rows (whole requests: at least `size`
    rows once that many came, and never a request fewer)."""

    def __init__(self, bins: profiledoc.InputBins, size: int) -> None:
        self.bins, self.size = bins, size
        self.edges = [np.asarray(e, np.float64) for e in bins.edges]
        self.reference = [np.asarray(p, np.float64) for p in bins.proportions]
        self.totals = [np.zeros(len(e) + 1, np.int64) for e in self.edges]
        self.parts: deque[tuple[int, list[np.ndarray]]] = deque()
        self.rows = 0
        self.lock = threading.Lock()

    def add(self, arr: np.ndarray) -> None:
        values = inputprofile.samples(arr, self.bins)
        if values is None:  # a shape the profile does not describe
            return
        axis = self.bins.batch_axis
        rows = int(arr.shape[axis]) if axis is not None else 1
        counts = inputprofile.count(values, self.edges)
        with self.lock:
            self.parts.append((rows, counts))
            self.rows += rows
            for t, c in zip(self.totals, counts, strict=True):
                t += c
            while len(self.parts) > 1 and self.rows - self.parts[0][0] >= self.size:
                old_rows, old = self.parts.popleft()
                self.rows -= old_rows
                for t, c in zip(self.totals, old, strict=True):
                    t -= c

    def psi(self) -> float:
        with self.lock:
            totals = [t.copy() for t in self.totals]
        return inputprofile.psi(totals, self.reference)


def profile_path(spec: str, model: LoadedModel) -> Path | None:
    """The input profile mx.yaml names for a served model, if there is one: in the model
    directory (a local spec), or in the installed variant folder, where `mx install` writes
    the profile the release's index record carries."""

    local = is_local_spec(spec)
    root = Path(spec).expanduser() if local else (model.root or model.path.parent)
    if not (root / MANIFEST_FILE).is_file():
        return None
    rel = load_manifest(root).manifest.input_profile
    if rel is None:
        return None
    path = root / rel
    if not path.is_file():
        if local:
            raise ConfigError(f"input_profile names {rel}, which does not exist",
                              hint="write it with `mx profile DIR --data FILE.npz`",
                              path=str(root / MANIFEST_FILE))
        return None  # the index carries none, or one the client refused
    return path


class Drift:
    """Windows of every served model version that has a profile, and their gauge."""

    def __init__(self, registry: CollectorRegistry, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError("a drift window holds at least one row")
        self.window = window
        self.gauge = Gauge("mx_input_drift_psi", "Drift of an input: PSI of the last "
                           "--drift-window rows against the release's input profile",
                           ["model", "version", "input"], registry=registry)
        self.windows: dict[tuple[str, str], dict[str, Window]] = {}

    def attach(self, model: LoadedModel, spec: str) -> None:
        """Start watching `model` when it has a profile (a bad one is logged, not fatal)."""
        key = (model.name, model.version)
        try:
            path = profile_path(spec, model)
            if path is None:
                return
            profile = profiledoc.read(path)
            profiledoc.check_against(profile, {t.name: t for t in model.inputs}, str(path))
        except MxError as exc:
            log.warning(json.dumps({"event": "profile_refused", "model": model.name,
                                    "version": model.version, "error": exc.message}))
            return
        windows = {name: Window(bins, self.window) for name, bins in profile.inputs.items()}
        self.windows[key] = windows
        for name, w in windows.items():
            self.gauge.labels(model.name, model.version, name).set_function(w.psi)
        log.info(json.dumps({"event": "profile_loaded", "model": model.name,
                             "version": model.version, "inputs": sorted(windows),
                             "window_rows": self.window}))

    def observe(self, model: LoadedModel, feeds: Feeds) -> None:
        """Count a request's inputs (after it ran) into its model version's windows."""
        windows = self.windows.get((model.name, model.version))
        if not windows:
            return
        for name, w in windows.items():
            arr = feeds.get(name)
            if arr is not None:
                w.add(arr)
