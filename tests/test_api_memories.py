"""Memory routes end to end: real server, real arclite, real SQLite."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.conftest import Stack
from tests.provision import provision

MEMORY_FIELDS = {"id", "time", "org_id", "agent_id", "session_id", "memory_type", "event_type", "content",
                 "metadata", "tags", "dedup_key", "importance", "parent_id"}
RFC3339_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def unique(prefix: str = "a") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def test_create_returns_every_field(api: httpx.Client, stack: Stack) -> None:
    agent = unique()
    resp = api.post("/api/v1/memories", json={
        "agent_id": agent, "content": "User prefers dark mode", "memory_type": "entity", "event_type": "preference",
        "session_id": "sess_1", "metadata": {"source": "chat", "n": 1}, "tags": ["prefs", "ui"], "importance": 0.9,
        "parent_id": "mem_parent",
    })
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body.keys() >= MEMORY_FIELDS
    assert re.match(r"^mem_[0-9A-HJKMNP-TV-Z]{26}$", body["id"])
    assert RFC3339_US.match(body["time"])
    assert body["org_id"] == stack.tenant.org_id
    assert body["metadata"] == {"source": "chat", "n": 1}
    assert body["tags"] == ["prefs", "ui"]
    assert body["importance"] == 0.9
    assert re.match(r"^[0-9a-f]{32}$", body["dedup_key"])
    fetched = api.get(f"/api/v1/memories/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == body


def test_defaults(api: httpx.Client) -> None:
    body = api.post("/api/v1/memories", json={"agent_id": unique(), "content": "defaults"}).json()
    assert body["memory_type"] == "episodic"
    assert body["event_type"] == "general"
    assert body["importance"] == 0.5
    assert body["metadata"] == {}
    assert body["tags"] == []


def test_list_shows_a_memory_immediately(api: httpx.Client) -> None:
    agent = unique()
    created = api.post("/api/v1/memories", json={"agent_id": agent, "content": "visible at once"}).json()
    listed = api.get("/api/v1/memories", params={"agent_id": agent}).json()
    assert [m["id"] for m in listed["memories"]] == [created["id"]]
    assert listed["count"] == 1
    assert listed["has_more"] is False


def test_duplicate_single_is_409_naming_the_memory_it_duplicates(api: httpx.Client) -> None:
    payload = {"agent_id": unique(), "content": "same thing twice"}
    first = api.post("/api/v1/memories", json=payload)
    assert first.status_code == 201
    resp = api.post("/api/v1/memories", json=payload)
    assert resp.status_code == 409
    assert resp.json() == {"error": "duplicate memory", "memory_id": first.json()["id"]}


def test_a_batch_names_the_memories_its_skipped_items_duplicate(api: httpx.Client) -> None:
    agent = unique()
    stored = api.post("/api/v1/memories", json={"agent_id": agent, "content": "stored before"}).json()
    items = [{"agent_id": agent, "content": "new one"}, {"agent_id": agent, "content": "stored before"},
             {"agent_id": agent, "content": "new one"}, {"agent_id": agent, "content": "new two"}]
    resp = api.post("/api/v1/memories", json={"memories": items})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    new_one = next(m["id"] for m in body["memories"] if m["content"] == "new one")
    assert (body["count"], body["duplicates"]) == (2, 2)
    assert body["skipped"] == [{"index": 1, "memory_id": stored["id"]}, {"index": 2, "memory_id": new_one}]
    clean = api.post("/api/v1/memories", json={"memories": [{"agent_id": agent, "content": "fresh"}]}).json()
    assert (clean["duplicates"], clean["skipped"]) == (0, [])


def test_client_dedup_key_is_honoured(api: httpx.Client) -> None:
    agent = unique()
    key = unique("k")
    first = api.post("/api/v1/memories", json={"agent_id": agent, "content": "one", "dedup_key": key})
    assert first.json()["dedup_key"] == key
    second = api.post("/api/v1/memories", json={"agent_id": agent, "content": "other text", "dedup_key": key})
    assert second.status_code == 409


def test_batch_counts_and_skips_duplicates(api: httpx.Client) -> None:
    agent = unique()
    api.post("/api/v1/memories", json={"agent_id": agent, "content": "m0"})
    resp = api.post("/api/v1/memories", json={"memories": [
        {"agent_id": agent, "content": "m0"},
        {"agent_id": agent, "content": "m1"},
        {"agent_id": agent, "content": "m2"},
        {"agent_id": agent, "content": "m2"},
    ]})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["count"] == 2
    assert body["duplicates"] == 2
    assert [m["content"] for m in body["memories"]] == ["m1", "m2"]


def test_batch_is_all_or_nothing_and_names_the_index(api: httpx.Client) -> None:
    agent = unique()
    resp = api.post("/api/v1/memories", json={"memories": [
        {"agent_id": agent, "content": "fine"},
        {"agent_id": agent, "content": "bad", "importance": 7},
    ]})
    assert resp.status_code == 400
    assert "memories[1].importance" in resp.json()["error"]
    assert api.get("/api/v1/memories", params={"agent_id": agent}).json()["count"] == 0


@pytest.mark.parametrize(("payload", "field"), [
    ({"agent_id": "1bad", "content": "x"}, "agent_id"),
    ({"agent_id": "a", "content": ""}, "content"),
    ({"agent_id": "a"}, "content"),
    ({"agent_id": "a", "content": "x", "memory_type": "dream"}, "memory_type"),
    ({"agent_id": "a", "content": "x", "event_type": "has space"}, "event_type"),
    ({"agent_id": "a", "content": "x", "tags": ["ok", "not ok"]}, "tags[1]"),
    ({"agent_id": "a", "content": "x", "tags": [f"t{i}" for i in range(33)]}, "tags"),
    ({"agent_id": "a", "content": "x", "importance": -0.1}, "importance"),
    ({"agent_id": "a", "content": "x", "metadata": [1, 2]}, "metadata"),
    ({"agent_id": "a", "content": "x", "session_id": "s p a c e"}, "session_id"),
    ({"agent_id": "a", "content": "x", "parent_id": "'; DROP TABLE x"}, "parent_id"),
])
def test_validation_names_the_field(api: httpx.Client, payload: dict[str, object], field: str) -> None:
    resp = api.post("/api/v1/memories", json=payload)
    assert resp.status_code == 400, resp.text
    assert field in resp.json()["error"]


def test_size_caps_are_413(api: httpx.Client) -> None:
    big = api.post("/api/v1/memories", json={"agent_id": "a", "content": "x" * (64 * 1024 + 1)})
    assert big.status_code == 413
    assert "content" in big.json()["error"]
    meta = api.post("/api/v1/memories", json={"agent_id": "a", "content": "x", "metadata": {"k": "v" * 70000}})
    assert meta.status_code == 413
    assert "metadata" in meta.json()["error"]


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"offset": "-1"}, "offset"),
    ({"order": "sideways"}, "order"), ({"since": "yesterday"}, "since"), ({"until": "12x"}, "until"),
    ({"memory_type": "dream"}, "memory_type"), ({"tags": "a,b c"}, "tags"), ({"agent_id": "x y"}, "agent_id"),
])
def test_list_params_are_validated(api: httpx.Client, params: dict[str, str], field: str) -> None:
    resp = api.get("/api/v1/memories", params=params)
    assert resp.status_code == 400, resp.text
    assert field in resp.json()["error"]


def test_unknown_memory_is_404(api: httpx.Client) -> None:
    for memory_id in ("mem_01JZZZZZZZZZZZZZZZZZZZZZZZ", "nope"):
        resp = api.get(f"/api/v1/memories/{memory_id}")
        assert resp.status_code == 404
        assert resp.json() == {"error": "memory not found"}


def test_filters_pagination_and_order(api: httpx.Client) -> None:
    agent = unique()
    items = [{"agent_id": agent, "content": f"item {i}", "tags": ["even" if i % 2 == 0 else "odd", "all"],
              "memory_type": "decision" if i % 3 == 0 else "episodic"} for i in range(7)]
    assert api.post("/api/v1/memories", json={"memories": items}).status_code == 201
    page1 = api.get("/api/v1/memories", params={"agent_id": agent, "limit": 3}).json()
    page2 = api.get("/api/v1/memories", params={"agent_id": agent, "limit": 3, "offset": 3}).json()
    page3 = api.get("/api/v1/memories", params={"agent_id": agent, "limit": 3, "offset": 6}).json()
    contents = [m["content"] for p in (page1, page2, page3) for m in p["memories"]]
    assert contents == [f"item {i}" for i in range(6, -1, -1)]
    assert (page1["has_more"], page2["has_more"], page3["has_more"]) == (True, True, False)
    asc = api.get("/api/v1/memories", params={"agent_id": agent, "order": "asc", "limit": 2}).json()
    assert [m["content"] for m in asc["memories"]] == ["item 0", "item 1"]
    even = api.get("/api/v1/memories", params={"agent_id": agent, "tags": "even,all"}).json()
    assert sorted(m["content"] for m in even["memories"]) == ["item 0", "item 2", "item 4", "item 6"]
    # exact tag match: "al" is a substring of "all" but not a tag
    assert api.get("/api/v1/memories", params={"agent_id": agent, "tags": "al"}).json()["count"] == 0
    decisions = api.get("/api/v1/memories", params={"agent_id": agent, "memory_type": "decision"}).json()
    assert sorted(m["content"] for m in decisions["memories"]) == ["item 0", "item 3", "item 6"]


def test_search_content_is_literal_and_case_insensitive(api: httpx.Client) -> None:
    agent = unique()
    contents = ["100% sure", "100 percent", "snake_case name", "snakeXcase", "it's O'Brien", "back\\slash",
                "Mixed CASE Text"]
    api.post("/api/v1/memories", json={"memories": [{"agent_id": agent, "content": c} for c in contents]})

    def search(text: str) -> list[str]:
        resp = api.post("/api/v1/search", json={"agent_id": agent, "content_contains": text})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert isinstance(body["query_time_ms"], int)
        assert body["count"] == len(body["results"])
        return sorted(m["content"] for m in body["results"])

    assert search("%") == ["100% sure"]
    assert search("_") == ["snake_case name"]
    assert search("'") == ["it's O'Brien"]
    assert search("\\") == ["back\\slash"]
    assert search("mixed case") == ["Mixed CASE Text"]


def test_search_filters(api: httpx.Client) -> None:
    agent = unique()
    api.post("/api/v1/memories", json={"memories": [
        {"agent_id": agent, "content": "low", "importance": 0.1, "event_type": "note"},
        {"agent_id": agent, "content": "high", "importance": 0.9, "event_type": "error"},
        {"agent_id": agent, "content": "entity", "importance": 0.95, "memory_type": "entity", "event_type": "fact"},
    ]})
    body = api.post("/api/v1/search", json={"agent_id": agent, "min_importance": 0.5,
                                            "memory_types": ["episodic"]}).json()
    assert [m["content"] for m in body["results"]] == ["high"]
    body = api.post("/api/v1/search", json={"agent_id": agent, "event_types": ["note", "fact"]}).json()
    assert sorted(m["content"] for m in body["results"]) == ["entity", "low"]
    assert api.post("/api/v1/search", json={"limit": 0}).status_code == 400


def test_org_without_arc_gets_503_on_memory_routes(stack: Stack) -> None:
    tenant = provision(stack.db, unique("noarc"), None)
    with stack.client(tenant.key) as client:
        import time

        deadline = time.monotonic() + 10
        while True:
            resp = client.post("/api/v1/memories", json={"agent_id": "a", "content": "x"})
            if resp.status_code != 401 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert resp.status_code == 503
        assert "no arc instance" in resp.json()["error"]  # the published SDK matches this text
        assert resp.json()["hint"].startswith("run: memtrace admin org add-arc ")
        assert client.get("/api/v1/memories").status_code == 503
        assert client.post("/api/v1/search", json={}).status_code == 503
        assert client.get("/api/v1/agents").status_code == 200
