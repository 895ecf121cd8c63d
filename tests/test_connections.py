"""Idle and stalled connections cannot starve the server (real Granian, real sockets).

Granian holds at most `server.backpressure` connections per worker, idle ones included; with the old limit
(1024) a few thousand connections that never send a byte left real clients waiting in the listen backlog.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.procs import ArcLite, MemtraceServer
from tests.provision import provision
from tests.waiting import wait_until

IDLE_CONNECTIONS = 3000


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        pytest.skip(f"needs {needed} open files, the hard limit here is {soft}")


@contextlib.contextmanager
def idle_connections(port: int, n: int) -> Iterator[list[socket.socket]]:
    """`n` TCP connections to the server that never send anything."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        yield socks
    finally:
        for s in socks:
            s.close()


def accept_backlog(port: int) -> int:
    """Connections waiting in the listen backlog of `port` (the Recv-Q of its LISTEN sockets, /proc/net/tcp)."""
    waiting = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, queues = fields[1], fields[3], fields[4]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
            waiting += int(queues.split(":")[1], 16)
    return waiting


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def wait_closed(socks: list[socket.socket], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    open_socks = list(socks)
    while open_socks and time.monotonic() < deadline:
        open_socks = [s for s in open_socks if not closed_by_server(s)]
        time.sleep(0.1)
    return len(socks) - len(open_socks)


@pytest.mark.slow
def test_thousands_of_idle_connections_leave_probes_answered(tmp_path: Path) -> None:
    _raise_fd_limit(IDLE_CONNECTIONS + 500)
    server = MemtraceServer(tmp_path)
    try:
        with idle_connections(server.port, IDLE_CONNECTIONS):
            wait_until(lambda: accept_backlog(server.port) == 0, "the worker accepting every idle connection")
            latencies = []
            for _ in range(20):
                started = time.monotonic()
                response = httpx.get(f"{server.url}/health", timeout=3)  # a new connection each time
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200
            print(f"\n{IDLE_CONNECTIONS} idle connections: /health p50 {statistics.median(latencies) * 1000:.1f} ms,"
                  f" max {max(latencies) * 1000:.1f} ms")
    finally:
        server.stop()


def test_idle_and_stalled_connections_are_closed(tmp_path: Path) -> None:
    tenant = provision(tmp_path / "memtrace.db", "acme", None)
    server = MemtraceServer(tmp_path, env={"MEMTRACE_SERVER_HEADER_READ_TIMEOUT_S": "1",
                                           "MEMTRACE_SERVER_BODY_READ_TIMEOUT_S": "1"})
    try:
        with idle_connections(server.port, 50) as idle:
            # Never sent a byte; and one that sent half a request head.
            idle[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            # A keep-alive connection that made one request, then went quiet.
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as kept:
                kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                assert kept.recv(4096).startswith(b"HTTP/1.1 200")
                assert wait_closed([*idle, kept], timeout=8) == len(idle) + 1
        # A body that starts and stalls: 408 JSON, then the connection is closed.
        with socket.create_connection(("127.0.0.1", server.port), timeout=8) as stalled:
            stalled.sendall(
                b"POST /api/v1/memories HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                b"content-length: 1000\r\nx-api-key: " + tenant.key.encode() + b"\r\n\r\n{\"agent_id\": "
            )
            started = time.monotonic()
            answer = b""
            while chunk := stalled.recv(4096):
                answer += chunk
            assert time.monotonic() - started < 6
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        assert b'"error"' in body
        # The server is still fine.
        assert httpx.get(f"{server.url}/health", timeout=3).status_code == 200
    finally:
        server.stop()


def test_a_body_that_pauses_but_arrives_in_time_is_accepted(tmp_path: Path) -> None:
    """The body deadline is checked by a once-a-second sweep: a read that waits across sweeps and completes
    before the deadline must be answered normally, and the same connection keeps working."""
    arc = ArcLite(tmp_path / "arc")
    tenant = provision(tmp_path / "memtrace.db", "acme", arc.url)
    server = MemtraceServer(tmp_path, env={"MEMTRACE_SERVER_BODY_READ_TIMEOUT_S": "4"})
    try:
        body = b'{"agent_id": "a1", "content": "paused body"}'
        with socket.create_connection(("127.0.0.1", server.port), timeout=8) as conn:
            conn.sendall(
                b"POST /api/v1/memories HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\nx-api-key: " + tenant.key.encode()
                + b"\r\n\r\n" + body[:10]
            )
            time.sleep(2.5)  # the point of the test: the body pauses across two once-a-second deadline sweeps
            conn.sendall(body[10:])
            answer = conn.recv(65536)
            assert answer.startswith(b"HTTP/1.1 201"), answer
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert conn.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()
        arc.stop()
