"""Delivery never wedges: large rows after an outage, rows Arc can never take, permanent refusals, failures
inside the deliverer, and a full journal — each injected against real processes or a real journal + arclite."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from memtrace import metrics, supervise
from memtrace.arc.binding import ArcBinding
from memtrace.arc.client import ArcPool, write_refusal
from memtrace.arc.registry import ArcRegistry
from memtrace.config import ArcSettings
from memtrace.delivery import Deliverer
from memtrace.errors import JournalFull
from memtrace.journal import Journal, JournalConfig, PendingBatch
from memtrace.rows import MemoryRow
from tests.procs import ArcLite, MemtraceServer, free_port
from tests.provision import provision
from tests.test_delivery import arc_stats, ids_in_arc
from tests.test_journal import row as journal_row
from tests.waiting import wait_until, wait_until_async

KIB = 1024
MIB = 1024 * KIB


def admin(*args: str) -> Any:
    """`memtrace admin ...` as an operator runs it; JSON output decoded."""
    done = subprocess.run([sys.executable, "-m", "memtrace", "admin", *args, "--json"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def post(client: httpx.Client, memories: list[dict[str, Any]]) -> list[str]:
    resp = client.post("/api/v1/memories", json={"memories": memories})
    assert resp.status_code == 201, resp.text
    return [m["id"] for m in resp.json()["memories"]]


def large(agent: str, i: int, size: int) -> dict[str, Any]:
    """A memory of about `size` bytes, half content and half metadata (both well within the limits)."""
    return {"agent_id": agent, "content": f"{i} {uuid.uuid4().hex} " + "c" * (size // 2),
            "metadata": {"pad": "m" * (size // 2)}}


@pytest.mark.slow
@pytest.mark.parametrize("max_batch_bytes", [None, MIB], ids=["split-refused", "byte-bound"])
def test_large_rows_after_an_outage_are_all_delivered(tmp_path: Path, max_batch_bytes: int | None) -> None:
    """1,100 rows of ~10 KiB wait out an outage; the Arc behind takes at most 2 MiB per request (Arc: 100 MiB,
    the same shape scaled down). A 1,000-row batch is ~10 MiB: refused with 413 for ever before the fix."""
    arc_dir = tmp_path / "arc"
    arc = ArcLite(arc_dir, extra=["--max-body-mb", "2"])
    data = tmp_path / "mt"
    tenant = provision(data / "memtrace.db", "bulky", arc.url)
    env = {"MEMTRACE_ARC_RETRY_MAX_MS": "500", "MEMTRACE_ARC_BREAKER_PROBE_INTERVAL_S": "0.5"}
    if max_batch_bytes:
        env["MEMTRACE_ARC_MAX_BATCH_BYTES"] = str(max_batch_bytes)
    server = MemtraceServer(data, env=env)
    acknowledged: list[str] = []
    try:
        arc.stop()
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=60) as client:
            for start in range(0, 1100, 100):
                acknowledged += post(client, [large("big", start + i, 10 * KIB) for i in range(100)])
        arc = ArcLite(arc_dir, port=arc.port, extra=["--max-body-mb", "2"])
        wait_until(lambda: len(ids_in_arc(arc, tenant)) == 1100, "1,100 large rows delivered", 60)
        assert set(ids_in_arc(arc, tenant)) == set(acknowledged)
        stats = arc_stats(arc)
        assert stats["largest_request_bytes"] <= 2 * MIB
        if max_batch_bytes:
            assert stats["refused_requests"] == 0  # requests were bounded before Arc had to refuse one
            assert stats["largest_request_bytes"] <= max_batch_bytes
        else:
            assert stats["refused_requests"] >= 1  # the 8 MiB default is over this Arc's cap: split on 413
    finally:
        server.stop()
        arc.stop()


def test_a_row_arc_never_takes_is_dead_lettered_and_blocks_nobody(tmp_path: Path) -> None:
    """Arc takes at most 100 KiB per request; two memories of ~115 KiB (within Memtrace's limits) can never
    go. They are set aside, stay readable, and the other rows of their org and of another org sharing the
    Arc target are delivered; the operator then drops one and, once Arc's cap is raised, retries the other."""
    arc_dir = tmp_path / "arc"
    arc = ArcLite(arc_dir, extra=["--max-body-mb", "0.1"])
    data = tmp_path / "mt"
    acme = provision(data / "memtrace.db", "acme", arc.url, "shared")
    globex = provision(data / "memtrace.db", "globex", arc.url, "shared")
    server = MemtraceServer(data, env={"MEMTRACE_ARC_FLUSH_INTERVAL_MS": "1000"})
    journal = str(data / "journal.db")
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": acme.key}, timeout=30) as a_client, \
                httpx.Client(base_url=server.url, headers={"x-api-key": globex.key}, timeout=30) as g_client:
            small = [{"agent_id": "a", "content": f"small {i} {uuid.uuid4().hex}"} for i in range(9)]
            huge = [{"agent_id": "a", "content": f"huge {i} {uuid.uuid4().hex} ".ljust(64 * KIB, "c"),
                     "metadata": {"pad": "m" * 50_000}} for i in range(2)]
            a_ids = post(a_client, small[:3] + huge[:1] + small[3:6] + huge[1:] + small[6:])
            big_ids = [a_ids[3], a_ids[7]]
            small_ids = [i for i in a_ids if i not in big_ids]
            g_ids = post(g_client, [{"agent_id": "g", "content": f"g {i} {uuid.uuid4().hex}"} for i in range(5)])
            wait_until(lambda: set(ids_in_arc(arc, acme)) == set(small_ids), "acme's other rows delivered", 20)
            wait_until(lambda: set(ids_in_arc(arc, globex)) == set(g_ids), "globex's rows delivered", 20)

            dead = admin("delivery", "dead-letters", "--journal", journal)
            assert sorted(d["memory_id"] for d in dead) == sorted(big_ids)
            assert {(d["org_id"], d["arc_status"]) for d in dead} == {(acme.org_id, 413)}
            assert all(d["attempts"] >= 2 and "too large" in d["arc_error"] for d in dead)
            assert admin("delivery", "dead-letters", "--journal", journal, "--org", globex.org_id) == []
            scraped = httpx.get(f"{server.url}/metrics").text
            assert f"memtrace_delivery_dead_letters {float(len(big_ids))}" in scraped
            assert 'memtrace_delivery_requests_total{outcome="refused"}' in scraped
            # acknowledged with 201, so still readable while set aside
            got = a_client.get(f"/api/v1/memories/{big_ids[0]}")
            assert got.status_code == 200 and got.json()["content"] == huge[0]["content"]
            listed = a_client.get("/api/v1/memories", params={"agent_id": "a", "limit": 100}).json()["memories"]
            assert {m["id"] for m in listed} == set(a_ids)

            entry = {d["memory_id"]: d["entry"] for d in dead}
            assert admin("delivery", "drop", str(entry[big_ids[1]]), "--journal", journal) == {"dropped": 1}
            assert a_client.get(f"/api/v1/memories/{big_ids[1]}").status_code == 404
            arc.stop()
            arc = ArcLite(arc_dir, port=arc.port)  # the operator raised Arc's cap
            assert admin("delivery", "retry", "--all", "--journal", journal) == {"retried": 1}
            wait_until(lambda: big_ids[0] in ids_in_arc(arc, acme), "the retried memory delivered", 20)
            assert admin("delivery", "dead-letters", "--journal", journal) == []
            assert a_client.get(f"/api/v1/memories/{big_ids[0]}").status_code == 200
    finally:
        server.stop()
        arc.stop()


# --- in-process: a real journal, a real arclite, and the failure injected into the deliverer ---------------


class Delivery:
    """A journal, a registry over a binding list the test may change, and a deliverer, all in this process."""

    def __init__(self, journal: Journal, registry: ArcRegistry, deliverer: Deliverer,
                 bindings: list[ArcBinding]) -> None:
        self.journal, self.registry, self.deliverer, self.bindings = journal, registry, deliverer, bindings

    async def rows_in_arc(self, arc: ArcLite) -> int:
        headers = {"Authorization": f"Bearer {arc.token}"} if arc.token else {}
        async with httpx.AsyncClient() as client:
            stats = (await client.get(f"{arc.url}/api/v1/arclite/stats", headers=headers)).json()
        return int(stats["rows_written"])


@contextlib.asynccontextmanager
async def delivery(tmp_path: Path, bindings: list[ArcBinding], **arc: Any) -> AsyncIterator[Delivery]:
    journal = await Journal.open(JournalConfig(path=tmp_path / "journal.db", dedup_window_s=3600, retention_s=10.0,
                                               max_pending_per_org=100_000))
    current = list(bindings)

    async def loader() -> list[ArcBinding]:
        return list(current)

    settings = ArcSettings(**{"flush_interval_ms": 50, "retry_base_ms": 50, "retry_max_ms": 200,
                              "connect_timeout_s": 0.5, **arc})
    registry = ArcRegistry(loader, ArcPool(settings), settings)
    await registry.refresh()
    deliverer = Deliverer(journal, registry, settings)
    try:
        yield Delivery(journal, registry, deliverer, current)
    finally:
        await deliverer.stop(1.0)
        await journal.close()
        await registry.pool.close()


async def _refusals(d: Delivery, org_id: str, at_least: int) -> bool:
    state = d.deliverer.sender.orgs.get(org_id)
    return state is not None and state.failures >= at_least


def rows(org: str, n: int) -> list[MemoryRow]:
    return [journal_row(org, f"{org}-{i}-{uuid.uuid4().hex}") for i in range(n)]


async def test_a_binding_arc_refuses_waits_logs_rarely_and_resumes_once_fixed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """401 for ever (wrong token): nothing is dead-lettered, the log is not flooded, and fixing the binding
    delivers at once (no long backoff to sit out). Before: retried and logged every `retry_max_ms`."""
    arc = ArcLite(tmp_path / "arc", token="right-token")
    try:
        wrong = ArcBinding("acme", arc.url, "db_acme", "events", "wrong-token")
        async with delivery(tmp_path, [wrong]) as d:
            await d.journal.append("acme", rows("acme", 20))
            caplog.set_level(logging.WARNING, logger="memtrace.delivery")
            d.deliverer.start()
            # refused twice: the second refusal (within the 60 s cap) must not be logged again
            await wait_until_async(lambda: _refusals(d, "acme", 2), "a second refusal of the binding", 10)
            logged = [r for r in caplog.records if r.name == "memtrace.delivery"]
            assert 1 <= len(logged) <= 2, [r.getMessage() for r in logged]
            assert "refuses the binding of org acme (HTTP 401" in logged[0].getMessage()
            assert "wrong-token" not in caplog.text
            assert await d.journal.dead_letters.count() == 0
            assert await d.journal.pending_total("acme") == 20
            d.bindings[0] = ArcBinding("acme", arc.url, "db_acme", "events", "right-token")
            await d.registry.refresh()

            async def delivered() -> bool:
                return await d.rows_in_arc(arc) == 20

            await wait_until_async(delivered, "delivery with the fixed binding", 5)
    finally:
        arc.stop()


def failed_requests() -> float:
    """This process's count of delivery requests that failed (the `memtrace_delivery_requests` metric)."""
    for line in metrics.exposition().decode().splitlines():
        if line.startswith('memtrace_delivery_requests_total{outcome="failed"}'):
            return float(line.split()[-1])
    return 0.0


async def test_a_failed_shared_request_counts_on_every_orgs_breaker(tmp_path: Path) -> None:
    """Two orgs share one Arc target, so one request carries both; Arc is down. Before: only the lead org's
    breaker saw the failures, so the other org's reads kept waiting on a dead Arc."""
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    bindings = [ArcBinding(org, url, "shared", "events") for org in ("acme", "globex")]
    # A long backoff, so that each org sends no request of its own before the check below.
    async with delivery(tmp_path, bindings, retry_base_ms=3000, retry_max_ms=3000) as d:
        await d.journal.append("acme", rows("acme", 3))
        await d.journal.append("globex", rows("globex", 3))
        d.deliverer.start()

        before = failed_requests()

        async def one_failed() -> bool:
            return failed_requests() >= before + 1

        await wait_until_async(one_failed, "the shared request to fail", 10)
        assert failed_requests() == before + 1
        assert [d.registry.breaker(org).consecutive_failures for org in ("acme", "globex")] == [1, 1]


async def test_an_unexpected_error_in_a_flush_is_logged_and_delivery_resumes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """mark_delivered raises once (after Arc took the rows). Before: the flush task ended silently."""
    arc = ArcLite(tmp_path / "arc")
    try:
        async with delivery(tmp_path, [ArcBinding("acme", arc.url, "db_acme", "events")]) as d:
            real = d.journal.mark_delivered
            calls = 0

            async def flaky(batches: Any) -> None:
                nonlocal calls
                calls += 1
                if calls == 1:
                    raise RuntimeError("injected failure")
                await real(batches)

            monkeypatch.setattr(d.journal, "mark_delivered", flaky)
            caplog.set_level(logging.ERROR, logger="memtrace.delivery")
            await d.journal.append("acme", rows("acme", 10))
            d.deliverer.start()

            async def drained() -> bool:
                return await d.journal.pending_total("acme") == 0

            await wait_until_async(drained, "the rows delivered and marked after the failure", 10)
            assert calls >= 2
            failures = [r for r in caplog.records if r.name == "memtrace.delivery" and r.exc_info]
            assert failures and "injected failure" in caplog.text
            assert "acme" in failures[0].getMessage()
    finally:
        arc.stop()


async def test_an_observer_that_raises_does_not_stop_the_committer(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = await Journal.open(JournalConfig(path=tmp_path / "journal.db", dedup_window_s=3600, retention_s=10.0,
                                               max_pending_per_org=1000))
    try:
        def broken(stored: dict[str, int]) -> None:
            raise ValueError("observer bug")

        journal.on_commit.append(broken)
        for i in range(3):
            result = await asyncio.wait_for(journal.append("acme", rows("acme", 2)), timeout=5)
            assert len(result.stored) == 2, i
        assert await journal.pending_total("acme") == 6
        assert "journal commit observer failed" in caplog.text
    finally:
        await journal.close()


async def test_a_supervised_task_that_raises_is_logged_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    runs = 0

    async def once_broken() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("boom")

    await asyncio.wait_for(supervise.supervised("test task", once_broken, base_s=0.01), timeout=5)
    assert runs == 2
    assert "background task test task failed (1 in a row)" in caplog.text


# --- a full journal ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real small filesystem (root only, where permitted); the test is skipped where it cannot be mounted."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.slow
@pytest.mark.parametrize("full_by", ["max_size_mb", "tmpfs"])
def test_a_full_journal_answers_503_is_not_ready_and_recovers_without_restart(tmp_path: Path, full_by: str) -> None:
    """Arc is down, so nothing leaves the journal, until the journal is full: by its size bound (room comes
    back when Arc does: delivery and pruning), or on a real 8 MiB filesystem that another file fills (room
    comes back when that file goes). Before: 500 without Retry-After (the SDK drops the memory) while /ready
    said ready."""
    arc_dir = tmp_path / "arc"
    arc = ArcLite(arc_dir)
    data = tmp_path / "mt"
    tenant = provision(data / "memtrace.db", "fills", arc.url)
    env = {"MEMTRACE_JOURNAL_RETENTION_S": "1", "MEMTRACE_ARC_RETRY_MAX_MS": "500",
           "MEMTRACE_ARC_BREAKER_PROBE_INTERVAL_S": "0.5"}
    filler: Path | None = None
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: arc.stop())
        if full_by == "tmpfs":
            disk = stack.enter_context(small_tmpfs(tmp_path / "small", "8m"))
            env["MEMTRACE_STORAGE_JOURNAL_DB"] = str(disk / "journal.db")
        else:
            env["MEMTRACE_JOURNAL_MAX_SIZE_MB"] = "2"
        arc.stop()
        server = stack.enter_context(contextlib.closing(_Stoppable(MemtraceServer(data, env=env))))
        if full_by == "tmpfs":
            filler = disk / "someone-elses.log"  # leaves about 1.5 MiB for the journal
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            filler.write_bytes(b"x" * max(0, free - 3 * MIB // 2))
        acknowledged: list[str] = []
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=30) as client:
            refused = None
            for start in range(0, 400, 5):
                resp = client.post("/api/v1/memories", json={"memories": [large("f", start + i, 50 * KIB)
                                                                          for i in range(5)]})
                if resp.status_code != 201:
                    refused = resp
                    break
                acknowledged += [m["id"] for m in resp.json()["memories"]]
            assert refused is not None, "the journal never filled up"
            assert refused.status_code == 503, refused.text
            assert refused.json() == {"error": "the journal is full; retry later"}
            assert int(refused.headers["Retry-After"]) >= 1
            ready = httpx.get(f"{server.url}/ready")
            assert ready.status_code == 503 and ready.json()["journal"] == "full"
            assert acknowledged

            if filler is not None:
                filler.unlink()
            arc = ArcLite(arc_dir, port=arc.port)
            wait_until(lambda: httpx.get(f"{server.url}/ready").json()["journal"] == "ok", "journal room again", 30)
            resp = client.post("/api/v1/memories", json={"memories": [large("f", 1000 + i, 50 * KIB)
                                                                      for i in range(5)]})
            assert resp.status_code == 201, resp.text
            acknowledged += [m["id"] for m in resp.json()["memories"]]
            wait_until(lambda: set(acknowledged) <= set(ids_in_arc(arc, tenant)), "every acknowledged memory", 30)


class _Stoppable:
    """`contextlib.closing` for a server: stopped before its filesystem is unmounted."""

    def __init__(self, server: MemtraceServer) -> None:
        self.server = server
        self.url = server.url

    def close(self) -> None:
        self.server.stop()


async def test_a_bounded_journal_refuses_when_full_yet_still_drains(tmp_path: Path) -> None:
    """At `max_size_mb` appends get JournalFull (503 + Retry-After) while delivery can still mark, quarantine
    and prune (the reserve kept for bookkeeping); once pruned, the journal accepts again by itself."""
    journal = await Journal.open(JournalConfig(path=tmp_path / "journal.db", dedup_window_s=3600, retention_s=0.0,
                                               max_pending_per_org=100_000, max_size_mb=1))
    try:
        stored = 0
        with pytest.raises(JournalFull) as full:
            for i in range(200):
                big = [journal_row("acme", f"k{i}-{j}", content="x" * 20 * KIB) for j in range(2)]
                stored += len((await journal.append("acme", big)).stored)
        assert full.value.status == 503 and full.value.retry_after >= 1
        assert journal.full and stored > 0
        batches, _ = await journal.take_pending(["acme"], 10_000, 64 * MIB)
        assert await journal.dead_letter("acme", batches[0].seqs[0], 413, "too large", time.time(), 1)
        await journal.mark_delivered([PendingBatch("acme", batches[0].seqs[1:], batches[0].rows[1:])])
        assert await journal.pending_total("acme") == 0
        await journal.prune()

        async def room_again() -> bool:
            return not journal.full

        await wait_until_async(room_again, "the journal to notice the freed room", 5)
        assert len((await journal.append("acme", [journal_row("acme", "after")])).stored) == 1
    finally:
        await journal.close()


@pytest.mark.parametrize(("status", "arc_said", "kind"), [
    (413, "Payload too large (max 100MB). Consider batching into smaller requests.", "payload"),
    (400, "Invalid MessagePack payload: msgpack: invalid code", "payload"),
    (400, "measurement events: column length mismatch {12, 13}", "payload"),
    (400, "type conflict: Could not convert string 'x' to DOUBLE", "payload"),
    (400, "invalid database name: must start with a letter", "binding"),
    (400, "invalid measurement name \"1x\": must start with a letter", "binding"),
    (401, "Invalid or expired token", "binding"),
    (403, "insufficient permissions for payload", "binding"),
    (404, "Cannot POST /api/v1/write/msgpack", "binding"),
    (400, "something we have never seen", "binding"),
])
def test_write_refusals_blame_the_payload_only_when_arc_says_so(status: int, arc_said: str, kind: str) -> None:
    """Only a payload refusal may split a request and dead-letter a row; anything else keeps rows pending."""
    message = f"arc for org payload_token at arc:8000 rejected the request (HTTP {status}): {arc_said}"
    assert write_refusal(status, message) == kind
