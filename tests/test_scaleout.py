"""Several Memtrace hosts on one shared PostgreSQL (`metadata.url`), as real processes on loopback.

One throwaway PostgreSQL cluster and one arclite for the module; hosts A, B, C are separate `memtrace serve`
processes with their own data dirs and the same database URL. Shows: revocation reaches every host at once
(LISTEN) or within the poll; exact dedup whichever host a request lands on; read-your-writes on every host; a
killed host's acknowledged rows delivered by a survivor; one agent from racing session creates; 503 while
the database is down and no acknowledged row lost across its restart.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import pgcluster
from tests.procs import ArcLite, MemtraceServer
from tests.provision import Tenant, add_key, provision
from tests.waiting import wait_until

ARC_ARGS = ["--buffer-age-ms", "5000", "--delete-enabled"]

pytestmark = pytest.mark.skipif(not pgcluster.available(), reason="PostgreSQL 15 or psycopg is not installed")


@dataclass
class Cluster:
    pg: pgcluster.PgCluster
    url: str
    arc: ArcLite
    hosts: list[MemtraceServer]
    tenant: Tenant
    admin_key: str
    base: Path

    def client(self, host: int, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.hosts[host].url, headers={"x-api-key": key or self.tenant.key}, timeout=30)

    def start_host(self, name: str, **env: str) -> MemtraceServer:
        return MemtraceServer(self.base / name, env={"MEMTRACE_METADATA_URL": self.url, **env})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("scaleout")
    pg = pgcluster.PgCluster()
    found: Cluster | None = None
    try:
        url = pg.new_database()
        arc = ArcLite(base / "arc", extra=ARC_ARGS)
        try:
            tenant = provision(url, "shared", arc.url)
            admin_key = add_key(url, tenant.org_id, "ops", "read,write,admin")
            found = Cluster(pg, url, arc, [], tenant, admin_key, base)
            for name in ("a", "b", "c"):
                found.hosts.append(found.start_host(name))
            yield found
        finally:
            for host in found.hosts if found else []:
                host.stop()
            (found.arc if found else arc).stop()  # a test restarts Arc
    finally:
        pg.destroy()


def _memory(content: str | None = None, agent: str = "scaler") -> dict[str, Any]:
    return {"agent_id": agent, "content": content or f"memory {uuid.uuid4().hex}"}


async def _revoke(url: str, key: str) -> None:
    from memtrace.keys import lookup_id
    from memtrace.metadata.pg import open_pg_metadata

    db = await open_pg_metadata(url)
    try:
        found = await db.fetchone("SELECT id FROM api_keys WHERE lookup_id = ?", (lookup_id(key),))
        assert found is not None
        assert await db.api_keys.revoke(found[0])
    finally:
        await db.close()


def _key_id(url: str, key: str) -> str:
    import psycopg

    from memtrace.keys import lookup_id

    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT id FROM api_keys WHERE lookup_id = %s", (lookup_id(key),)).fetchone()
    assert found is not None
    return str(found[0])


def _admin(cluster: Cluster, *args: str) -> Any:
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "memtrace.admin", "--db", cluster.url, *args], capture_output=True,
                          text=True, cwd=cluster.base)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--json" in args else done.stdout


def test_admin_cli_manages_keys_in_the_shared_database(cluster: Cluster) -> None:
    import subprocess
    import sys

    key = add_key(cluster.url, cluster.tenant.org_id, f"cli-{uuid.uuid4().hex[:6]}")
    with cluster.client(2, key) as c:
        assert c.get("/api/v1/memories", params={"limit": 1}).status_code == 200
        done = subprocess.run([sys.executable, "-m", "memtrace.admin", "key", "revoke", "--db", cluster.url,
                               _key_id(cluster.url, key)], capture_output=True, text=True, cwd=cluster.base)
        assert done.returncode == 0, done.stderr
        assert _refused_within(c, 0.2) <= 0.2
    # the journal commands read the shared database too, never a local journal file
    dead = subprocess.run([sys.executable, "-m", "memtrace.admin", "delivery", "dead-letters", "--db", cluster.url,
                           "--json"], capture_output=True, text=True, cwd=cluster.base)
    assert dead.returncode == 0, dead.stderr
    assert dead.stdout.strip() == "[]"
    assert not (cluster.base / "journal.db").exists()


def _refused_within(client: httpx.Client, seconds: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds + 2:
        if client.get("/api/v1/memories", params={"limit": 1}).status_code == 401:
            return time.monotonic() - start
        time.sleep(0.01)
    return float("inf")


def test_revocation_via_one_host_is_refused_on_another_at_once(cluster: Cluster) -> None:
    key = add_key(cluster.url, cluster.tenant.org_id, f"temp-{uuid.uuid4().hex[:6]}")
    with cluster.client(0, key) as a, cluster.client(1, key) as b:
        assert a.get("/api/v1/memories", params={"limit": 1}).status_code == 200
        assert b.get("/api/v1/memories", params={"limit": 1}).status_code == 200  # cached on B now
        asyncio.run(_revoke(cluster.url, key))
        assert _refused_within(b, 0.2) <= 0.2
    # a new key works on every host at once
    fresh = add_key(cluster.url, cluster.tenant.org_id, f"new-{uuid.uuid4().hex[:6]}")
    with cluster.client(2, fresh) as c:
        assert c.get("/api/v1/memories", params={"limit": 1}).status_code == 200


@pytest.mark.slow
def test_without_listen_the_poll_refuses_a_revoked_key_within_1_5_s(cluster: Cluster) -> None:
    host = cluster.start_host("nolisten", MEMTRACE_METADATA_LISTEN="false")
    try:
        key = add_key(cluster.url, cluster.tenant.org_id, f"poll-{uuid.uuid4().hex[:6]}")
        with httpx.Client(base_url=host.url, headers={"x-api-key": key}, timeout=30) as client:
            assert client.get("/api/v1/memories", params={"limit": 1}).status_code == 200
            asyncio.run(_revoke(cluster.url, key))
            assert _refused_within(client, 1.5) <= 1.5
    finally:
        host.stop()


async def _pairs(cluster: Cluster, payloads: list[dict[str, Any]]) -> list[tuple[httpx.Response, httpx.Response]]:
    headers = {"x-api-key": cluster.tenant.key}
    async with httpx.AsyncClient(base_url=cluster.hosts[0].url, headers=headers, timeout=30) as a, \
            httpx.AsyncClient(base_url=cluster.hosts[1].url, headers=headers, timeout=30) as b:
        pairs = await asyncio.gather(*(asyncio.gather(a.post("/api/v1/memories", json=p),
                                                      b.post("/api/v1/memories", json=p)) for p in payloads))
    return [(x, y) for x, y in pairs]


def test_identical_concurrent_posts_on_two_hosts_store_once(cluster: Cluster) -> None:
    pairs = asyncio.run(_pairs(cluster, [_memory() for _ in range(50)]))
    assert [sorted((x.status_code, y.status_code)) for x, y in pairs] == [[201, 409]] * 50
    # duplicates across batches: the same 40 memories posted as a batch to A and to B at once
    batch = {"memories": [_memory() for _ in range(40)]}
    ((x, y),) = asyncio.run(_pairs(cluster, [batch]))
    assert (x.status_code, y.status_code) == (201, 201)
    stored = len(x.json()["memories"]) + len(y.json()["memories"])
    assert stored == 40
    assert x.json()["duplicates"] + y.json()["duplicates"] == 40


def test_a_post_on_one_host_is_readable_on_the_others_at_once(cluster: Cluster) -> None:
    with cluster.client(0) as a, cluster.client(1) as b, cluster.client(2) as c:
        created = a.post("/api/v1/memories", json=_memory(agent="ryw"))
        assert created.status_code == 201, created.text
        memory_id = created.json()["id"]
        for other in (b, c):
            assert other.get(f"/api/v1/memories/{memory_id}").status_code == 200
            listed = other.get("/api/v1/memories", params={"agent_id": "ryw"}).json()
            assert memory_id in {m["id"] for m in listed["memories"]}


async def _create_sessions(cluster: Cluster, agent: str) -> list[httpx.Response]:
    headers = {"x-api-key": cluster.tenant.key}
    async with httpx.AsyncClient(base_url=cluster.hosts[0].url, headers=headers, timeout=30) as a, \
            httpx.AsyncClient(base_url=cluster.hosts[1].url, headers=headers, timeout=30) as b:
        return list(await asyncio.gather(*(c.post("/api/v1/sessions", json={"agent_id": agent})
                                           for _ in range(5) for c in (a, b))))


def test_racing_session_creates_make_one_agent_and_updates_show_everywhere(cluster: Cluster) -> None:
    agent = f"newcomer_{uuid.uuid4().hex[:6]}"
    responses = asyncio.run(_create_sessions(cluster, agent))
    assert {r.status_code for r in responses} == {201}
    with cluster.client(0) as a, cluster.client(1) as b:
        agents = [x for x in b.get("/api/v1/agents").json()["agents"] if x["name"] == agent]
        assert len(agents) == 1
        session_id = responses[0].json()["id"]
        updated = a.put(f"/api/v1/sessions/{session_id}", json={"status": "closed", "metadata": {"k": "v"}})
        assert updated.status_code == 200, updated.text
        seen = b.get(f"/api/v1/sessions/{session_id}").json()
        assert seen["status"] == "closed" and seen["metadata"] == {"k": "v"}


async def _write_on_every_host(cluster: Cluster, agent: str, session: str) -> list[tuple[int, int, int]]:
    """Memories naming `agent` and `session` posted to every host at once, each read back on the next host."""
    headers = {"x-api-key": cluster.tenant.key}

    async def write_then_read_elsewhere(host: int, n: int) -> tuple[int, int, int]:
        other = cluster.hosts[(host + 1) % len(cluster.hosts)].url
        async with httpx.AsyncClient(base_url=cluster.hosts[host].url, headers=headers, timeout=30) as here, \
                httpx.AsyncClient(base_url=other, headers=headers, timeout=30) as there:
            created = await here.post("/api/v1/memories", json={**_memory(agent=agent), "session_id": session})
            return (created.status_code, (await there.get(f"/api/v1/agents/{agent}")).status_code,
                    (await there.get(f"/api/v1/sessions/{session}")).status_code)

    return list(await asyncio.gather(*(write_then_read_elsewhere(host, n)
                                       for n in range(4) for host in range(len(cluster.hosts)))))


def test_memories_racing_on_every_host_register_one_agent_and_session(cluster: Cluster) -> None:
    agent, session = f"named_{uuid.uuid4().hex[:6]}", f"sess_{uuid.uuid4().hex[:6]}"
    assert set(asyncio.run(_write_on_every_host(cluster, agent, session))) == {(201, 200, 200)}
    with cluster.client(2) as c:
        assert [x["name"] for x in c.get("/api/v1/agents").json()["agents"] if x["name"] == agent] == [agent]
        sessions = c.get("/api/v1/sessions", params={"agent_id": agent}).json()["sessions"]
        assert [(s["id"], s["agent_id"], s["status"]) for s in sessions] == [(session, agent, "active")]


def _arc_ids(cluster: Cluster) -> set[str]:
    resp = httpx.post(f"{cluster.arc.url}/api/v1/query", headers={"x-arc-database": cluster.tenant.database},
                      json={"sql": f"SELECT id FROM events WHERE org_id = '{cluster.tenant.org_id}'"})
    assert resp.status_code == 200, resp.text
    return {row[0] for row in resp.json()["data"]}


def _pending(cluster: Cluster, host: int) -> dict[str, Any]:
    with cluster.client(host, cluster.admin_key) as client:
        body = client.get("/health").json()
    return {p["org_id"]: p for p in body.get("pending", [])}


@pytest.mark.slow
def test_a_killed_hosts_pending_rows_are_delivered_by_a_survivor(cluster: Cluster) -> None:
    arc_dir, arc_port = cluster.arc.data_dir, cluster.arc.port
    cluster.arc.stop()
    victim = cluster.start_host("victim")
    try:
        with httpx.Client(base_url=victim.url, headers={"x-api-key": cluster.tenant.key}, timeout=30) as v:
            accepted = []
            for _ in range(5):
                resp = v.post("/api/v1/memories", json={"memories": [_memory(agent="victim") for _ in range(10)]})
                assert resp.status_code == 201, resp.text
                accepted += [m["id"] for m in resp.json()["memories"]]
        victim.kill9()
        waiting = _pending(cluster, 1)[cluster.tenant.org_id]
        assert waiting["rows"] >= len(accepted) and waiting["oldest_age_s"] >= 0
        status = _admin(cluster, "--json", "status")
        assert {o["org_id"]: o["pending_rows"] for o in status}[cluster.tenant.org_id] >= len(accepted)
    finally:
        victim.stop()
        cluster.arc = ArcLite(arc_dir, port=arc_port, extra=ARC_ARGS)
    wait_until(lambda: set(accepted) <= _arc_ids(cluster), "a survivor delivering the killed host's rows",
               5.0 + 5.0 + 5.0, interval=0.25)  # lease TTL + flush + Arc's buffer age
    assert cluster.tenant.org_id not in _pending(cluster, 2)


@pytest.mark.slow
def test_database_down_refuses_with_503_then_resumes_losing_nothing(cluster: Cluster) -> None:
    acknowledged: list[str] = []
    with cluster.client(0) as a:
        for _ in range(5):
            resp = a.post("/api/v1/memories", json=_memory(agent="outage"))
            assert resp.status_code == 201
            acknowledged.append(resp.json()["id"])
        cluster.pg.stop()
        try:
            for _ in range(3):
                resp = a.post("/api/v1/memories", json=_memory(agent="outage"))
                assert resp.status_code == 503, resp.text
                assert int(resp.headers["retry-after"]) >= 1
        finally:
            cluster.pg.start()
        deadline = time.monotonic() + 10
        while True:
            resp = a.post("/api/v1/memories", json=_memory(agent="outage"))
            if resp.status_code == 201:
                acknowledged.append(resp.json()["id"])
                break
            assert resp.status_code == 503 and time.monotonic() < deadline, resp.text
            time.sleep(0.2)
    with cluster.client(1) as b:
        for memory_id in acknowledged:
            assert b.get(f"/api/v1/memories/{memory_id}").status_code == 200


def test_delivery_buckets_are_spread_over_the_live_hosts(cluster: Cluster) -> None:
    import psycopg

    deadline = time.monotonic() + 5
    while True:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            rows = conn.execute("SELECT holder, count(*) FROM delivery_lease WHERE expires_at > now()"
                                " GROUP BY holder").fetchall()
        counts = sorted(int(n) for _, n in rows)
        if len(counts) == len(cluster.hosts) and sum(counts) == 16:
            break
        assert time.monotonic() < deadline, f"buckets not spread: {counts}"
        time.sleep(0.25)
    assert max(counts) <= -(-16 // len(cluster.hosts))


def _sqlite_host(data: Path, arc_url: str) -> tuple[Tenant, list[str]]:
    """A one-host deployment's SQLite files: an org with a key, and 3 rows still waiting for Arc."""
    from memtrace.ids import memory_id
    from memtrace.journal import Journal, JournalConfig
    from memtrace.memory.dedup import dedup_key
    from memtrace.rows import MemoryRow

    tenant = provision(data / "memtrace.db", "legacy", arc_url)

    async def journal_rows() -> list[str]:
        journal = await Journal.open(JournalConfig(data / "journal.db", 3600, 10.0, 1000))
        try:
            now = time.time_ns() // 1000
            rows = [MemoryRow(id=memory_id(now), time_us=now, org_id=tenant.org_id, agent_id="old",
                              session_id="", memory_type="episodic", event_type="general", content=f"c{i}",
                              metadata_json="{}", tags_csv="", dedup_key=dedup_key("old", "general", f"c{i}"),
                              importance=0.5, parent_id="") for i in range(3)]
            await journal.append(tenant.org_id, rows)
            return [r.id for r in rows]
        finally:
            await journal.close()

    return tenant, asyncio.run(journal_rows())


def _migrate(data: Path, url: str) -> Any:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "memtrace.admin", "migrate", "--db", str(data / "memtrace.db"),
                           "--journal", str(data / "journal.db"), "--to", url], capture_output=True, text=True,
                          cwd=data)


def test_admin_migrate_copies_metadata_pending_rows_and_ledger(cluster: Cluster, tmp_path: Path) -> None:
    import sqlite3

    from memtrace.journal.lease import holder_id

    tenant, ids = _sqlite_host(tmp_path, cluster.arc.url)
    target = cluster.pg.new_database()
    meta = sqlite3.connect(tmp_path / "memtrace.db")
    with meta:  # an audit line from before: the copied ids must not collide with the next ones
        meta.execute("INSERT INTO deletion_audit (at, org_id, key_id, kind, filter_json, rows, state)"
                     " VALUES ('2026-01-01T00:00:00.000000Z', ?, 'key_x', 'delete', '{}', 1, 'done')",
                     (tenant.org_id,))
    meta.close()
    lease = sqlite3.connect(tmp_path / "journal.db")
    with lease:
        lease.execute("INSERT INTO lease VALUES ('deliverer', ?, ?)", (holder_id(), time.time() + 60))
    refused = _migrate(tmp_path, target)
    assert refused.returncode == 1 and "still uses" in refused.stderr
    with lease:
        lease.execute("DELETE FROM lease")
    lease.close()
    done = _migrate(tmp_path, target)
    assert done.returncode == 0, done.stderr
    assert _migrate(tmp_path, target).returncode == 1  # never into a database that holds orgs
    host = MemtraceServer(tmp_path / "pg-host", env={"MEMTRACE_METADATA_URL": target})
    try:
        with httpx.Client(base_url=host.url, headers={"x-api-key": tenant.key}, timeout=30) as client:
            listed = client.get("/api/v1/memories", params={"agent_id": "old"})
            assert listed.status_code == 200, listed.text
            assert {m["id"] for m in listed.json()["memories"]} == set(ids)
            again = client.post("/api/v1/memories", json={"agent_id": "old", "content": "c1"})
            assert again.status_code == 409  # the ledger came along, with the ids of the memories
            assert again.json() == {"error": "duplicate memory", "memory_id": ids[1]}
            forgotten = client.delete(f"/api/v1/memories/{ids[2]}")
            assert forgotten.status_code == 204, forgotten.text  # audited after the copied audit lines
    finally:
        host.stop()


def _race(url: str, keys: list[str], out: Any) -> None:
    """One process's share of the race: every key, in 40 concurrent requests of 500 rows."""
    from memtrace.journal import JournalConfig
    from memtrace.journal.pg import PgJournal
    from tests.test_journal import row

    async def run() -> int:
        journal = await PgJournal.open_url(JournalConfig(Path("unused"), 3600, 10.0, 1_000_000), url)
        try:
            chunks = [keys[i:i + 500] for i in range(0, len(keys), 500)]
            results = await asyncio.gather(*(journal.append("race", [row("race", k) for k in chunk])
                                             for chunk in chunks))
            return sum(len(r.stored) for r in results)
        finally:
            await journal.close()

    out.put(asyncio.run(run()))


def test_two_processes_racing_20000_keys_store_each_once(cluster: Cluster) -> None:
    import multiprocessing

    import psycopg

    url = cluster.pg.new_database()
    keys = [f"key{i:05d}" for i in range(20_000)]
    ctx = multiprocessing.get_context("spawn")
    out: Any = ctx.Queue()
    # opposite orders: without one lock order the two would deadlock on each other's keys
    procs = [ctx.Process(target=_race, args=(url, order, out)) for order in (keys, keys[::-1])]
    for p in procs:
        p.start()
    stored = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sum(stored) == 20_000
    with psycopg.connect(url) as conn:
        counts = conn.execute("SELECT (SELECT count(*) FROM journal), (SELECT count(DISTINCT dedup_key) FROM dedup),"
                              " (SELECT n FROM org_pending WHERE org_id = 'race')").fetchone()
    assert counts == (20_000, 20_000, 20_000)


def test_a_memory_forgotten_on_one_host_is_gone_on_every_host(cluster: Cluster) -> None:
    content = f"forget me {uuid.uuid4().hex}"
    with cluster.client(0) as a, cluster.client(1) as b, cluster.client(2) as c:
        first = a.post("/api/v1/memories", json=_memory(content, agent="forgetful"))
        assert first.status_code == 201, first.text
        memory_id = first.json()["id"]
        deleted = b.delete(f"/api/v1/memories/{memory_id}")
        assert deleted.status_code == 204, deleted.text
        for host in (a, b, c):
            assert host.get(f"/api/v1/memories/{memory_id}").status_code == 404
            listed = host.get("/api/v1/memories", params={"agent_id": "forgetful"}).json()["memories"]
            assert memory_id not in {m["id"] for m in listed}
        again = c.post("/api/v1/memories", json=_memory(content, agent="forgetful"))
        assert again.status_code == 201, again.text  # the ledger key went with the memory


def test_a_memory_written_on_one_host_is_ranked_and_recalled_on_the_others_at_once(cluster: Cluster) -> None:
    agent = f"ranked_{uuid.uuid4().hex[:8]}"
    word = f"zorb{uuid.uuid4().hex[:6]}"  # a term no other memory has
    with cluster.client(0) as a, cluster.client(1) as b, cluster.client(2) as c:
        filler = a.post("/api/v1/memories", json={"memories": [_memory(f"routine note {i}", agent) for i in range(5)]})
        assert filler.status_code == 201, filler.text
        created = a.post("/api/v1/memories", json=_memory(f"The {word} gauge read 42 at dawn", agent))
        assert created.status_code == 201, created.text
        memory_id = created.json()["id"]
        for other in (b, c):
            found = other.post("/api/v1/search", json={"query": f"what did the {word} gauge read?",
                                                       "agent_id": agent}).json()["results"]
            assert [m["id"] for m in found] == [memory_id] and found[0]["score"] > 0
            recalled = other.post("/api/v1/recall", json={"query": word, "agent_id": agent}).json()
            assert memory_id in {m["id"] for m in recalled["memories"]}
        assert b.delete(f"/api/v1/memories/{memory_id}").status_code in (202, 204)
        for host in (a, b, c):
            assert host.post("/api/v1/search", json={"query": word, "agent_id": agent}).json()["results"] == []
