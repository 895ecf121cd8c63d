"""Forgetting against the real stack: Granian with 2 workers, arclite over HTTP with deletes enabled, two
orgs in ONE Arc database and measurement. Every assertion also looks behind Memtrace, into arclite."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from memtrace.arc.encode import encode_rows
from memtrace.ids import memory_id
from memtrace.rows import MemoryRow
from tests.procs import ArcLite, MemtraceServer, undelivered_rows, unfinished_deletions, wait_until_settled
from tests.provision import Tenant, add_key, provision
from tests.waiting import wait_until

DB = "shared"
SERVER_ENV = {"MEMTRACE_JOURNAL_RETENTION_S": "1.0", "MEMTRACE_ARC_CONNECT_TIMEOUT_S": "0.5",
              "MEMTRACE_ARC_REQUEST_TIMEOUT_S": "5"}


@dataclass
class World:
    arc: ArcLite
    server: MemtraceServer
    data: Path
    a: Tenant
    b: Tenant
    a_read_only: str
    disabled_arc: ArcLite
    c: Tenant  # bound to an arclite that refuses deletes

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers={"x-api-key": key}, timeout=30)


def arc_rows(arc: ArcLite, where: str, database: str = DB) -> list[list[Any]]:
    """Rows of the shared measurement straight from arclite (bypassing Memtrace)."""
    sql = f"SELECT id, org_id, content FROM events WHERE {where} ORDER BY id"
    resp = httpx.post(f"{arc.url}/api/v1/query", json={"sql": sql}, headers={"x-arc-database": database})
    if resp.status_code == 400 and "does not exist" in resp.text:
        return []
    assert resp.status_code == 200, resp.text
    data: list[list[Any]] = resp.json()["data"]
    return data


def uniq() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("forget")
    arc = ArcLite(base / "arc", extra=["--delete-enabled"])
    disabled = ArcLite(base / "arc-disabled")
    data = base / "mt"
    data.mkdir()
    try:
        a = provision(data / "memtrace.db", "org-a", arc.url, DB)
        b = provision(data / "memtrace.db", "org-b", arc.url, DB)
        c = provision(data / "memtrace.db", "org-c", disabled.url, DB)
        read_only = add_key(data / "memtrace.db", a.org_id, "a-reader", "read")
        server = MemtraceServer(data, workers=2, env=SERVER_ENV)
        try:
            yield World(arc, server, data, a, b, read_only, disabled, c)
        finally:
            server.stop()
    finally:
        disabled.stop()
        arc.stop()


def write(c: httpx.Client, content: str, **extra: Any) -> dict[str, Any]:
    resp = c.post("/api/v1/memories", json={"agent_id": "bot", "content": content, **extra})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def in_arc(world: World, memory_id: str) -> int:
    return len(arc_rows(world.arc, f"id = '{memory_id}'"))


def gone_everywhere(world: World, c: httpx.Client, memory: dict[str, Any]) -> None:
    """No read shows the memory: get, list, search, stats, context."""
    assert c.get(f"/api/v1/memories/{memory['id']}").status_code == 404
    listed = c.get("/api/v1/memories", params={"agent_id": memory["agent_id"], "limit": 1000}).json()
    assert memory["id"] not in {m["id"] for m in listed["memories"]}
    found = c.post("/api/v1/search", json={"content_contains": memory["content"]}).json()
    assert found["count"] == 0, found
    if memory["session_id"]:
        ctx = c.post(f"/api/v1/sessions/{memory['session_id']}/context", json={}).json()
        assert memory["content"] not in ctx["context"]


# --- the routes' refusals --------------------------------------------------------------------------------


def test_refusals(world: World) -> None:
    with world.client(world.a.key) as a, world.client(world.b.key) as b, world.client(world.a_read_only) as ro:
        mine = write(a, f"refusal {uniq()}")
        theirs = write(b, f"theirs {uniq()}")
        assert ro.delete(f"/api/v1/memories/{mine['id']}").status_code == 403
        assert ro.post("/api/v1/forget", json={"agent_id": "bot"}).status_code == 403
        assert ro.delete("/api/v1/agents/bot", params={"erase": "true"}).status_code == 403
        assert a.delete("/api/v1/memories/mem_01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 404
        assert a.delete("/api/v1/memories/not-an-id").status_code == 404
        assert a.delete(f"/api/v1/memories/{theirs['id']}").status_code == 404  # another org's id
        for body in ({}, {"dry_run": True}, {"agentid": "bot"}, {"tags": "x"}, {"since": "yesterday-ish"}):
            resp = a.post("/api/v1/forget", json=body)
            assert resp.status_code == 400, (body, resp.text)
            assert resp.json()["error"]
        # Nothing was deleted by any refusal: both memories are still readable and (once delivered) in Arc.
        assert a.get(f"/api/v1/memories/{mine['id']}").status_code == 200
        assert b.get(f"/api/v1/memories/{theirs['id']}").status_code == 200
        wait_until(lambda: in_arc(world, theirs["id"]) == 1 and in_arc(world, mine["id"]) == 1, "delivery")


def test_an_arc_with_deletes_disabled_is_named_and_nothing_changes(world: World) -> None:
    with world.client(world.c.key) as c:
        memory = write(c, f"undeletable {uniq()}")
        wait_until(lambda: len(arc_rows(world.disabled_arc, f"id = '{memory['id']}'")) == 1, "delivery")
        for resp in (c.delete(f"/api/v1/memories/{memory['id']}"), c.post("/api/v1/forget", json={"agent_id": "bot"}),
                     c.post("/api/v1/forget", json={"agent_id": "bot", "dry_run": True})):
            assert resp.status_code == 409, resp.text
            assert "delete.enabled=true in arc.toml" in resp.json()["error"]
        assert c.get(f"/api/v1/memories/{memory['id']}").status_code == 200
        assert len(arc_rows(world.disabled_arc, f"id = '{memory['id']}'")) == 1


# --- deleting one memory ---------------------------------------------------------------------------------


def test_delete_right_after_write_drops_the_pending_row(world: World) -> None:
    with world.client(world.a.key) as a:
        session = a.post("/api/v1/sessions", json={"agent_id": "bot"}).json()
        memory = write(a, f"pending {uniq()}", session_id=session["id"])
        resp = a.delete(f"/api/v1/memories/{memory['id']}")
        assert resp.status_code == 204, resp.text
        gone_everywhere(world, a, memory)
        # It never reaches Arc, or is deleted again once Arc's buffer age has passed.
        wait_until_settled(world.data, world.a.org_id)
        assert in_arc(world, memory["id"]) == 0
        gone_everywhere(world, a, memory)
        assert a.delete(f"/api/v1/memories/{memory['id']}").status_code == 404


def test_delete_after_delivery_removes_it_from_arc(world: World) -> None:
    with world.client(world.a.key) as a:
        memory = write(a, f"delivered {uniq()}")
        wait_until(lambda: in_arc(world, memory["id"]) == 1, "delivery")
        before = a.get("/api/v1/agents/bot/stats").json()["memory_count"]
        assert a.delete(f"/api/v1/memories/{memory['id']}").status_code == 204
        assert in_arc(world, memory["id"]) == 0  # Arc confirmed before the 204
        gone_everywhere(world, a, memory)
        assert a.get("/api/v1/agents/bot/stats").json()["memory_count"] == before - 1


def test_same_content_can_be_written_again_after_forgetting(world: World) -> None:
    with world.client(world.a.key) as a:
        content = f"again {uniq()}"
        first = write(a, content)
        assert a.post("/api/v1/memories", json={"agent_id": "bot", "content": content}).status_code == 409
        assert a.delete(f"/api/v1/memories/{first['id']}").status_code == 204
        second = write(a, content)  # the dedup ledger entry went with the memory
        assert second["id"] != first["id"]
        wait_until(lambda: in_arc(world, second["id"]) == 1, "delivery")
        # And once more after delivery: the key is released from the ledger by reading it back from Arc.
        assert a.delete(f"/api/v1/memories/{second['id']}").status_code == 204
        third = write(a, content)
        assert a.get(f"/api/v1/memories/{third['id']}").json()["content"] == content
        wait_until_settled(world.data, world.a.org_id)  # the settle re-apply must not touch the new memory
        assert in_arc(world, third["id"]) == 1
        assert a.get(f"/api/v1/memories/{third['id']}").status_code == 200


# --- forgetting by filter --------------------------------------------------------------------------------


def test_forget_by_filter_with_dry_run(world: World) -> None:
    agent = f"fa{uniq()}"
    with world.client(world.a.key) as a:
        rows = a.post("/api/v1/memories", json={"memories": [
            {"agent_id": agent, "content": f"m{i} {uniq()}", "tags": ["gdpr"] if i % 2 else ["keep"],
             "memory_type": "decision" if i < 2 else "episodic"} for i in range(6)]}).json()["memories"]
        tagged = {r["id"] for r in rows if "gdpr" in r["tags"]}
        dry = a.post("/api/v1/forget", json={"agent_id": agent, "tags": ["gdpr"], "dry_run": True})
        assert dry.status_code == 200, dry.text
        assert dry.json() == {"matched": 3, "deleted": 0, "dry_run": True, "pending": False}
        wait_until(lambda: len(arc_rows(world.arc, f"agent_id = '{agent}'")) == 6, "delivery")
        done = a.post("/api/v1/forget", json={"agent_id": agent, "tags": ["gdpr"]})
        assert done.status_code == 200, done.text
        assert done.json() == {"matched": 3, "deleted": 3, "dry_run": False, "pending": False}
        left = {r[0] for r in arc_rows(world.arc, f"agent_id = '{agent}'")}
        assert left == {r["id"] for r in rows} - tagged
        listed = a.get("/api/v1/memories", params={"agent_id": agent}).json()["memories"]
        assert {m["id"] for m in listed} == left
        by_type = a.post("/api/v1/forget", json={"agent_id": agent, "memory_types": ["decision"]}).json()
        assert by_type["deleted"] == 1  # decisions were rows 0 and 1; row 1 (gdpr) is already gone
        assert len(arc_rows(world.arc, f"agent_id = '{agent}'")) == 2


def test_two_orgs_in_one_measurement_forget_only_their_own(world: World) -> None:
    content = f"identical {uniq()}"
    with world.client(world.a.key) as a, world.client(world.b.key) as b:
        mine, theirs = write(a, content), write(b, content)
        wait_until(lambda: len(arc_rows(world.arc, f"content = '{content}'")) == 2, "delivery")
        done = a.post("/api/v1/forget", json={"agent_id": "bot", "since": "1h"}).json()
        assert done["deleted"] >= 1
        assert arc_rows(world.arc, f"content = '{content}'") == [[theirs["id"], world.b.org_id, content]]
        assert b.get(f"/api/v1/memories/{theirs['id']}").status_code == 200
        assert a.get(f"/api/v1/memories/{mine['id']}").status_code == 404
        # And org B forgetting the same agent name leaves org A's newer rows alone.
        again = write(a, content)
        assert b.post("/api/v1/forget", json={"agent_id": "bot"}).status_code == 200
        wait_until(lambda: in_arc(world, again["id"]) == 1, "delivery")
        assert a.get(f"/api/v1/memories/{again['id']}").status_code == 200


def test_agent_erase(world: World) -> None:
    name = f"erase{uniq()}"
    with world.client(world.a.key) as a, world.client(world.b.key) as b:
        agent = a.post("/api/v1/agents", json={"name": name}).json()
        session = a.post("/api/v1/sessions", json={"agent_id": name}).json()
        write(a, f"e1 {uniq()}", agent_id=name, session_id=session["id"])
        write(a, f"e2 {uniq()}", agent_id=agent["id"])
        other = write(b, f"e3 {uniq()}", agent_id=name)  # same name in the other org
        wait_until(lambda: len(arc_rows(world.arc, f"agent_id IN ('{name}', '{agent['id']}')")) == 3,
                   "delivery")
        assert a.delete(f"/api/v1/agents/{name}", params={"erase": "true"}).status_code == 204
        assert a.get(f"/api/v1/agents/{agent['id']}").status_code == 404
        assert a.get(f"/api/v1/sessions/{session['id']}").status_code == 404
        assert a.get("/api/v1/memories", params={"agent_id": name}).json()["memories"] == []
        assert arc_rows(world.arc, f"agent_id IN ('{name}', '{agent['id']}')") == [
            [other["id"], world.b.org_id, other["content"]]]
        assert b.get(f"/api/v1/memories/{other['id']}").status_code == 200


def test_deletions_are_audited(world: World) -> None:
    import asyncio

    from memtrace.metadata.db import open_metadata

    async def entries() -> list[Any]:
        db = await open_metadata(world.data / "memtrace.db")
        try:
            return await db.audit.list(world.a.org_id)
        finally:
            await db.close()

    with world.client(world.a.key) as a:
        memory = write(a, f"audited {uniq()}")
        wait_until(lambda: in_arc(world, memory["id"]) == 1, "delivery")
        assert a.delete(f"/api/v1/memories/{memory['id']}").status_code == 204
        assert in_arc(world, memory["id"]) == 0
    found = [e for e in asyncio.run(entries()) if e.filter.get("ids") == [memory["id"]]]
    assert len(found) == 1 and found[0].kind == "memory" and found[0].rows == 1 and found[0].state == "applied"
    assert found[0].key_id and world.a.key not in found[0].key_id


def solo(tmp_path: Path, env: dict[str, str] | None = None) -> tuple[ArcLite, Path, Tenant, MemtraceServer]:
    """arclite (deletes enabled) and a 2-worker Memtrace of one org `solo`, for tests that stop or kill them."""
    arc = ArcLite(tmp_path / "arc", extra=["--delete-enabled"])
    data = tmp_path / "mt"
    data.mkdir()
    tenant = provision(data / "memtrace.db", "solo", arc.url, DB)
    return arc, data, tenant, MemtraceServer(data, workers=2, env=env or SERVER_ENV)


# --- outages ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_arc_stopped_then_kill_9_the_deletion_survives_and_is_applied(tmp_path: Path) -> None:
    arc, data, tenant, server = solo(tmp_path)
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=30) as c:
            kept = write(c, f"kept {uniq()}", agent_id="keeper")
            doomed = [write(c, f"doomed {i} {uniq()}", agent_id="doomed") for i in range(3)]
            wait_until(lambda: len(arc_rows(arc, "agent_id IN ('doomed', 'keeper')")) == 4, "delivery")
            arc.stop()
            resp = c.post("/api/v1/forget", json={"agent_id": "doomed"})
            assert resp.status_code == 202, resp.text
            assert resp.json()["pending"] is True
            late = write(c, f"late {uniq()}", agent_id="doomed")  # written after the forget: not forgotten
            waiting = write(c, f"waiting {uniq()}", agent_id="keeper")  # only in the journal: Arc is down
            assert c.delete(f"/api/v1/memories/{waiting['id']}").status_code == 202
            assert c.get(f"/api/v1/memories/{doomed[0]['id']}").status_code == 503  # reads need Arc
        server.kill9()
        arc = ArcLite(tmp_path / "arc", port=arc.port, extra=["--delete-enabled"])
        # Arc is back but nobody applied the deletion yet: Arc still holds the rows.
        assert len(arc_rows(arc, "agent_id = 'doomed'")) == 3
        server = MemtraceServer(data, workers=2, env=SERVER_ENV)
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=30) as c:
            for memory in doomed:
                assert c.get(f"/api/v1/memories/{memory['id']}").status_code == 404
            wait_until(lambda: {r[0] for r in arc_rows(arc, "agent_id = 'doomed'")} == {late["id"]},
                       "the pending deletion applied after the restart")
            assert {m["id"] for m in c.get("/api/v1/memories", params={"agent_id": "doomed"}).json()["memories"]
                    } == {late["id"]}
            assert c.get(f"/api/v1/memories/{kept['id']}").status_code == 200
            assert c.get(f"/api/v1/memories/{waiting['id']}").status_code == 404
            wait_until(lambda: undelivered_rows(data, tenant.org_id) == 0, "the journal rows delivered")
            # ...and the dropped one never was
            assert in_arc_db(arc, waiting["id"]) == 0
            assert {r[0] for r in arc_rows(arc, "agent_id = 'keeper'")} == {kept["id"]}
    finally:
        server.stop()
        arc.stop()


def test_a_settling_deletion_hides_rows_arc_still_holds_on_every_workers_first_read(tmp_path: Path) -> None:
    """Reads bet that an org has no pending deletion and ask Arc at once; when it has one, that answer must be
    dropped. Here Arc holds a forgotten agent's row (written straight into it after the forget was applied,
    dated before it) while the deletion settles: no read on either worker may show it."""
    arc, _, tenant, server = solo(tmp_path, {**SERVER_ENV, "MEMTRACE_JOURNAL_RETENTION_S": "30"})
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=30) as c:
            session = c.post("/api/v1/sessions", json={"agent_id": "ghost"}).json()["id"]
            first = write(c, f"ghost {uniq()}", agent_id="ghost", session_id=session)
            wait_until(lambda: in_arc_db(arc, first["id"]) == 1, "delivery")
            assert c.post("/api/v1/forget", json={"agent_id": "ghost"}).status_code in (200, 202, 204)
            backdated = time.time_ns() // 1000 - 60_000_000
            row = MemoryRow(id=memory_id(backdated), time_us=backdated, org_id=tenant.org_id, agent_id="ghost",
                            session_id=session, memory_type="episodic", event_type="general",
                            content=f"ghost resurfacing {uniq()}", metadata_json="{}", tags_csv="",
                            dedup_key=uuid.uuid4().hex, importance=0.5, parent_id="")
            resp = httpx.post(f"{arc.url}/api/v1/write/msgpack", content=encode_rows("events", [row]),
                              headers={"Content-Type": "application/msgpack", "x-arc-database": DB})
            assert resp.status_code in (200, 204), resp.text
            httpx.post(f"{arc.url}/api/v1/write/line-protocol/flush", headers={"x-arc-database": DB})
            assert in_arc_db(arc, row.id) == 1
            kept = write(c, f"kept {uniq()}", agent_id="keeper", session_id=session)
            for _ in range(6):  # several requests: both workers answer some
                assert c.get(f"/api/v1/memories/{row.id}").status_code == 404
                listed = c.get("/api/v1/memories", params={"agent_id": "ghost"}).json()
                assert listed["memories"] == [], listed
                found = c.post("/api/v1/search", json={"content_contains": "ghost resurfacing"}).json()
                assert found["count"] == 0, found
                ctx = c.post(f"/api/v1/sessions/{session}/context", json={}).json()
                assert "ghost" not in ctx["context"] and kept["content"] in ctx["context"], ctx
    finally:
        server.stop()
        arc.stop()


@pytest.mark.slow
def test_delete_while_arclite_buffers_rows(tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "arc", extra=["--delete-enabled", "--buffer-age-ms", "3000"])
    data = tmp_path / "mt"
    data.mkdir()
    tenant = provision(data / "memtrace.db", "solo", arc.url, DB)
    server = MemtraceServer(data, workers=2, env={**SERVER_ENV, "MEMTRACE_JOURNAL_RETENTION_S": "4"})
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=30) as c:
            memory = write(c, f"buffered {uniq()}")
            wait_until(lambda: undelivered_rows(data, tenant.org_id, memory["id"]) == 0, "delivery to arclite")
            assert in_arc_db(arc, memory["id"]) == 0  # arclite holds it in its buffer (not queryable yet)
            assert c.delete(f"/api/v1/memories/{memory['id']}").status_code == 204

            def never_resurfaces() -> bool:  # across the buffer age, until the deletion settled
                assert c.get(f"/api/v1/memories/{memory['id']}").status_code == 404
                return unfinished_deletions(data, tenant.org_id) == 0

            wait_until(never_resurfaces, "the deletion applied again past arclite's buffer age")
            assert in_arc_db(arc, memory["id"]) == 0
    finally:
        server.stop()
        arc.stop()


def in_arc_db(arc: ArcLite, memory_id: str) -> int:
    return len(arc_rows(arc, f"id = '{memory_id}'"))


# --- retention, purge and the audit trail through the admin CLI ------------------------------------------


def admin(world: World, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "memtrace", "admin", *args, "--db", str(world.data / "memtrace.db")],
                          capture_output=True, text=True, timeout=60, cwd=world.data)
    assert done.returncode == 0, done.stderr
    return done.stdout


def write_straight_into_arc(world: World, org_id: str, agent: str, contents: list[str], age_days: float,
                            memory_type: str = "episodic") -> list[str]:
    """Rows `age_days` old, written into arclite directly (Memtrace never accepts backdated memories)."""
    now = time.time_ns() // 1000 - int(age_days * 86_400_000_000)
    rows = [MemoryRow(id=memory_id(now + i), time_us=now + i, org_id=org_id, agent_id=agent, session_id="",
                      memory_type=memory_type, event_type="general", content=text, metadata_json="{}", tags_csv="",
                      dedup_key=uuid.uuid4().hex, importance=0.5, parent_id="") for i, text in enumerate(contents)]
    resp = httpx.post(f"{world.arc.url}/api/v1/write/msgpack", content=encode_rows("events", rows),
                      headers={"Content-Type": "application/msgpack", "x-arc-database": DB})
    assert resp.status_code in (200, 204), resp.text
    return [r.id for r in rows]


def test_retention_run_removes_old_rows_of_that_org_only(world: World) -> None:
    agent = f"ret{uniq()}"
    old_a = write_straight_into_arc(world, world.a.org_id, agent, ["old a1", "old a2"], age_days=10)
    old_decision = write_straight_into_arc(world, world.a.org_id, agent, ["old decision"], 10, "decision")
    old_b = write_straight_into_arc(world, world.b.org_id, agent, ["old b"], age_days=10)
    with world.client(world.a.key) as a:
        fresh = write(a, f"fresh {uniq()}", agent_id=agent)
        wait_until(lambda: len(arc_rows(world.arc, f"agent_id = '{agent}'")) == 5, "rows in arclite")
        admin(world, "org", "retention", world.a.org_id, "--days", "7", "--type", "decision=365")
        assert "7d, decision=365d" in admin(world, "org", "show", world.a.org_id)
        assert "7d, decision=365d" in admin(world, "org", "list")
        out = admin(world, "retention", "run", "--org", world.a.org_id)
        assert f"org {world.a.org_id}: 2 " in out, out
        left = {r[0] for r in arc_rows(world.arc, f"agent_id = '{agent}'")}
        assert left == {fresh["id"], *old_decision, *old_b}
        assert {m["id"] for m in a.get("/api/v1/memories", params={"agent_id": agent, "since": "30d"}).json()[
            "memories"]} == {fresh["id"], *old_decision}
        assert not set(old_a) & left
        assert "nothing to remove" in admin(world, "retention", "run", "--org", world.a.org_id)
        admin(world, "org", "retention", world.a.org_id, "--clear")
        assert "(keep forever)" in admin(world, "org", "show", world.a.org_id)
    audit = json.loads(admin(world, "audit", "list", "--org", world.a.org_id, "--json"))
    assert any(e["kind"] == "retention" and e["rows"] == 2 and e["key_id"] == "retention" for e in audit)


def test_org_delete_purge_removes_its_rows_from_arc_and_the_journal(world: World, tmp_path: Path) -> None:
    victim = provision(world.data / "memtrace.db", f"victim{uniq()}", world.arc.url, DB)
    with world.client(victim.key) as v, world.client(world.b.key) as b:
        # the server picks the new org up through the change counter
        wait_until(lambda: v.get("/api/v1/memories").status_code == 200, "the new org's key accepted")
        content = f"purge {uniq()}"
        write(v, content)
        survivor = write(b, content)
        wait_until(lambda: len(arc_rows(world.arc, f"content = '{content}'")) == 2, "delivery")
        out = admin(world, "org", "delete", victim.org_id, "--purge", "--yes")
        assert "purged 1 rows from its Arc database" in out, out
        assert arc_rows(world.arc, f"org_id = '{victim.org_id}'") == []
        assert arc_rows(world.arc, f"content = '{content}'") == [[survivor["id"], world.b.org_id, content]]
    audit = json.loads(admin(world, "audit", "list", "--org", victim.org_id, "--json"))
    assert [e["kind"] for e in audit] == ["purge"]


@pytest.mark.slow
def test_a_forget_larger_than_arcs_max_rows_per_delete_is_split_by_time(tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "arc", extra=["--delete-enabled", "--delete-max-rows-per-delete", "4",
                                           "--delete-confirmation-threshold", "2"])
    data = tmp_path / "mt"
    data.mkdir()
    tenant = provision(data / "memtrace.db", "solo", arc.url, DB)
    server = MemtraceServer(data, workers=2, env=SERVER_ENV)
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=30) as c:
            for i in range(15):
                write(c, f"many {i}", agent_id="many")
            keep = write(c, "other agent", agent_id="few")
            wait_until(lambda: len(arc_rows(arc, "agent_id IN ('many', 'few')")) == 16, "delivery")
            dry = c.post("/api/v1/forget", json={"agent_id": "many", "dry_run": True}).json()
            assert dry["matched"] == 15
            done = c.post("/api/v1/forget", json={"agent_id": "many"})
            assert done.status_code == 200, done.text
            assert done.json()["deleted"] == 15
            assert arc_rows(arc, "agent_id IN ('many', 'few')") == [[keep["id"], tenant.org_id, "other agent"]]
    finally:
        server.stop()
        arc.stop()


@pytest.mark.slow
def test_the_server_applies_retention_policies_in_the_background(tmp_path: Path) -> None:
    arc, data, tenant, server = solo(tmp_path, {**SERVER_ENV, "MEMTRACE_RETENTION_INTERVAL_S": "0.5"})
    try:
        world = World(arc, server, data, tenant, tenant, "", arc, tenant)
        old = write_straight_into_arc(world, tenant.org_id, "aging", ["ten days old"], age_days=10)
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=30) as c:
            fresh = write(c, "fresh", agent_id="aging")
            wait_until(lambda: len(arc_rows(arc, "agent_id = 'aging'")) == 2, "rows in arclite")
            admin(world, "org", "retention", tenant.org_id, "--days", "3")
            wait_until(lambda: {r[0] for r in arc_rows(arc, "agent_id = 'aging'")} == {fresh["id"]},
                       "the background retention run")
            assert c.get(f"/api/v1/memories/{old[0]}").status_code == 404
        audit = json.loads(admin(world, "audit", "list", "--json"))
        assert [(e["kind"], e["rows"]) for e in audit] == [("retention", 1)]
    finally:
        server.stop()
        arc.stop()


@pytest.mark.slow
def test_kill_9_while_a_forget_runs(tmp_path: Path) -> None:
    """Whatever moment the kill hits, the forget is either recorded and finished after the restart, or not
    recorded at all and a retry does it; it is never half-applied with rows reading back."""
    arc, data, tenant, server = solo(tmp_path)
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=30) as c:
            for start in range(0, 3000, 1000):
                batch = [{"agent_id": "victim", "content": f"row {i}"} for i in range(start, start + 1000)]
                assert c.post("/api/v1/memories", json={"memories": batch}).status_code == 201
            wait_until(lambda: len(arc_rows(arc, "agent_id = 'victim'")) == 3000, "delivery")
            pending = [write(c, f"pending {i}", agent_id="victim") for i in range(20)]  # some still journaled

        def forget() -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{server.url}/api/v1/forget", json={"agent_id": "victim"},
                           headers={"x-api-key": tenant.key}, timeout=30)

        thread = threading.Thread(target=forget)
        thread.start()
        time.sleep(0.02)  # the point of the test: the kill lands while the forget runs, at whatever stage
        server.kill9()
        thread.join()
        server = MemtraceServer(data, workers=2, env=SERVER_ENV)
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=30) as c:
            if not unfinished_deletions(data, tenant.org_id):  # the kill came before the deletion was recorded
                assert c.post("/api/v1/forget", json={"agent_id": "victim"}).status_code == 200
            # a recorded deletion is due 5 s (CLAIM_S) after its request, then applied again once settled
            wait_until_settled(data, tenant.org_id)
            assert arc_rows(arc, "agent_id = 'victim'") == []
            assert c.get("/api/v1/memories", params={"agent_id": "victim"}).json()["memories"] == []
            for memory in pending:
                assert c.get(f"/api/v1/memories/{memory['id']}").status_code == 404
    finally:
        server.stop()
        arc.stop()
