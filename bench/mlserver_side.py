"""MLServer beside mx serve, for bench/serve.py --mlserver: its own virtualenv, a model
folder with a small onnxruntime runtime, and the server started on free loopback ports.

MLServer 1.7.1 pins its own FastAPI, Starlette and pydantic-settings, so it lives in a
virtualenv of its own (`.venv-mlserver` at the repository root, made on first use with
`python -m venv` and pip). Its configuration is the issue's: adaptive batching of up to
32 requests or 2 ms, one parallel inference worker (MLServer's default), and `debug`
off, so that it keeps no access log (its production setting; mx serve logs one JSON line
a request, which stays in mx's figures).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

VERSION = "1.7.1"
# uvloop 0.22 refuses asyncio.get_event_loop() without a running loop, which MLServer
# 1.7.1's inference workers call at start (they die with "no current event loop")
PACKAGES = [f"mlserver=={VERSION}", "uvloop<0.22", "onnxruntime", "numpy"]

# The inference runtime MLServer imports from the model folder (`implementation`): the
# same ONNX file through onnxruntime, NumPy in and out with MLServer's own codecs.
RUNTIME = '''
import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, NumpyRequestCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxModel(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self._settings)
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.output_names = [o.name for o in self.session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {i.name: self.decode(i, default_codec=NumpyCodec) for i in payload.inputs}
        outputs = self.session.run(None, feeds)
        return InferenceResponse(
            model_name=self.name, model_version=self.version,
            outputs=[NumpyCodec.encode_output(n, np.asarray(a))
                     for n, a in zip(self.output_names, outputs)])
'''


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path, log: Path) -> str | None:
    """MLServer installed in `venv` (made when missing); None, or why it could not be."""
    python = venv_python(venv)
    probe = [str(python), "-c", "import mlserver, onnxruntime; print(mlserver.__version__)"]
    if python.exists():
        done = subprocess.run(probe, capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip() == VERSION:
            return None
    print(f"MLServer: installing mlserver=={VERSION} into {venv} (once; about a minute)",
          flush=True)
    steps = {"python -m venv": [sys.executable, "-m", "venv", "--clear", str(venv)],
             "pip install": [str(python), "-m", "pip", "install",
                             "--disable-pip-version-check", "-q", *PACKAGES]}
    with log.open("w") as sink:
        for label, step in steps.items():
            try:
                done = subprocess.run(step, stdout=sink, stderr=subprocess.STDOUT,
                                      timeout=1200)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"{label}: {exc}"
            if done.returncode != 0:
                return f"{label} failed ({done.returncode}): {_last_line(log)}"
    done = subprocess.run(probe, capture_output=True, text=True)
    if done.returncode != 0:
        return f"installed, but it does not import: {done.stderr.strip().splitlines()[-1:]}"
    return None


def _last_line(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines()
             if ln.strip() and not ln.startswith("WARNING: Location")]
    return lines[-1][:200] if lines else "no output"


def model_folder(root: Path, onnx: Path, name: str = "cnn") -> Path:
    """A model repository of one model (`name`) serving `onnx` through OnnxModel."""
    repo = root / "mlserver-models"
    folder = repo / name
    folder.mkdir(parents=True)
    shutil.copy(onnx, folder / "model.onnx")
    (folder / "onnx_runtime.py").write_text(RUNTIME)
    (folder / "model-settings.json").write_text(json.dumps({
        "name": name, "implementation": "onnx_runtime.OnnxModel",
        "parameters": {"uri": "./model.onnx", "version": "1"},
        "max_batch_size": 32, "max_batch_time": 0.002}, indent=2))
    return repo


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class MLServer:
    """`mlserver start` on a model repository, on free loopback ports, until `stop`."""

    def __init__(self, venv: Path, repo: Path, name: str = "cnn", wait: float = 180) -> None:
        http_port, grpc_port, metrics_port = _free_ports(3)
        (repo / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port,
            "metrics_port": metrics_port, "debug": False}, indent=2))
        self.log = repo.parent / "mlserver.log"
        env = {**os.environ, "PYTHONPATH": ""}  # nothing of mx's virtualenv leaks in
        with self.log.open("wb") as sink:
            # its own session: MLServer's inference workers stop with it (see stop)
            self.proc = subprocess.Popen([str(venv / "bin" / "mlserver"), "start", str(repo)],
                                         cwd=repo, env=env, stdout=sink, stderr=sink,
                                         start_new_session=True)
        self.url = f"http://127.0.0.1:{http_port}"
        self.infer_path = f"/v2/models/{name}/infer"
        deadline = time.monotonic() + wait
        while not self._ready(http_port, name):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"MLServer did not become ready:\n{tail}")
            time.sleep(0.2)

    @staticmethod
    def _ready(port: int, name: str) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", f"/v2/models/{name}/ready")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, None)):
            try:
                os.killpg(self.proc.pid, sig)  # the group: MLServer and its workers
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            if sig == signal.SIGTERM:  # stragglers (inference workers) go too
                continue
