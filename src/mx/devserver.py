"""A static file server for a built registry: HTTP/1.1, ETag, Range, sendfile.

Any web server or CDN can host an index; this one exists so `mx index serve` and
the tests have one that behaves like a real static host (conditional GETs, byte
ranges) with nothing to install. It serves files and nothing else.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import posixpath
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class StaticHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: with Nagle's algorithm on, the body of every
    # request after the first on a kept-alive connection waits ~40 ms for the client's
    # delayed ACK (the site's search makes two fetches in a row).
    disable_nagle_algorithm = True
    root: Path = Path(".")
    server_version = "mx-static/1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the CLI says where it serves; access logs are noise here

    def translate(self) -> Path | None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        parts = [p for p in posixpath.normpath(path).split("/") if p not in ("", ".", "..")]
        target = self.root.joinpath(*parts)
        if target.is_dir():
            target = target / "index.html"
        try:
            target.resolve().relative_to(self.root.resolve())
        except ValueError:
            return None
        return target if target.is_file() else None

    def do_HEAD(self) -> None:
        self.serve(head=True)

    def do_GET(self) -> None:
        self.serve(head=False)

    def serve(self, head: bool) -> None:
        target = self.translate()
        if target is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        st = target.stat()
        etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = 0, st.st_size - 1
        status = HTTPStatus.OK
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and "," not in rng:
            first, _, last = rng[6:].partition("-")
            try:
                if first:
                    start = int(first)
                    end = min(int(last), end) if last else end
                else:
                    start = max(st.st_size - int(last), 0)
            except ValueError:
                start, end = 0, st.st_size - 1
            else:
                if start > end or start >= st.st_size:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{st.st_size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = HTTPStatus.PARTIAL_CONTENT
        length = end - start + 1
        self.send_response(status)
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{st.st_size}")
        self.end_headers()
        if not head:
            self.send_body(target, start, length)

    def send_body(self, target: Path, start: int, length: int) -> None:
        with target.open("rb") as f:
            self.wfile.flush()
            sent = 0
            while sent < length:
                n = os.sendfile(self.connection.fileno(), f.fileno(), start + sent,
                                min(length - sent, 1 << 24))
                if n == 0:
                    break
                sent += n


class StaticServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(root: Path, host: str = "127.0.0.1", port: int = 0,
                handler: type[StaticHandler] = StaticHandler) -> StaticServer:
    bound = type("BoundHandler", (handler,), {"root": root})
    return StaticServer((host, port), bound)


def serve_in_thread(server: StaticServer) -> threading.Thread:
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    return t


def base_url(server: StaticServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/"
