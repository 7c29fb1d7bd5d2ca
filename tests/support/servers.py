"""Real servers on 127.0.0.1 for the tests: a static host (with a fault-injection seam)
and giftless, a real Git LFS server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mx.devserver import StaticHandler, StaticServer, base_url, make_server, serve_in_thread


@dataclass
class Faults:
    """What the static host does wrong, per URL path. Counts go down as faults fire."""

    status: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer
    truncate: dict[str, int] = field(default_factory=dict)  # path -> times to drop mid-body
    corrupt: set[str] = field(default_factory=set)  # paths whose bytes get flipped
    redirect: dict[str, str] = field(default_factory=dict)  # path -> Location (302)
    endless: set[str] = field(default_factory=set)  # paths answered with bytes without end
    throttle: dict[str, int] = field(default_factory=dict)  # path -> bytes per second
    overstate: dict[str, int] = field(default_factory=dict)  # path -> Content-Length extra
    # Overstated paths whose connection stays open, silent, after the body (else: closed).
    hold: set[str] = field(default_factory=set)
    ignore_range: set[str] = field(default_factory=set)  # paths always answered in full
    flip: dict[str, int] = field(default_factory=dict)  # path -> file offset of a wrong byte
    misrange: dict[str, int] = field(default_factory=dict)  # path -> shift of Content-Range
    requests: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)  # client ports: one per connection
    authorization: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FaultyHandler(StaticHandler):
    faults: Faults

    def serve(self, head: bool) -> None:
        path = self.path.split("?")[0]
        with self.faults.lock:
            self.faults.requests.append((path, self.headers.get("Range"),
                                         self.headers.get("If-None-Match")))
            self.faults.authorization.append(self.headers.get("Authorization"))
            self.faults.ports.add(self.client_address[1])
            statuses = self.faults.status.get(path)
            status = statuses.pop(0) if statuses else None
            truncate = self.faults.truncate.get(path, 0)
            if truncate:
                self.faults.truncate[path] = truncate - 1
            location = self.faults.redirect.get(path)
            endless = path in self.faults.endless
            if path in self.faults.ignore_range:
                del self.headers["Range"]
        if location is not None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if endless:
            self._send_endless()
            return
        if status is not None:
            self.send_response(status)
            if status in (429, 503):
                self.send_header("Retry-After", "2")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._truncate = bool(truncate)
        with self.faults.lock:
            self._rate = self.faults.throttle.get(path)
            self._extra = self.faults.overstate.get(path, 0)
        super().serve(head)

    def send_header(self, keyword: str, value: str) -> None:
        if keyword == "Content-Length" and getattr(self, "_extra", 0):
            value = str(int(value) + self._extra)  # announce more than will come
        shift = self.faults.misrange.get(self.path.split("?")[0])
        if keyword == "Content-Range" and shift and not value.startswith("bytes */"):
            span, _, total = value[6:].partition("/")
            first, _, last = span.partition("-")
            value = f"bytes {int(first) + shift}-{int(last) + shift}/{total}"  # other bytes
        super().send_header(keyword, value)

    def _send_endless(self) -> None:
        """200 with no length, then zeros until the client hangs up (bounded: 1 GiB)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.close_connection = True
        chunk = b"0" * 65536
        try:
            for _ in range(16384):
                self.wfile.write(chunk)
        except OSError:
            pass  # the client stopped reading, as it should

    def send_body(self, target: Path, start: int, length: int) -> None:
        path = self.path.split("?")[0]
        with target.open("rb") as f:
            f.seek(start)
            data = f.read(length)
        if path in self.faults.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        flip = self.faults.flip.get(path)
        if flip is not None and start <= flip < start + len(data):
            at = flip - start
            data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
        if self._truncate:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self._rate:
            step = max(self._rate // 20, 1)
            try:
                for i in range(0, len(data), step):
                    self.wfile.write(data[i:i + step])
                    time.sleep(step / self._rate)
            except OSError:
                pass  # the client went away (killed, in the resume tests)
            return
        self.wfile.write(data)
        if self._extra and path not in self.faults.hold:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


@dataclass
class Host:
    url: str
    root: Path
    faults: Faults
    server: StaticServer


@contextmanager
def static_host(root: Path) -> Iterator[Host]:
    faults = Faults()
    handler = type("Handler", (FaultyHandler,), {"faults": faults})
    server = make_server(root, handler=handler)
    serve_in_thread(server)
    try:
        yield Host(base_url(server), root, faults, server)
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


GIFTLESS_CONFIG = """\
AUTH_PROVIDERS:
  - tests.support.giftless_auth:everyone
LEGACY_ENDPOINTS: false
TRANSFER_ADAPTERS:
  basic:
    factory: giftless.transfer.basic_streaming:factory
    options:
      storage_class: giftless.storage.local_storage:LocalStorage
      storage_options:
        path: {storage}
PRE_AUTHORIZED_ACTION_PROVIDER:
  options:
    private_key: "mx-tests-private-key-of-at-least-32-bytes"
"""


@dataclass
class LfsServer:
    url: str  # http://127.0.0.1:PORT
    storage: Path

    def endpoint(self, org: str, repo: str) -> str:
        return f"{self.url}/{org}/{repo}.git/info/lfs"


@contextmanager
def giftless(workdir: Path) -> Iterator[LfsServer]:
    storage = workdir / "lfs-storage"
    storage.mkdir(parents=True)
    config = workdir / "giftless.yaml"
    config.write_text(GIFTLESS_CONFIG.format(storage=storage))
    port = free_port()
    env = {**os.environ, "GIFTLESS_CONFIG_FILE": str(config),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    waitress = Path(sys.executable).with_name("waitress-serve")
    log = (workdir / "giftless.log").open("w")
    proc = subprocess.Popen([str(waitress), f"--listen=127.0.0.1:{port}", "--threads=8",
                             "giftless.wsgi_entrypoint:app"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("giftless did not start: "
                                       + (workdir / "giftless.log").read_text()) from None
                time.sleep(0.1)
        yield LfsServer(f"http://127.0.0.1:{port}", storage)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
