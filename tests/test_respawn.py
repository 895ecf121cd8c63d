"""`memtrace serve` keeps running when a worker is killed, wherever it was started from.

Started from a directory without granian.toml (as the README's production command is), `kill -9` of one
worker used to stop the whole server with acknowledged rows waiting; now the worker is respawned and the
journaled memories are delivered by whichever worker holds the delivery lease.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.procs import ArcLite, MemtraceServer
from tests.provision import provision
from tests.test_delivery import ids_in_arc, post_batch
from tests.waiting import wait_until


def children(pid: int) -> set[int]:
    """Live child processes of `pid`, from /proc."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def lease_holder_pid(journal: Path) -> int | None:
    with sqlite3.connect(journal) as conn:
        row = conn.execute("SELECT holder FROM lease WHERE name = 'deliverer'").fetchone()
    return int(row[0].split(":")[1]) if row else None


@pytest.mark.slow
def test_killed_worker_is_respawned_and_its_rows_are_delivered(tmp_path: Path) -> None:
    arc_dir = tmp_path / "arc"
    arc = ArcLite(arc_dir)
    data = tmp_path / "mt"
    data.mkdir()
    tenant = provision(data / "memtrace.db", "respawn", arc.url)
    assert not (data / "granian.toml").exists()
    server = MemtraceServer(data, workers=2, env={"MEMTRACE_ARC_RETRY_MAX_MS": "500"})
    try:
        wait_until(lambda: len(children(server.popen.pid)) >= 2, "two workers", 15)
        workers = children(server.popen.pid)
        arc.stop()  # Arc is down: what is accepted now stays in the journal
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=10) as client:
            ids = post_batch(client, "w", 50)
        wait_until(lambda: lease_holder_pid(data / "journal.db") in workers, "a worker holding the lease", 10)
        victim = lease_holder_pid(data / "journal.db")
        assert victim is not None
        os.kill(victim, signal.SIGKILL)

        answered = 0

        def respawned() -> bool:  # /health answers all along, until a new worker took the victim's place
            nonlocal answered
            assert httpx.get(f"{server.url}/health", timeout=3).status_code == 200
            answered += 1
            live = children(server.popen.pid)
            return victim not in live and len(live) >= 2

        wait_until(respawned, "the killed worker replaced", 15, interval=0.1)
        assert server.popen.poll() is None, server.output()
        live = children(server.popen.pid)
        assert victim not in live
        assert len(live) >= 2, f"worker not respawned: {live}\n{server.output()}"

        arc = ArcLite(arc_dir, port=arc.port)
        wait_until(lambda: set(ids_in_arc(arc, tenant)) == set(ids), "the journaled memories in Arc", 30)
        print(f"\n/health answered {answered} times in a row after kill -9 of worker {victim}")
    finally:
        server.stop()
        arc.stop()
