"""Agents, sessions, stats and session context over real HTTP."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import Stack
from tests.waiting import wait_until


def unique(prefix: str = "a") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def test_agent_lifecycle(api: httpx.Client, stack: Stack) -> None:
    name = unique("bot")
    resp = api.post("/api/v1/agents", json={"name": name, "description": "crawler", "config": {"model": "x"}})
    assert resp.status_code == 201, resp.text
    agent = resp.json()
    assert agent["id"].startswith("agent_")
    assert agent["org_id"] == stack.tenant.org_id
    assert (agent["name"], agent["description"], agent["config"]) == (name, "crawler", {"model": "x"})
    assert api.post("/api/v1/agents", json={"name": name}).status_code == 409
    assert api.get(f"/api/v1/agents/{agent['id']}").json() == agent
    assert api.get(f"/api/v1/agents/{name}").json() == agent
    listed = api.get("/api/v1/agents").json()
    assert listed["count"] == len(listed["agents"])
    assert listed["agents"][0]["id"] == agent["id"]  # newest first
    assert api.delete(f"/api/v1/agents/{name}").status_code == 204
    assert api.get(f"/api/v1/agents/{name}").status_code == 404
    assert api.delete(f"/api/v1/agents/{name}").json() == {"error": "agent not found"}


def test_agent_name_is_validated(api: httpx.Client) -> None:
    resp = api.post("/api/v1/agents", json={"name": "has space"})
    assert resp.status_code == 400
    assert "name" in resp.json()["error"]


def test_agent_memories_and_stats(api: httpx.Client) -> None:
    name = unique("bot")
    agent = api.post("/api/v1/agents", json={"name": name}).json()
    session = api.post("/api/v1/sessions", json={"agent_id": name}).json()
    api.post("/api/v1/memories", json={"memories": [
        {"agent_id": name, "content": "did a thing", "session_id": session["id"]},
        {"agent_id": agent["id"], "content": "decided", "memory_type": "decision", "event_type": "decision"},
        {"agent_id": name, "content": "boom", "event_type": "error"},
    ]})
    memories = api.get(f"/api/v1/agents/{name}/memories").json()
    assert sorted(m["content"] for m in memories["memories"]) == ["boom", "decided", "did a thing"]
    stats = api.get(f"/api/v1/agents/{agent['id']}/stats").json()
    assert stats["agent_id"] == agent["id"]
    assert stats["memory_count"] == 3
    assert stats["memories_24h"] == 3
    assert stats["errors_24h"] == 1
    assert stats["memory_types"] == {"episodic": 2, "decision": 1}
    assert (stats["session_count"], stats["active_sessions"]) == (1, 1)
    # last_active_at follows memory writes (coalesced, within a couple of seconds)
    wait_until(lambda: api.get(f"/api/v1/agents/{name}").json()["last_active_at"] != agent["last_active_at"],
               "last_active_at moving", 5)


def test_an_agent_named_only_by_a_memory_exists(api: httpx.Client) -> None:
    name = unique("anon")
    memory = api.post("/api/v1/memories", json={"agent_id": name, "content": "from nowhere"}).json()
    agent = api.get(f"/api/v1/agents/{name}").json()
    assert (agent["name"], agent["created_at"]) == (name, memory["time"])
    assert api.get(f"/api/v1/agents/{name}/memories").json()["count"] == 1
    stats = api.get(f"/api/v1/agents/{name}/stats").json()
    assert (stats["agent_id"], stats["memory_count"], stats["session_count"]) == (agent["id"], 1, 0)


def test_session_lifecycle(api: httpx.Client, stack: Stack) -> None:
    agent = unique("solo")
    resp = api.post("/api/v1/sessions", json={"agent_id": agent, "metadata": {"task": "crawl"}})
    assert resp.status_code == 201, resp.text
    session = resp.json()
    assert session["id"].startswith("sess_")
    assert (session["org_id"], session["agent_id"], session["status"]) == (stack.tenant.org_id, agent, "active")
    assert session["metadata"] == {"task": "crawl"}
    assert session["closed_at"] is None
    # an agent_id that named no agent registers it
    registered = api.get(f"/api/v1/agents/{agent}").json()
    assert registered["name"] == agent
    assert api.get(f"/api/v1/sessions/{session['id']}").json() == session
    by_name = api.get("/api/v1/sessions", params={"agent_id": agent}).json()
    by_id = api.get("/api/v1/sessions", params={"agent_id": registered["id"]}).json()
    assert [s["id"] for s in by_name["sessions"]] == [session["id"]] == [s["id"] for s in by_id["sessions"]]
    closed = api.put(f"/api/v1/sessions/{session['id']}", json={"status": "closed"}).json()
    assert closed["status"] == "closed"
    assert closed["closed_at"] is not None
    assert api.put(f"/api/v1/sessions/{session['id']}", json={"status": "paused"}).status_code == 400
    missing = api.put("/api/v1/sessions/sess_000000", json={"status": "closed"})
    assert missing.status_code == 404
    assert api.get("/api/v1/sessions/sess_000000").status_code == 404


def test_session_memories_and_context(api: httpx.Client) -> None:
    session = api.post("/api/v1/sessions", json={"agent_id": unique("ctx")}).json()
    sid = session["id"]
    api.post("/api/v1/memories", json={"memories": [
        {"agent_id": "crawler", "session_id": sid, "event_type": "page_crawled", "content": "Crawled page one"},
        {"agent_id": "crawler", "session_id": sid, "memory_type": "decision", "event_type": "decision",
         "content": "Skip pagination", "metadata": {"reasoning": "only 2 pages deep"}},
        {"agent_id": "crawler", "session_id": sid, "event_type": "error", "content": "Rate limited\nbacking off"},
        {"agent_id": "crawler", "session_id": sid, "memory_type": "entity", "event_type": "fact",
         "content": "example.com sells 3 products"},
        {"agent_id": "crawler", "content": "not in the session"},
    ]})
    listed = api.get(f"/api/v1/sessions/{sid}/memories").json()
    assert listed["count"] == 4
    resp = api.post(f"/api/v1/sessions/{sid}/context", json={})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["session_id"] == sid
    assert body["memory_count"] == 4
    lines = body["context"].split("\n")
    assert lines[0] == f"## Session Context ({sid})"
    headers = [line for line in lines if line.startswith("### ")]
    assert headers == ["### Recent Actions (1)", "### Decisions Made (1)", "### Errors (1)", "### Known Entities (1)"]
    assert any(line.endswith("] decision: Skip pagination (why: only 2 pages deep)") for line in lines)
    assert any(line.endswith("] error: Rate limited backing off") for line in lines)
    only_decisions = api.post(f"/api/v1/sessions/{sid}/context", json={"include_types": ["decision"]}).json()
    assert only_decisions["memory_count"] == 1
    assert "### Recent Actions" not in only_decisions["context"]


def test_context_of_unknown_session_is_just_the_header(api: httpx.Client) -> None:
    body = api.post("/api/v1/sessions/sess_nothing/context", json={"max_tokens": 100}).json()
    assert body["context"].strip() == "## Session Context (sess_nothing)"
    assert body["memory_count"] == 0


def test_context_respects_max_tokens(api: httpx.Client) -> None:
    session = api.post("/api/v1/sessions", json={"agent_id": unique("budget")}).json()
    sid = session["id"]
    api.post("/api/v1/memories", json={"memories": [
        {"agent_id": "w", "session_id": sid, "content": f"step {i} " + "x" * 60, "importance": i / 100}
        for i in range(50)
    ]})
    body = api.post(f"/api/v1/sessions/{sid}/context", json={"max_tokens": 200}).json()
    assert -(-len(body["context"]) // 4) <= 200
    assert "### Recent Actions (50)" in body["context"]
    assert "more)" in body["context"]
    assert body["memory_count"] == 50
