"""The wrk script behind the P1 figures: every thread sends its own bodies, and status counts are merged."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from tests.procs import REPO

LUA = REPO / "tools" / "wrk" / "post_single.lua"


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies: ClassVar[list[bytes]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with self.lock:
            self.bodies.append(body)
        self.send_response(201)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[ThreadingHTTPServer]:
    _Recorder.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_threads_send_distinct_bodies_and_done_reports_every_status(recorder: ThreadingHTTPServer) -> None:
    wrk = shutil.which("wrk")
    assert wrk is not None, "wrk is installed by `make test` (Debian package)"
    url = f"http://127.0.0.1:{recorder.server_address[1]}/"
    out = subprocess.run([wrk, "-t4", "-c8", "-d1s", "-s", str(LUA), url], capture_output=True, text=True,
                         timeout=30, check=True, env={"MT_RUN": "t"}).stdout
    bodies = list(_Recorder.bodies)
    assert len(bodies) > 100
    assert len(set(bodies)) == len(bodies), "two wrk threads sent the same body: dedup would answer 409"
    threads = {int(m) for m in re.findall(rb"thread (\d+) request", b"".join(bodies))}
    assert len(threads) > 1 and threads <= {1, 2, 3, 4}
    reported = {int(k): int(v) for k, v in re.findall(r"^status (\d+): (\d+)$", out, re.M)}
    assert set(reported) == {201}
    assert reported[201] >= len(bodies) - 8  # wrk may cut the last in-flight requests of each connection
