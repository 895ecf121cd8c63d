"""Tenancy matrix: two orgs sharing ONE Arc database and measurement, so only the org filter keeps them
apart. Every route × every foreign id or filter: nothing of the other org leaks, in bodies, counts or errors.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.procs import ArcLite, MemtraceServer, wait_until_pruned
from tests.provision import Tenant, provision


@dataclass
class World:
    server: MemtraceServer
    a: Tenant
    b: Tenant
    b_agent: dict[str, Any]
    b_session: dict[str, Any]
    b_memories: list[dict[str, Any]]
    secret: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("tenancy")
    arc = ArcLite(base / "arc")
    data: Path = base / "mt"
    data.mkdir()
    a = provision(data / "memtrace.db", "org-a", arc.url, "shared")
    b = provision(data / "memtrace.db", "org-b", arc.url, "shared")
    server = MemtraceServer(data, env={"MEMTRACE_JOURNAL_RETENTION_S": "0.5"})
    secret = f"secret{uuid.uuid4().hex}"
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": b.key}) as client:
            agent = client.post("/api/v1/agents", json={"name": "bagent"}).json()
            session = client.post("/api/v1/sessions", json={"agent_id": "bagent"}).json()
            memories = client.post("/api/v1/memories", json={"memories": [
                {"agent_id": "bagent", "session_id": session["id"], "content": f"{secret} {i}",
                 "tags": ["btag"], "event_type": "error" if i == 0 else "general",
                 "memory_type": "decision" if i == 1 else "episodic"} for i in range(3)]}).json()["memories"]
        yield World(server, a, b, agent, session, memories, secret)
    finally:
        server.stop()
        arc.stop()


def clean(resp: httpx.Response, world: World) -> None:
    """No trace of org B in the answer, beyond echoing what the caller itself sent."""
    asked = str(resp.request.url) + resp.request.content.decode()
    for token in (world.secret, world.b.org_id, world.b_agent["id"], world.b_session["id"], "btag"):
        if token not in asked:
            assert token not in resp.text, f"{resp.request.method} {resp.request.url}: {resp.text[:300]}"


@pytest.mark.parametrize("settled", [False, True], ids=["from-journal", "from-arc"])
def test_org_a_sees_nothing_of_org_b(world: World, settled: bool) -> None:
    if settled:
        wait_until_pruned(world.server.data_dir, world.b.org_id)  # B's rows only in Arc: Arc alone answers
    bid, bname, sid = world.b_agent["id"], world.b_agent["name"], world.b_session["id"]
    mem_id = world.b_memories[0]["id"]
    with httpx.Client(base_url=world.server.url, headers={"x-api-key": world.a.key}) as a:
        def empty_list(resp: httpx.Response, key: str = "memories") -> None:
            assert resp.status_code == 200, resp.text
            assert resp.json()[key] == [] and resp.json()["count"] == 0
            clean(resp, world)

        def not_found(resp: httpx.Response) -> None:
            assert resp.status_code == 404, resp.text
            clean(resp, world)

        not_found(a.get(f"/api/v1/memories/{mem_id}"))
        for params in ({"agent_id": bname}, {"agent_id": bid}, {"session_id": sid}, {"tags": "btag"}, {}):
            empty_list(a.get("/api/v1/memories", params={**params, "since": "1h"}))
        for body in ({"content_contains": world.secret}, {"agent_id": bname}, {"session_id": sid},
                     {"tags": ["btag"]}, {"event_types": ["error"]}, {"memory_types": ["decision"]}):
            empty_list(a.post("/api/v1/search", json=body), "results")
        for ident in (bid, bname):
            not_found(a.get(f"/api/v1/agents/{ident}"))
            not_found(a.delete(f"/api/v1/agents/{ident}"))
            empty_list(a.get(f"/api/v1/agents/{ident}/memories"))
            stats = a.get(f"/api/v1/agents/{ident}/stats")
            assert stats.status_code == 200
            body = stats.json()
            assert (body["memory_count"], body["memories_24h"], body["errors_24h"]) == (0, 0, 0)
            assert (body["session_count"], body["active_sessions"], body["memory_types"]) == (0, 0, {})
            clean(stats, world)
            empty_list(a.get("/api/v1/sessions", params={"agent_id": ident}), "sessions")
        agents = a.get("/api/v1/agents")
        assert all(agent["org_id"] == world.a.org_id for agent in agents.json()["agents"])
        clean(agents, world)
        sessions = a.get("/api/v1/sessions")
        assert all(s["org_id"] == world.a.org_id for s in sessions.json()["sessions"])
        clean(sessions, world)
        not_found(a.get(f"/api/v1/sessions/{sid}"))
        not_found(a.put(f"/api/v1/sessions/{sid}", json={"status": "closed"}))
        empty_list(a.get(f"/api/v1/sessions/{sid}/memories"))
        context = a.post(f"/api/v1/sessions/{sid}/context", json={})
        assert context.status_code == 200 and context.json()["memory_count"] == 0
        assert world.secret not in context.text
    # B still has everything, untouched
    with httpx.Client(base_url=world.server.url, headers={"x-api-key": world.b.key}) as b:
        assert b.get(f"/api/v1/agents/{bid}").status_code == 200
        assert b.get(f"/api/v1/sessions/{sid}").json()["status"] == "active"
        assert b.get("/api/v1/memories", params={"agent_id": bname}).json()["count"] == 3
        assert b.get(f"/api/v1/agents/{bname}/stats").json()["memory_count"] == 3


def test_writing_with_a_foreign_session_id_stays_in_the_writers_org(world: World) -> None:
    sid = world.b_session["id"]
    with httpx.Client(base_url=world.server.url, headers={"x-api-key": world.a.key}) as a:
        created = a.post("/api/v1/memories", json={"agent_id": "aagent", "session_id": sid, "content": "mine"})
        assert created.status_code == 201
        assert created.json()["org_id"] == world.a.org_id
        assert a.get(f"/api/v1/sessions/{sid}/memories").json()["count"] == 1
    with httpx.Client(base_url=world.server.url, headers={"x-api-key": world.b.key}) as b:
        contents = [m["content"] for m in b.get(f"/api/v1/sessions/{sid}/memories").json()["memories"]]
        assert "mine" not in contents and len(contents) == 3


def test_the_org_cannot_be_chosen_by_the_client(world: World) -> None:
    with httpx.Client(base_url=world.server.url, headers={"x-api-key": world.a.key}) as a:
        created = a.post("/api/v1/memories", json={"agent_id": "x", "content": "who am i", "org_id": world.b.org_id})
        assert created.status_code == 201 and created.json()["org_id"] == world.a.org_id
        refused = a.get("/api/v1/memories", params={"org_id": world.b.org_id, "agent_id": "x"})
        assert refused.status_code == 400 and "unknown query parameter 'org_id'" in refused.json()["error"]
        listed = a.get("/api/v1/memories", params={"agent_id": "x"})
        assert [m["org_id"] for m in listed.json()["memories"]] == [world.a.org_id]
