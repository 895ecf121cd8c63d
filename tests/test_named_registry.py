"""Agents and sessions named by memories exist (api.md, "First-hour expectations"), on both metadata backends.

Over HTTP: the README tour's memory makes `researcher` and `sess_demo` readable at once; writers racing on two
workers make one of each; an erase removes them and no memory written before it brings them back. In process: two
`Names` (two workers' or hosts' views) over one real store and journal, SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from memtrace.journal import Journal, JournalConfig
from memtrace.metadata.db import LATEST_VERSION, MetadataDB, open_metadata
from memtrace.names import Key, Names, Seen, note_rows
from memtrace.rows import MemoryFilter, MemoryRow
from memtrace.timeutil import format_us, now_us
from tests.conftest import Stack, running_stack
from tests.provision import provision
from tests.waiting import wait_until

TOUR = {"agent_id": "researcher", "session_id": "sess_demo", "event_type": "page_crawled",
        "content": "Crawled https://example.com, found 3 products", "tags": ["crawl"]}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def test_the_readme_tour_makes_its_agent_and_session_exist(api: httpx.Client) -> None:
    memory = api.post("/api/v1/memories", json=TOUR)
    assert memory.status_code == 201, memory.text
    written = memory.json()["time"]
    found = api.get("/api/v1/agents/researcher")
    assert found.status_code == 200, found.text
    agent = found.json()
    assert agent["id"].startswith("agent_")
    assert (agent["name"], agent["description"], agent["config"]) == ("researcher", "", {})
    assert agent["created_at"] == agent["last_active_at"] == written
    found = api.get("/api/v1/sessions/sess_demo")
    assert found.status_code == 200, found.text
    session = found.json()
    assert (session["id"], session["agent_id"], session["status"], session["closed_at"], session["metadata"]) == (
        "sess_demo", "researcher", "active", None, {})
    assert session["created_at"] == written
    assert agent["id"] in [a["id"] for a in api.get("/api/v1/agents").json()["agents"]]
    for agent_id in ("researcher", agent["id"]):
        listed = api.get("/api/v1/sessions", params={"agent_id": agent_id}).json()
        assert [s["id"] for s in listed["sessions"]] == ["sess_demo"]
    stats = api.get("/api/v1/agents/researcher/stats").json()
    assert (stats["agent_id"], stats["memory_count"], stats["session_count"], stats["active_sessions"]) == (
        agent["id"], 1, 1, 1)
    for path in ("/api/v1/agents/researcher/timeline", "/api/v1/sessions/sess_demo/timeline"):
        timeline = api.get(path, params={"since": "1h", "bucket": "1h"})
        assert timeline.status_code == 200, timeline.text
        assert sum(b["count"] for b in timeline.json()["buckets"]) == 1


def test_names_of_registered_agents_and_sessions_register_nothing_more(api: httpx.Client) -> None:
    name = unique("known")
    agent = api.post("/api/v1/agents", json={"name": name}).json()
    session = api.post("/api/v1/sessions", json={"agent_id": name}).json()
    for agent_id in (name, agent["id"]):  # the agent by its name and by its id
        assert api.post("/api/v1/memories", json={"agent_id": agent_id, "session_id": session["id"],
                                                  "content": f"as {agent_id}"}).status_code == 201
    agents = api.get("/api/v1/agents").json()["agents"]
    assert [a["id"] for a in agents if agent["id"] in (a["id"], a["name"]) or a["name"] == name] == [agent["id"]]
    assert api.get(f"/api/v1/sessions/{session['id']}").json() == session


def _last_active(api: httpx.Client, name: str) -> str:
    found = api.get(f"/api/v1/agents/{name}")
    assert found.status_code == 200, found.text
    return str(found.json()["last_active_at"])


def _post(api: httpx.Client, agent_id: str, content: str, session_id: str | None = None) -> dict[str, Any]:
    created = api.post("/api/v1/memories", json={"agent_id": agent_id, "session_id": session_id, "content": content})
    assert created.status_code == 201, created.text
    return dict(created.json())


def test_an_erase_removes_what_memories_registered_for_good(api: httpx.Client) -> None:
    name, sid, witness = unique("erased"), unique("sess"), unique("witness")
    _post(api, name, "before", sid)
    _post(api, witness, "w1")
    assert api.get(f"/api/v1/agents/{name}").status_code == 200
    assert api.delete(f"/api/v1/agents/{name}", params={"erase": "true"}).status_code == 204
    assert api.get(f"/api/v1/agents/{name}").status_code == 404
    assert api.get(f"/api/v1/sessions/{sid}").status_code == 404
    assert name not in [a["name"] for a in api.get("/api/v1/agents").json()["agents"]]
    assert api.get("/api/v1/sessions", params={"agent_id": name}).json()["sessions"] == []
    # The flush after the erase (it moves the witness's last_active_at only after registering) must not bring the
    # erased agent back from the memory written before the erase.
    before = _last_active(api, witness)
    _post(api, witness, "w2")
    wait_until(lambda: _last_active(api, witness) > before, what="an activity flush")
    assert api.get(f"/api/v1/agents/{name}").status_code == 404
    assert api.get(f"/api/v1/sessions/{sid}").status_code == 404


def test_a_memory_right_after_an_erase_registers_its_agent_again_at_once(api: httpx.Client) -> None:
    name, sid = unique("again"), unique("sess")
    _post(api, name, "before", sid)
    assert api.delete(f"/api/v1/agents/{name}", params={"erase": "true"}).status_code == 204
    # nothing cached by the worker says they still exist: registered before the 201
    again = _post(api, name, "after", sid)
    assert api.get(f"/api/v1/agents/{name}").json()["created_at"] == again["time"]
    assert api.get(f"/api/v1/sessions/{sid}").json()["created_at"] == again["time"]


def test_writers_racing_on_two_workers_make_one_agent_and_one_session(tmp_path: Path) -> None:
    name, sid = unique("racer"), unique("sess")
    with running_stack(tmp_path, "race", workers=2) as stack:

        def write_then_read(n: int) -> tuple[int, int, int]:
            with stack.client() as c:  # a connection each: the kernel spreads them over both workers
                created = c.post("/api/v1/memories", json={"agent_id": name, "session_id": sid, "content": f"m{n}"})
                return (created.status_code, c.get(f"/api/v1/agents/{name}").status_code,
                        c.get(f"/api/v1/sessions/{sid}").status_code)

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(write_then_read, range(48)))
        assert set(answers) == {(201, 200, 200)}
        with stack.client() as c:
            assert [a["name"] for a in c.get("/api/v1/agents").json()["agents"]] == [name]
            assert [s["id"] for s in c.get("/api/v1/sessions", params={"agent_id": name}).json()["sessions"]] == [sid]


# --- two workers' views over one store, in process: SQLite and PostgreSQL -----------------------------------------


@dataclass
class Store:
    a: MetadataDB
    b: MetadataDB  # another worker's (or host's) connection to the same store
    journal: Journal
    org_id: str

    def names(self, db: MetadataDB) -> Names:
        return Names(db.agents, db.sessions, self.journal.forgotten)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    config = JournalConfig(tmp_path / "journal.db", dedup_window_s=3600, retention_s=10.0, max_pending_per_org=1000)
    if request.param == "postgres":
        from memtrace.journal.pg import PgJournal
        from memtrace.metadata.pg import open_pg_metadata

        url = request.getfixturevalue("pg_cluster").new_database()
        a, b = await open_pg_metadata(url), await open_pg_metadata(url)
        journal: Journal = await PgJournal.open_url(config, url)
    else:
        a, b = await open_metadata(tmp_path / "memtrace.db"), await open_metadata(tmp_path / "memtrace.db")
        journal = await Journal.open(config)
    org = await a.orgs.create(unique("org"))
    try:
        yield Store(a, b, journal, org.id)
    finally:
        await journal.close()
        await a.close()
        await b.close()


def _row(org_id: str, agent_id: str, session_id: str, time_us: int) -> MemoryRow:
    return MemoryRow(id=f"mem_{uuid.uuid4().hex}", time_us=time_us, org_id=org_id, agent_id=agent_id,
                     session_id=session_id, memory_type="episodic", event_type="observation", content="x",
                     metadata_json="{}", tags_csv="", dedup_key=uuid.uuid4().hex, importance=0.5, parent_id="")


def _seen(org_id: str, *rows: MemoryRow) -> tuple[dict[Key, Seen], dict[Key, Seen]]:
    agents: dict[Key, Seen] = {}
    sessions: dict[Key, Seen] = {}
    note_rows(agents, sessions, org_id, rows)
    return agents, sessions


async def test_racing_registrations_make_exactly_one_agent_and_session(store: Store) -> None:
    org, name, sid = store.org_id, unique("racer"), unique("sess")
    views = [store.names(db) for db in (store.a, store.b) for _ in range(4)]
    t = now_us()
    await asyncio.gather(*(view.register(org, [_row(org, name, sid, t + i)]) for i, view in enumerate(views)))
    agents = [a for a in await store.a.agents.list(org) if a.name == name]
    assert len(agents) == 1
    sessions = await store.b.sessions.list(org, (name, agents[0].id))
    assert [(s.id, s.agent_id, s.status) for s in sessions] == [(sid, name, "active")]
    assert not any(view.unknown(org, [_row(org, name, sid, t)]) for view in views)


async def test_an_erase_elsewhere_is_undone_by_a_later_memory_not_by_earlier_ones(store: Store) -> None:
    org, name, sid = store.org_id, unique("erased"), unique("sess")
    here, there = store.names(store.a), store.names(store.b)
    before = _row(org, name, sid, now_us())
    await here.register(org, [before])
    await there.register(org, [before])
    agent = await store.a.agents.get(org, name)
    # erased through `here`, as api/forget.erase_agent does: the deletion is recorded first, then the rows go
    aliases = (agent.id, name)
    await store.journal.record_deletion(org, MemoryFilter(agent_ids=aliases, until_us=now_us()), claim_s=5.0)
    await store.a.sessions.delete_for_agent(org, aliases)
    assert await store.a.agents.delete(org, agent.id)
    here.forget_org(org)
    assert here.unknown(org, [before])
    assert not there.unknown(org, [before])  # `there` still believes they exist
    await there.settle(*_seen(org, before))  # its flush of the memory written before the erase
    assert await store.b.agents.find(org, name) is None
    assert await store.b.sessions.find(org, sid) is None
    assert there.unknown(org, [before])  # and it no longer believes so
    after = _row(org, name, sid, now_us() + 1)
    await there.settle(*_seen(org, before, after))  # a flush holding a memory written after the erase
    again = await store.b.agents.find(org, name)
    session = await store.b.sessions.find(org, sid)
    assert again is not None and session is not None
    assert (again.created_at, session.created_at, session.agent_id) == (format_us(after.time_us),) * 2 + (name,)


def test_a_failed_registration_is_logged_and_left_to_the_flush(tmp_path: Path, caplog: Any) -> None:
    async def run() -> None:
        db = await open_metadata(tmp_path / "memtrace.db")
        journal = await Journal.open(JournalConfig(tmp_path / "journal.db", 3600, 10.0, 1000))
        names = Names(db.agents, db.sessions, journal.forgotten)
        org = await db.orgs.create("o")
        row = _row(org.id, "late", "sess_late", now_us())
        await db.close()  # the metadata store is gone while the memory is already stored
        await names.register(org.id, [row])
        assert names.unknown(org.id, [row])
        await journal.close()

    asyncio.run(run())
    assert "registering the agents and sessions of org" in caplog.text


# --- session ids are per org (schema v5) ------------------------------------------------------------------------------


def test_two_orgs_naming_the_same_session_each_have_their_own(api: httpx.Client, stack: Stack) -> None:
    other = provision(stack.db, unique("other"), stack.arc.url)
    sid = unique("shared")
    with stack.client(other.key) as them:
        # the server loads the new org's Arc binding within its metadata poll
        wait_until(lambda: them.get("/api/v1/memories", params={"limit": 1}).status_code == 200, what="the binding")
        theirs = them.post("/api/v1/memories", json={"agent_id": "writer", "session_id": sid, "content": "theirs"})
        assert theirs.status_code == 201, theirs.text
        mine = _post(api, "reader", "mine", sid)
        assert api.get(f"/api/v1/sessions/{sid}").json()["agent_id"] == "reader"
        assert them.get(f"/api/v1/sessions/{sid}").json()["agent_id"] == "writer"
        assert api.get(f"/api/v1/sessions/{sid}").json()["created_at"] == mine["time"]
        closed = them.put(f"/api/v1/sessions/{sid}", json={"status": "closed"})
        assert closed.status_code == 200, closed.text
        assert api.get(f"/api/v1/sessions/{sid}").json()["status"] == "active"


async def _sessions_of_two_orgs(db: MetadataDB) -> None:
    for org in ("a", "b"):
        await db.sessions.register_named([(org, "sess_same", f"agent_{org}", now_us(), now_us())])
    found = [await db.sessions.get(org, "sess_same") for org in ("a", "b")]
    assert [(s.org_id, s.agent_id) for s in found] == [("a", "agent_a"), ("b", "agent_b")]


async def test_a_version_4_sqlite_store_keeps_its_sessions_and_keys_them_per_org(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    old = await open_metadata(path, schema_version=4)
    for org in ("a", "b"):
        await old.orgs.create(org.upper(), id=org)
    first = await old.sessions.create("a", "bot", {"k": 1})
    second = await old.sessions.create("a", "bot")
    await old.close()
    db = await open_metadata(path)
    try:
        assert await db.schema_version() == LATEST_VERSION == 5
        assert [s.id for s in await db.sessions.list("a")] == [second.id, first.id]  # newest first, order kept
        assert await db.sessions.get("a", first.id) == first
        indexes = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"sessions_org_created", "sessions_org_agent"} <= indexes
        await _sessions_of_two_orgs(db)
    finally:
        await db.close()


async def test_a_version_4_postgres_store_keys_its_sessions_per_org(pg_cluster: Any) -> None:
    from memtrace.metadata.pg import open_pg_metadata

    url = pg_cluster.new_database()
    db = await open_pg_metadata(url)
    for org in ("a", "b"):
        await db.orgs.create(org.upper(), id=org)
    kept = await db.sessions.create("a", "bot")
    async with db.transaction() as tx:  # as a version 4 store had it: session ids unique across orgs
        await tx.execute("ALTER TABLE sessions DROP CONSTRAINT sessions_pkey")
        await tx.execute("ALTER TABLE sessions ADD CONSTRAINT sessions_pkey PRIMARY KEY (id)")
        await tx.execute("UPDATE schema_version SET version = 4 WHERE id = 1")
    await db.close()
    db = await open_pg_metadata(url)
    try:
        assert await db.schema_version() == LATEST_VERSION
        assert await db.sessions.get("a", kept.id) == kept
        await _sessions_of_two_orgs(db)
    finally:
        await db.close()
