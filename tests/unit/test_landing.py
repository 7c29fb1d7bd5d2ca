"""mx.landing: a body straight into a file at an offset (splice on Linux, one buffer
otherwise), over real TCP connections on 127.0.0.1, and the ordered hasher that reads the
bytes back."""

from __future__ import annotations

import hashlib
import io
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mx import landing
from mx.client.orderedhash import OrderedHasher
from mx.errors import IntegrityError

DATA = random.Random(7).randbytes(3 << 20)


@contextmanager
def peer(send: Callable[[socket.socket], None]) -> Iterator[socket.socket]:
    """A connected TCP socket whose other end runs `send` on a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()

    def run() -> None:
        try:
            send(server)
        except OSError:
            pass
        finally:
            server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    client.settimeout(5)  # as mx's connections are: the descriptor is non-blocking
    try:
        yield client
    finally:
        client.close()
        thread.join(5)


def test_splice_writes_the_body_at_the_offset(tmp_path: Path) -> None:
    target = tmp_path / "part"
    target.write_bytes(b"x" * 100)
    with peer(lambda s: s.sendall(DATA)) as sock:
        fd = os.open(target, os.O_RDWR)
        try:
            stretches = list(landing.splice_into(sock, fd, 100, len(DATA), 5,
                                                 landing.Pace(5)))
        finally:
            os.close(fd)
    assert sum(stretches) == len(DATA)
    assert target.read_bytes() == b"x" * 100 + DATA


def test_splice_stops_at_want_and_leaves_the_rest_on_the_socket(tmp_path: Path) -> None:
    target = tmp_path / "part"
    with peer(lambda s: s.sendall(DATA)) as sock:
        fd = os.open(target, os.O_RDWR | os.O_CREAT)
        try:
            got = sum(landing.splice_into(sock, fd, 0, 1000, 5, landing.Pace(5)))
        finally:
            os.close(fd)
        assert sock.recv(10) == DATA[1000:1010]
    assert got == 1000 and target.read_bytes() == DATA[:1000]


def test_an_early_close_ends_the_stretches_with_what_arrived(tmp_path: Path) -> None:
    target = tmp_path / "part"
    with peer(lambda s: s.sendall(DATA[:12345])) as sock:
        fd = os.open(target, os.O_RDWR | os.O_CREAT)
        try:
            got = sum(landing.splice_into(sock, fd, 0, len(DATA), 5, landing.Pace(5)))
        finally:
            os.close(fd)
    assert got == 12345 and target.read_bytes() == DATA[:12345]


def test_a_file_that_takes_no_splice_gets_the_bytes_through_a_buffer(tmp_path: Path) -> None:
    # Linux refuses splice into an O_APPEND file (EINVAL): the fallback must carry on with
    # the bytes already in the pipe.
    target = tmp_path / "part"
    with peer(lambda s: s.sendall(DATA)) as sock:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            got = sum(landing.splice_into(sock, fd, 0, len(DATA), 5, landing.Pace(5)))
        finally:
            os.close(fd)
    assert got == len(DATA) and target.read_bytes() == DATA


def test_silence_fails_after_the_timeout(tmp_path: Path) -> None:
    quiet = threading.Event()
    with peer(lambda s: quiet.wait(5)) as sock:
        fd = os.open(tmp_path / "part", os.O_RDWR | os.O_CREAT)
        try:
            with pytest.raises(TimeoutError, match=r"no bytes for 0\.2 s"):
                sum(landing.splice_into(sock, fd, 0, 100, 0.2, landing.Pace(5)))
        finally:
            quiet.set()
            os.close(fd)


def test_a_trickle_fails_as_a_stall(tmp_path: Path) -> None:
    stop = threading.Event()

    def trickle(s: socket.socket) -> None:
        while not stop.is_set():
            s.sendall(b"z" * 10)
            time.sleep(0.02)

    with peer(trickle) as sock:
        fd = os.open(tmp_path / "part", os.O_RDWR | os.O_CREAT)
        try:
            with pytest.raises(TimeoutError, match="too slowly"):
                sum(landing.splice_into(sock, fd, 0, 1 << 20, 5, landing.Pace(0.3)))
        finally:
            stop.set()
            os.close(fd)


def run_copy(body: bytes, want: int, path: Path) -> tuple[list[int], bool]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    stretches: list[int] = []
    try:
        gen = landing.copy_into(io.BytesIO(body).readinto, fd, 0, want, buffer=4096)
        while True:
            try:
                stretches.append(next(gen))
            except StopIteration as stop:
                return stretches, bool(stop.value)
    finally:
        os.close(fd)


def test_copy_never_writes_past_want_and_reports_the_overrun(tmp_path: Path) -> None:
    stretches, over = run_copy(DATA[:10_001], 10_000, tmp_path / "a")
    assert over and sum(stretches) == 10_000
    assert (tmp_path / "a").read_bytes() == DATA[:10_000]
    stretches, over = run_copy(DATA[:10_000], 10_000, tmp_path / "b")
    assert not over and (tmp_path / "b").read_bytes() == DATA[:10_000]
    assert max(stretches) <= 4096  # one reused buffer of the size asked for


def test_chunk_body_is_a_landing_too(tmp_path: Path) -> None:
    body = landing.ChunkBody([DATA[:5], DATA[5:9], DATA[9:20]])
    fd = os.open(tmp_path / "c", os.O_RDWR | os.O_CREAT)
    try:
        assert sum(body.into_file(fd, 0, 15)) == 15
    finally:
        os.close(fd)
    assert body.overran and (tmp_path / "c").read_bytes() == DATA[:15]


def test_the_ordered_hasher_hashes_pieces_written_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    hasher = OrderedHasher(fd)
    try:
        spans = [(a, min(a + 300_000, len(DATA))) for a in range(0, len(DATA), 300_000)]
        random.Random(3).shuffle(spans)
        for a, b in spans:
            landing.pwrite_all(fd, DATA[a:b], a)
            hasher.on_disk(a, b)
        assert hasher.digest_at(len(DATA)) == hashlib.sha256(DATA).hexdigest()
    finally:
        hasher.close()
        os.close(fd)


def test_the_ordered_hasher_refuses_a_hole(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    hasher = OrderedHasher(fd)
    try:
        landing.pwrite_all(fd, DATA[:100], 0)
        hasher.on_disk(0, 100)
        landing.pwrite_all(fd, DATA[200:300], 200)
        hasher.on_disk(200, 300)
        with pytest.raises(IntegrityError, match="no bytes landed at offset 100 of 300"):
            hasher.digest_at(300)
    finally:
        hasher.close()
        os.close(fd)


def test_closing_the_ordered_hasher_stops_a_long_read_back(tmp_path: Path) -> None:
    """After an error or Ctrl-C the digest is not wanted: close() must not first hash the
    rest of a large resumed prefix (a sparse 2 GiB file here)."""
    size = 2 << 30
    fd = os.open(tmp_path / "sparse", os.O_RDWR | os.O_CREAT)
    try:
        os.ftruncate(fd, size)
        hasher = OrderedHasher(fd)
        hasher.on_disk(0, size)
        hasher.close()
        assert hasher.frontier < size
    finally:
        os.close(fd)
