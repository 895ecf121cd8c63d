"""The Arc path end to end: routing, batching, outages, backpressure and crashes, with real processes."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.procs import ArcLite, MemtraceServer, delivery_lease_held
from tests.provision import Tenant, provision
from tests.waiting import wait_until


def arc_query(arc: ArcLite, database: str, sql: str) -> list[list[Any]]:
    resp = httpx.post(f"{arc.url}/api/v1/query", json={"sql": sql}, headers={"x-arc-database": database})
    assert resp.status_code == 200, resp.text
    data: list[list[Any]] = resp.json()["data"]
    return data


def arc_stats(arc: ArcLite) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{arc.url}/api/v1/arclite/stats").json()
    return stats


def ids_in_arc(arc: ArcLite, tenant: Tenant, measurement: str = "events") -> dict[str, int]:
    rows = arc_query(arc, tenant.database,
                     f"SELECT id, count(*) FROM {measurement} WHERE org_id = '{tenant.org_id}' GROUP BY id")
    return {row[0]: row[1] for row in rows}


def post_batch(client: httpx.Client, agent: str, n: int, start: int = 0) -> list[str]:
    memories = [{"agent_id": agent, "content": f"memory {uuid.uuid4().hex} {i}"} for i in range(start, start + n)]
    resp = client.post("/api/v1/memories", json={"memories": memories})
    assert resp.status_code == 201, resp.text
    return [m["id"] for m in resp.json()["memories"]]


@pytest.fixture
def two_arcs(tmp_path: Path) -> Iterator[tuple[ArcLite, ArcLite]]:
    a, b = ArcLite(tmp_path / "arc_a"), ArcLite(tmp_path / "arc_b")
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_rows_reach_only_their_orgs_arc_database_and_measurement(
        tmp_path: Path, two_arcs: tuple[ArcLite, ArcLite]) -> None:
    arc_a, arc_b = two_arcs
    data = tmp_path / "mt"
    data.mkdir()
    acme = provision(data / "memtrace.db", "acme", arc_a.url, "acme_db", measurement="acme_events")
    globex = provision(data / "memtrace.db", "globex", arc_b.url, "globex_db")
    server = MemtraceServer(data, env={"MEMTRACE_ARC_BATCH_SIZE": "50"})
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": acme.key}) as a_client, \
                httpx.Client(base_url=server.url, headers={"x-api-key": globex.key}) as g_client:
            a_ids = post_batch(a_client, "a", 120)
            g_ids = post_batch(g_client, "g", 80)
            wait_until(lambda: len(ids_in_arc(arc_a, acme, "acme_events")) == 120, "acme rows in arc A", 15)
            wait_until(lambda: len(ids_in_arc(arc_b, globex)) == 80, "globex rows in arc B", 15)
        assert set(ids_in_arc(arc_a, acme, "acme_events")) == set(a_ids)
        assert set(ids_in_arc(arc_b, globex)) == set(g_ids)
        stats_a, stats_b = arc_stats(arc_a), arc_stats(arc_b)
        assert set(stats_a["by_database"]) == {"acme_db"}
        assert stats_a["by_database"]["acme_db"]["rows"] == {"acme_events": 120}
        assert set(stats_b["by_database"]) == {"globex_db"}
        assert stats_b["by_database"]["globex_db"]["rows"] == {"events": 80}
        # no row of one org in the other's store, whatever org_id it would carry
        assert arc_query(arc_b, "acme_db", "SELECT count(*) FROM acme_events") in ([], [[0]])
    finally:
        server.stop()


def test_batching_sends_about_n_over_batch_size_requests(tmp_path: Path, two_arcs: tuple[ArcLite, ArcLite]) -> None:
    arc, _ = two_arcs
    data = tmp_path / "mt"
    data.mkdir()
    tenant = provision(data / "memtrace.db", "batchy", arc.url)
    server = MemtraceServer(data, env={"MEMTRACE_ARC_BATCH_SIZE": "100", "MEMTRACE_ARC_FLUSH_INTERVAL_MS": "300"})
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}) as client:
            for start in range(0, 1000, 50):
                post_batch(client, "b", 50, start)
            wait_until(lambda: arc_stats(arc)["rows_written"] == 1000, "1000 rows delivered", 15)
            requests = arc_stats(arc)["write_requests"]
            assert 10 <= requests <= 25, f"{requests} write requests for 1000 rows at batch size 100"
            # an idle buffer below the batch size still flushes within the interval
            post_batch(client, "b", 3, 5000)
            wait_until(lambda: arc_stats(arc)["rows_written"] == 1003, "a small batch flushed by the interval", 5)
    finally:
        server.stop()


@pytest.mark.slow
def test_arc_outage_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    arc_dir = tmp_path / "arc"
    arc = ArcLite(arc_dir)
    data = tmp_path / "mt"
    data.mkdir()
    tenant = provision(data / "memtrace.db", "outage", arc.url)
    server = MemtraceServer(data, env={"MEMTRACE_ARC_RETRY_MAX_MS": "1000", "MEMTRACE_ARC_BATCH_SIZE": "200"})
    acknowledged: list[str] = []
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=30) as client:
            acknowledged += post_batch(client, "w", 100)
            arc.stop()
            outage_end = time.monotonic() + 30
            i = 0
            while time.monotonic() < outage_end:
                acknowledged += post_batch(client, "w", 20, 1000 + i * 20)
                i += 1
                time.sleep(0.25)  # pacing: the outage lasts 30 s of the clock, writes keep coming through it
            # reads still see everything acknowledged? They need Arc: 503 with Retry-After, never wrong data
            resp = client.get("/api/v1/memories", params={"agent_id": "w"})
            assert resp.status_code == 503
            assert "Retry-After" in resp.headers
            arc = ArcLite(arc_dir, port=arc.port)
            wait_until(lambda: len(ids_in_arc(arc, tenant)) == len(acknowledged), "backlog delivered", 30)
        counts = ids_in_arc(arc, tenant)
        assert set(counts) == set(acknowledged)
        assert set(counts.values()) == {1}
    finally:
        server.stop()
        arc.stop()


def test_full_org_queue_answers_429_with_retry_after_and_loses_nothing(tmp_path: Path) -> None:
    arc_dir = tmp_path / "arc"
    arc = ArcLite(arc_dir)
    data = tmp_path / "mt"
    data.mkdir()
    tenant = provision(data / "memtrace.db", "bounded", arc.url)
    other = provision(data / "memtrace.db", "unbounded", arc.url, "other_db")
    server = MemtraceServer(data, env={"MEMTRACE_ARC_MAX_PENDING_PER_ORG": "300", "MEMTRACE_ARC_RETRY_MAX_MS": "500"})
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}) as client:
            arc.stop()
            acknowledged: list[str] = []
            refused = None
            for _ in range(10):
                resp = client.post("/api/v1/memories", json={"memories": [
                    {"agent_id": "q", "content": f"q {uuid.uuid4().hex}"} for _i in range(100)]})
                if resp.status_code == 201:
                    acknowledged += [m["id"] for m in resp.json()["memories"]]
                else:
                    refused = resp
                    break
            assert refused is not None and refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            assert len(acknowledged) == 300
            with httpx.Client(base_url=server.url, headers={"x-api-key": other.key}) as other_client:
                resp = other_client.post("/api/v1/memories", json={"agent_id": "o", "content": "fine"})
                assert resp.status_code == 201  # other orgs are unaffected
            arc = ArcLite(arc_dir, port=arc.port)
            wait_until(lambda: len(ids_in_arc(arc, tenant)) == 300, "bounded backlog delivered", 30)
            assert set(ids_in_arc(arc, tenant)) == set(acknowledged)
            assert client.post("/api/v1/memories", json={"agent_id": "q", "content": "room again"}).status_code == 201
    finally:
        server.stop()
        arc.stop()


@pytest.mark.slow
def test_kill_9_mid_ingest_then_restart_delivers_every_acknowledged_memory(tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "arc")
    data = tmp_path / "mt"
    data.mkdir()
    tenant = provision(data / "memtrace.db", "crashy", arc.url)
    env = {"MEMTRACE_ARC_FLUSH_INTERVAL_MS": "2000", "MEMTRACE_ARC_BATCH_SIZE": "5000"}
    server = MemtraceServer(data, workers=2, env=env)
    acknowledged: list[str] = []
    answered: list[str] = []  # acknowledged writes of every writer so far (append is atomic)

    def writer(n: int) -> list[str]:
        ids: list[str] = []
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=10) as client:
            for i in range(200):
                try:
                    body = {"agent_id": f"k{n}", "content": f"{n}-{i}-{uuid.uuid4()}"}
                    resp = client.post("/api/v1/memories", json=body)
                except httpx.HTTPError:
                    break  # the server died under us: only what was acknowledged counts
                if resp.status_code == 201:
                    ids.append(resp.json()["id"])
                    answered.append(ids[-1])
        return ids

    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(writer, n) for n in range(4)]
            # killed mid-stream: once writes are being acknowledged, while the writers still send
            wait_until(lambda: len(answered) >= 100, "100 writes acknowledged")
            server.kill9()
            for future in futures:
                acknowledged += future.result()
        assert acknowledged, "nothing was acknowledged before the crash"
        server = MemtraceServer(data, workers=1)
        wait_until(lambda: set(acknowledged) <= set(ids_in_arc(arc, tenant)), "acknowledged memories delivered", 30)
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}) as client:
            listed = client.get("/api/v1/memories", params={"agent_id": "k0", "limit": 1000}).json()
        ids = [m["id"] for m in listed["memories"]]
        assert len(ids) == len(set(ids))  # repeats after a crash are invisible to readers
    finally:
        server.stop()
        arc.stop()


def test_sigterm_flushes_pending_memories_before_exit(tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "arc")
    data = tmp_path / "mt"
    data.mkdir()
    tenant = provision(data / "memtrace.db", "graceful", arc.url)
    server = MemtraceServer(data, env={"MEMTRACE_ARC_FLUSH_INTERVAL_MS": "60000", "MEMTRACE_ARC_BATCH_SIZE": "10000"})
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}) as client:
            ids = post_batch(client, "g", 50)
        wait_until(lambda: delivery_lease_held(data), "the deliverer holding its lease")  # nothing due for 60 s
        assert ids_in_arc(arc, tenant) == {}
        assert server.stop() == 0
        assert set(ids_in_arc(arc, tenant)) == set(ids)
    finally:
        server.stop()
        arc.stop()


def test_orgs_sharing_an_arc_database_share_write_requests(tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "arc")
    data = tmp_path / "mt"
    data.mkdir()
    tenants = [provision(data / "memtrace.db", f"small{i}", arc.url, "shared") for i in range(20)]
    server = MemtraceServer(data, env={"MEMTRACE_ARC_FLUSH_INTERVAL_MS": "1500"})
    try:
        expected: dict[str, set[str]] = {}
        for tenant in tenants:
            with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}) as client:
                expected[tenant.org_id] = set(post_batch(client, "s", 5))
        wait_until(lambda: arc_stats(arc)["rows_written"] == 100, "all rows delivered", 15)
        assert arc_stats(arc)["write_requests"] <= 5  # not one request per org
        for tenant in tenants:
            assert set(ids_in_arc(arc, tenant)) == expected[tenant.org_id]
    finally:
        server.stop()
        arc.stop()
