"""Durability and dedup claims checked where they can fail: the journal's fdatasync is observed (strace on the
real worker) between the request and its 201, and the 2-worker dedup race is shown to involve both workers.

`make pytest` installs strace (Debian) when it can; the trace needs ptrace rights over the worker (root, or the
same user with ptrace_scope 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Stack, running_stack
from tests.procs import MemtraceServer
from tests.waiting import wait_until

SYSCALLS = "fsync,fdatasync,pwrite64,write,writev,sendto,sendmsg,read,recvfrom"
LINE_RE = re.compile(r"^(\d+)\s+(.*)$")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(x) for x in (task / "children").read_text().split()]
    return found


def _threads(pid: int) -> dict[int, str]:
    """tid -> OS thread name (`memtrace.threadnames` names the journal's threads)."""
    out: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out[int(task.name)] = (task / "comm").read_text().strip()
    return out


def _traced_by(tid_dir: Path) -> int:
    for line in (tid_dir / "status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    return 0


@contextlib.contextmanager
def strace(pid: int, out: Path) -> Iterator[None]:
    """Trace every thread of `pid` (file paths and sockets named, `-yy`) into `out` while the block runs."""
    if shutil.which("strace") is None:
        pytest.fail("strace is not installed (make pytest installs it: apt-get install strace)")
    errors = out.with_suffix(".stderr")
    with errors.open("wb") as stderr:
        tracer = subprocess.Popen(["strace", "-f", "-p", str(pid), "-yy", "-s", "64", "-e", f"trace={SYSCALLS}",
                                   "-o", str(out)], stderr=stderr)
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())

        def attached() -> bool:
            assert tracer.poll() is None, errors.read_text()
            return all(_traced_by(t) == tracer.pid for t in tasks)

        wait_until(attached, "strace attached to every thread of the worker")
        yield
    finally:
        tracer.terminate()
        tracer.wait(timeout=15)


def _completed_at(lines: list[tuple[int, str]], i: int) -> int:
    """Index of the line where the syscall started on line `i` returned (itself, or its `resumed` line)."""
    tid, text = lines[i]
    if "<unfinished ...>" not in text:
        return i
    name = text.split("(", 1)[0]
    for j in range(i + 1, len(lines)):
        if lines[j][0] == tid and lines[j][1].startswith(f"<... {name} resumed>"):
            return j
    return len(lines)


def check_sync_before_201(trace: list[str], commit_tid: int) -> None:
    """The journal's commit thread wrote the WAL and fdatasynced it after the request arrived and before the
    first byte of the 201 went out."""
    lines = [(int(m.group(1)), m.group(2)) for m in map(LINE_RE.match, trace) if m]
    request = next(i for i, (_, t) in enumerate(lines) if t.startswith(("read(", "recvfrom("))
                   and "POST /api/v1/memories" in t)
    response = next(i for i, (_, t) in enumerate(lines) if "HTTP/1.1 201" in t)
    between = range(request + 1, response)
    wal_writes = [i for i in between if lines[i][0] == commit_tid and lines[i][1].startswith("pwrite64(")
                  and "journal.db-wal>" in lines[i][1]]
    assert wal_writes, f"the commit thread wrote no WAL frame for the request:\n{_show(lines, between)}"
    syncs = [i for i in between if i > wal_writes[0] and lines[i][0] == commit_tid
             and re.match(r"f(data)?sync\(\d+</[^>]*journal\.db-wal>", lines[i][1])
             and _completed_at(lines, i) < response]
    assert syncs, f"no fdatasync of the journal's WAL returned before the 201:\n{_show(lines, between)}"


def _show(lines: list[tuple[int, str]], span: range) -> str:
    return "\n".join(f"{tid} {text[:160]}" for tid, text in (lines[i] for i in span))[:6000]


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("durable"), "durable") as running:
        yield running


def test_the_201_is_sent_only_after_the_journal_wal_is_fdatasynced(one_worker: Stack, tmp_path: Path) -> None:
    """Fails when the journal stops syncing (`PRAGMA synchronous` OFF or NORMAL on the commit connection):
    kill -9 keeps the page cache, so only the syscalls themselves can tell a sync from none."""
    (worker,) = _children(one_worker.server.popen.pid)
    commit_tid = next(tid for tid, name in _threads(worker).items() if name == "journal-commit")
    with one_worker.client() as api:
        assert api.get("/api/v1/agents").status_code == 200  # connection open, caches warm
        with strace(worker, tmp_path / "trace"):
            created = api.post("/api/v1/memories", json={"agent_id": "durable", "content": uuid.uuid4().hex})
        assert created.status_code == 201, created.text
    check_sync_before_201((tmp_path / "trace").read_text().splitlines(), commit_tid)


async def _burst(url: str, key: str, payload: dict[str, object], ids: list[str]) -> list[int]:
    limits = httpx.Limits(max_connections=len(ids))
    async with httpx.AsyncClient(base_url=url, headers={"x-api-key": key}, limits=limits, timeout=30) as client:
        responses = await asyncio.gather(*(client.post("/api/v1/memories", json=payload,
                                                       headers={"x-request-id": rid}) for rid in ids))
    return [r.status_code for r in responses]


def _answered_by(log: str, ids: set[str]) -> dict[str, tuple[int, int]]:
    """request id -> (pid of the worker that wrote its access line, status), from the JSON log."""
    out: dict[str, tuple[int, int]] = {}
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("logger") == "memtrace.access" and entry.get("request_id") in ids:
            out[entry["request_id"]] = (int(entry["pid"]), int(entry["status"]))
    return out


def _all_answered(log: str, ids: frozenset[str]) -> dict[str, tuple[int, int]] | None:
    found = _answered_by(log, set(ids))
    return found if len(found) == len(ids) else None


def test_two_workers_both_take_part_in_the_dedup_race_and_one_wins(tmp_path: Path) -> None:
    """Identical POSTs at once on 2 Granian workers: the access log (JSON, with each line's worker pid) shows
    both workers answered requests of the same burst, and still exactly one got a 201."""
    with running_stack(tmp_path, "race") as running:
        running.server.stop()
        server = MemtraceServer(running.data_dir, workers=2, env={"MEMTRACE_SERVER_LOG_FORMAT": "json",
                                                                   "MEMTRACE_SERVER_LOG_LEVEL": "info"})
        try:
            workers = set(_children(server.popen.pid))
            assert len(workers) == 2
            for attempt in range(10):
                ids = [f"race{attempt}-{i}-{uuid.uuid4().hex[:8]}" for i in range(40)]
                payload = {"agent_id": "racer", "content": f"same {uuid.uuid4().hex}"}
                codes = asyncio.run(_burst(server.url, running.tenant.key, payload, ids))
                assert sorted(codes) == [201] + [409] * 39
                answered = wait_until(lambda want=frozenset(ids): _all_answered(server.output(), want),
                                      "an access line for every request")
                pids = {pid for pid, _ in answered.values()}
                assert pids <= workers
                assert sorted(status for _, status in answered.values()) == sorted(codes)
                if pids == workers:  # both raced for the key; one request of one of them won
                    assert [status for _, status in answered.values()].count(201) == 1
                    return
            pytest.fail("in 10 bursts of 40 requests one worker answered them all")
        finally:
            server.stop()
