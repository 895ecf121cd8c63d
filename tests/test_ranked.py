"""Ranked recall against the real server (2 workers) and arclite: `query` on search, and POST /api/v1/recall."""

from __future__ import annotations

import math
import subprocess
import sys
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
from tests.conftest import running_stack
from tests.procs import ArcLite, MemtraceServer
from tests.provision import Tenant, add_key, provision
from tests.waiting import wait_until

DB = "db_ranked"

# A crafted corpus: (session, content); the queries below have one right answer each.
CORPUS = [
    ("s_support", "Customer wrote that the refund for order 1182 never arrived"),
    ("s_support", "Checked the card processor: the refund is still pending"),
    ("s_support", "Refunded order 1182 again and emailed the customer"),
    ("s_ops", "Deployed version 2.4 of the billing service to production"),
    ("s_ops", "The nightly backup of the invoices database failed with a disk quota error"),
    ("s_ops", "Rotated the TLS certificates of the public gateway"),
    ("s_travel", "Booked the flights to Lisbon for the conference in March"),
    ("s_travel", "The hotel near the conference venue only takes cards"),
    ("s_garden", "Planted tomatoes and basil along the south fence"),
    ("s_garden", "Aphids on the roses again, sprayed them with soapy water"),
]
QUERIES = [
    ("why did the backup of the invoices fail?", "The nightly backup of the invoices database failed"),
    ("which certificates were rotated", "Rotated the TLS certificates"),
    ("flights to Lisbon", "Booked the flights to Lisbon"),
    ("what is growing along the fence?", "Planted tomatoes and basil"),
    ("roses aphids", "Aphids on the roses"),
]


@dataclass
class World:
    arc: ArcLite
    server: MemtraceServer
    a: Tenant
    b: Tenant
    reader_key: str
    data: Path

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers={"x-api-key": key}, timeout=30)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("ranked")
    arc = ArcLite(base / "arc", extra=["--delete-enabled"])
    data = base / "mt"
    data.mkdir()
    a = provision(data / "memtrace.db", "ranked_a", arc.url, DB)
    b = provision(data / "memtrace.db", "ranked_b", arc.url, DB)
    reader = add_key(data / "memtrace.db", a.org_id, "reader", "read")
    server = MemtraceServer(data, workers=2)
    try:
        yield World(arc, server, a, b, reader, data)
    finally:
        server.stop()
        arc.stop()


def uniq() -> str:
    return uuid.uuid4().hex[:10]


def write_corpus(c: httpx.Client, agent: str, corpus: list[tuple[str, str]] = CORPUS, **extra: Any
                 ) -> list[dict[str, Any]]:
    items = [{"agent_id": agent, "session_id": f"{session}_{agent}", "content": text, **extra}
             for session, text in corpus]
    resp = c.post("/api/v1/memories", json={"memories": items})
    assert resp.status_code == 201, resp.text
    memories: list[dict[str, Any]] = resp.json()["memories"]
    return memories


def in_arc(world: World, agent: str) -> int:
    httpx.post(f"{world.arc.url}/api/v1/write/line-protocol/flush")
    resp = httpx.post(f"{world.arc.url}/api/v1/query", headers={"x-arc-database": DB},
                      json={"sql": f"SELECT count(DISTINCT id) FROM events WHERE agent_id = '{agent}'"})
    data = resp.json().get("data") or [[0]]
    return int(data[0][0])


def search(c: httpx.Client, query: str, **body: Any) -> list[dict[str, Any]]:
    resp = c.post("/api/v1/search", json={"query": query, **body})
    assert resp.status_code == 200, resp.text
    results: list[dict[str, Any]] = resp.json()["results"]
    return results


def assert_ranked(results: list[dict[str, Any]]) -> None:
    scores = [r["score"] for r in results]
    assert all(isinstance(s, float) and s > 0 for s in scores), scores
    assert scores == sorted(scores, reverse=True), scores


def test_the_right_memory_comes_first_from_the_journal_and_from_arc(world: World) -> None:
    agent = f"crafted_{uniq()}"
    with world.client(world.a.key) as c:
        write_corpus(c, agent)
        fresh = {q: search(c, q, agent_id=agent) for q, _ in QUERIES}  # at once: read-your-writes
        wait_until(lambda: in_arc(world, agent) == len(CORPUS), "the corpus in Arc")
        settled = {q: search(c, q, agent_id=agent) for q, _ in QUERIES}
    for q, expected in QUERIES:
        for results in (fresh[q], settled[q]):
            assert results, q
            assert results[0]["content"].startswith(expected), (q, [r["content"] for r in results])
            assert_ranked(results)


def test_scores_are_the_same_whether_arc_or_the_journal_ranks(tmp_path: Path) -> None:
    """arclite keeps rows invisible for ten minutes: every answer is the journal's, ranked in Python. After a flush
    Arc holds them and ranks them in SQL. Both must give the same order and the same scores."""
    with running_stack(tmp_path, "twin", arc_extra=["--buffer-age-ms", "600000"]) as st, st.client() as c:
        write_corpus(c, "twin")
        queries = [q for q, _ in QUERIES] + ["refund order customer", "conference cards"]
        journal = {q: search(c, q, agent_id="twin") for q in queries}
        assert in_arc_count(st.arc, "twin", st.tenant.database) == 0  # nothing was Arc's to rank yet
        httpx.post(f"{st.arc.url}/api/v1/write/line-protocol/flush")
        wait_until(lambda: in_arc_count(st.arc, "twin", st.tenant.database) == len(CORPUS),
                   "the corpus queryable in Arc")
        from_arc = {q: search(c, q, agent_id="twin") for q in queries}
    for q in queries:
        assert [r["id"] for r in journal[q]] == [r["id"] for r in from_arc[q]], q
        for mine, theirs in zip(journal[q], from_arc[q], strict=True):
            assert math.isclose(mine["score"], theirs["score"], rel_tol=1e-3), (q, mine, theirs)


def in_arc_count(arc: ArcLite, agent: str, database: str = DB) -> int:
    resp = httpx.post(f"{arc.url}/api/v1/query", headers={"x-arc-database": database},
                      json={"sql": f"SELECT count(DISTINCT id) FROM events WHERE agent_id = '{agent}'"})
    data = resp.json().get("data") or [[0]]
    return int(data[0][0])


def test_only_memories_sharing_a_term_are_returned_and_stopwords_find_nothing(world: World) -> None:
    agent = f"terms_{uniq()}"
    with world.client(world.a.key) as c:
        memories = write_corpus(c, agent)
        results = search(c, "refunds", agent_id=agent)  # stemmed: refund, refunded
        assert {r["id"] for r in results} == {m["id"] for m in memories if "efund" in m["content"]}
        for query in ("the and of it", "?!...", "what was it"):
            resp = c.post("/api/v1/search", json={"query": query, "agent_id": agent})
            assert resp.status_code == 200, resp.text
            assert resp.json()["results"] == []


def test_filters_still_apply_with_a_query(world: World) -> None:
    agent = f"filters_{uniq()}"
    with world.client(world.a.key) as c:
        write_corpus(c, agent)
        tagged = c.post("/api/v1/memories", json={"agent_id": agent, "content": "Refund approved by the manager",
                                                   "tags": ["billing"], "memory_type": "decision",
                                                   "importance": 0.9}).json()
        other = write_corpus(c, f"other_{uniq()}")
        by_agent = search(c, "refund", agent_id=agent)
        assert len(by_agent) == 4 and not {r["id"] for r in by_agent} & {m["id"] for m in other}
        assert [r["id"] for r in search(c, "refund", agent_id=agent, tags=["billing"])] == [tagged["id"]]
        assert [r["id"] for r in search(c, "refund", agent_id=agent, memory_types=["decision"])] == [tagged["id"]]
        assert [r["id"] for r in search(c, "refund", agent_id=agent, min_importance=0.8)] == [tagged["id"]]
        session = search(c, "refund", session_id=f"s_support_{agent}")
        assert len(session) == 3 and all(r["session_id"] == f"s_support_{agent}" for r in session)
        contains = search(c, "refund", agent_id=agent, content_contains="1182")
        assert len(contains) == 2 and all("1182" in r["content"] for r in contains)
        assert search(c, "refund", agent_id=agent, until="2000-01-01T00:00:00Z") == []
        assert len(search(c, "refund", agent_id=agent, since="1h")) == 4


def test_order_sorts_the_ranked_page_by_time_and_offset_pages_through_the_ranking(world: World) -> None:
    agent = f"paging_{uniq()}"
    with world.client(world.a.key) as c:
        write_corpus(c, agent)
        best = search(c, "refund order customer conference backup", agent_id=agent, limit=6)
        assert len(best) == 6
        first, second = (search(c, "refund order customer conference backup", agent_id=agent, limit=3, offset=o)
                         for o in (0, 3))
        assert [r["id"] for r in first + second] == [r["id"] for r in best]
        by_time = search(c, "refund order customer conference backup", agent_id=agent, limit=6, order="desc")
        assert {r["id"] for r in by_time} == {r["id"] for r in best}
        assert [r["time"] for r in by_time] == sorted((r["time"] for r in by_time), reverse=True)
        oldest_first = search(c, "refund order customer conference backup", agent_id=agent, limit=6, order="asc")
        assert [r["id"] for r in oldest_first] == [r["id"] for r in reversed(by_time)]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/search", {"query": "   "}, "query"),
    ("/api/v1/search", {"query": ""}, "query"),
    ("/api/v1/search", {"query": 12}, "query"),
    ("/api/v1/search", {"query": ["refund"]}, "query"),
    ("/api/v1/search", {"query": "x" * 1025}, "query"),
    ("/api/v1/search", {"order": "relevance"}, "order"),
    ("/api/v1/search", {"query": "refund", "order": "best"}, "order"),
    ("/api/v1/search", {"query": "refund", "limit": 1001}, "limit"),
    ("/api/v1/search", {"query": "refund", "offset": -1}, "offset"),
    ("/api/v1/recall", {}, "query"),
    ("/api/v1/recall", {"query": " \n "}, "query"),
    ("/api/v1/recall", {"query": "refund", "max_tokens": 0}, "max_tokens"),
    ("/api/v1/recall", {"query": "refund", "neighbors": 6}, "neighbors"),
    ("/api/v1/recall", {"query": "refund", "since": "yesterday"}, "since"),
    ("/api/v1/recall", {"query": "refund", "agent_id": "1bad"}, "agent_id"),
])
def test_bad_input_is_a_400_naming_the_field(world: World, path: str, body: dict[str, Any], field: str) -> None:
    with world.client(world.a.key) as c:
        resp = c.post(path, json=body)
    assert resp.status_code == 400, resp.text
    assert field in resp.json()["error"], resp.text


def test_a_deleted_memory_is_never_ranked_or_recalled(world: World) -> None:
    agent = f"deleted_{uniq()}"
    with world.client(world.a.key) as c:
        memories = write_corpus(c, agent)
        doomed = next(m for m in memories if m["content"].startswith("Booked the flights"))
        assert c.delete(f"/api/v1/memories/{doomed['id']}").status_code in (202, 204)  # maybe still in the journal
        assert doomed["id"] not in {r["id"] for r in search(c, "flights Lisbon conference", agent_id=agent)}
        wait_until(lambda: in_arc(world, agent) == len(CORPUS) - 1, "the rest in Arc")
        late = next(m for m in memories if m["content"].startswith("The hotel"))
        assert c.delete(f"/api/v1/memories/{late['id']}").status_code in (202, 204)  # now from Arc
        for results in (search(c, "flights Lisbon conference hotel", agent_id=agent),
                        c.post("/api/v1/recall", json={"query": "flights Lisbon conference hotel",
                                                       "agent_id": agent}).json()["memories"]):
            assert not {r["id"] for r in results} & {doomed["id"], late["id"]}


def test_two_orgs_with_the_same_words_see_only_their_own(world: World) -> None:
    agent = f"tenancy_{uniq()}"
    with world.client(world.a.key) as a, world.client(world.b.key) as b:
        ids = {world.a.org_id: {m["id"] for m in write_corpus(a, agent)},
               world.b.org_id: {m["id"] for m in write_corpus(b, agent)}}
        for client, org, other in ((a, world.a.org_id, world.b.org_id), (b, world.b.org_id, world.a.org_id)):
            found = search(client, "refund order customer backup flights", agent_id=agent)
            assert {r["id"] for r in found} and {r["id"] for r in found} <= ids[org]
            everywhere = search(client, "refund order customer backup flights", limit=1000)
            assert {r["org_id"] for r in everywhere} == {org} and not {r["id"] for r in everywhere} & ids[other]
            recalled = client.post("/api/v1/recall", json={"query": "refund order customer"}).json()["memories"]
            assert recalled and {m["org_id"] for m in recalled} == {org}


def test_a_read_only_key_may_search_and_recall(world: World) -> None:
    agent = f"reader_{uniq()}"
    with world.client(world.a.key) as c:
        write_corpus(c, agent)
    with world.client(world.reader_key) as r:
        assert search(r, "refund", agent_id=agent)
        assert r.post("/api/v1/recall", json={"query": "refund", "agent_id": agent}).status_code == 200
        assert r.post("/api/v1/memories", json={"agent_id": agent, "content": "x"}).status_code == 403


def lines_of(context: str) -> list[str]:
    return [line for line in context.splitlines() if line.startswith("- [")]


def test_recall_honours_the_budget_and_lists_exactly_the_memories_in_its_text(world: World) -> None:
    agent = f"recall_{uniq()}"
    turns = [("s_long", f"Turn {i}: we talked about {'the refund' if i in (7, 15) else 'the weather'} today")
             for i in range(20)]
    with world.client(world.a.key) as c:
        write_corpus(c, agent, turns)
        for max_tokens in (40, 90, 200, 1000):
            answer = c.post("/api/v1/recall", json={"query": "what about the refund?", "agent_id": agent,
                                                     "max_tokens": max_tokens}).json()
            context = answer["context"]
            assert answer["token_estimate"] == -(-len(context) // 4) <= max_tokens
            assert answer["memory_count"] == len(answer["memories"]) == len(lines_of(context))
            for memory in answer["memories"]:
                assert memory["content"] in context and isinstance(memory["score"], float)
            assert "Session s_long" in context or not answer["memories"]
        wide = c.post("/api/v1/recall", json={"query": "refund", "agent_id": agent, "neighbors": 1}).json()
        narrow = c.post("/api/v1/recall", json={"query": "refund", "agent_id": agent, "neighbors": 0}).json()
    assert sorted(m["content"][:7] for m in narrow["memories"]) == ["Turn 15", "Turn 7:"]
    # with neighbours: each hit with the turn before and after it, in time order, the hits scored above 0
    assert [m["content"].split(":")[0] for m in wide["memories"]] == [
        "Turn 6", "Turn 7", "Turn 8", "Turn 14", "Turn 15", "Turn 16"]
    scores = {m["content"].split(":")[0]: m["score"] for m in wide["memories"]}
    assert scores["Turn 7"] > 0 and scores["Turn 15"] > 0 and scores["Turn 6"] == 0


def test_recall_of_nothing_says_so(world: World) -> None:
    with world.client(world.a.key) as c:
        answer = c.post("/api/v1/recall", json={"query": "zebra quantum marmalade", "agent_id": "nobody"}).json()
    assert answer["memories"] == [] and answer["memory_count"] == 0
    assert "No memory matches the query." in answer["context"]


def test_the_bundled_client_searches_by_query_and_recalls(world: World) -> None:
    from memtrace.client import MemtraceClient

    agent = f"client_{uniq()}"
    with MemtraceClient(world.server.url, world.a.key) as mt:
        for _, text in CORPUS:
            mt.remember(agent, text)
        found = mt.search(query="nightly backup failed", agent_id=agent, limit=3)
        assert found.results[0].content.startswith("The nightly backup")
        assert all(m.score is not None and m.score > 0 for m in found.results)
        plain = mt.search(agent_id=agent, content_contains="backup")
        assert [m.score for m in plain.results] == [None]
        recalled = mt.recall_context("what failed last night?", agent_id=agent, max_tokens=300)
        assert recalled.memories and recalled.memories[0].content in recalled.context
        assert recalled.token_estimate <= 300


def admin(world: World, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "memtrace", "admin", *args, "--db", str(world.data / "memtrace.db")],
                          capture_output=True, text=True, timeout=60, cwd=world.data)
    assert done.returncode == 0, done.stderr
    return done.stdout


def old_rows_in_arc(world: World, org_id: str, agent: str, contents: list[str], age_days: float) -> list[str]:
    """Rows `age_days` old written into arclite directly, as delivery writes them (search terms included)."""
    now = time.time_ns() // 1000 - int(age_days * 86_400_000_000)
    rows = [MemoryRow(id=memory_id(now + i), time_us=now + i, org_id=org_id, agent_id=agent, session_id="",
                      memory_type="episodic", event_type="general", content=text, metadata_json="{}", tags_csv="",
                      dedup_key=uuid.uuid4().hex, importance=0.5, parent_id="") for i, text in enumerate(contents)]
    resp = httpx.post(f"{world.arc.url}/api/v1/write/msgpack", content=encode_rows("events", rows),
                      headers={"Content-Type": "application/msgpack", "x-arc-database": DB})
    assert resp.status_code in (200, 204), resp.text
    httpx.post(f"{world.arc.url}/api/v1/write/line-protocol/flush")
    return [r.id for r in rows]


def test_a_memory_expired_by_retention_is_never_ranked_or_recalled(world: World) -> None:
    agent = f"expired_{uniq()}"
    old = old_rows_in_arc(world, world.b.org_id, agent, ["The lighthouse keeper logged a storm"], age_days=10)
    with world.client(world.b.key) as c:
        fresh = c.post("/api/v1/memories", json={"agent_id": agent, "content": "The lighthouse lamp was cleaned"}
                       ).json()
        assert {r["id"] for r in search(c, "lighthouse", agent_id=agent)} == {old[0], fresh["id"]}
        admin(world, "org", "retention", world.b.org_id, "--days", "7")
        try:
            admin(world, "retention", "run", "--org", world.b.org_id)
            assert [r["id"] for r in search(c, "lighthouse", agent_id=agent)] == [fresh["id"]]
            recalled = c.post("/api/v1/recall", json={"query": "lighthouse storm", "agent_id": agent}).json()
            assert [m["id"] for m in recalled["memories"]] == [fresh["id"]]
        finally:
            admin(world, "org", "retention", world.b.org_id, "--clear")


def test_a_memory_deleted_while_arc_is_down_never_ranks_when_arc_is_back(tmp_path: Path) -> None:
    """The 202 case: the deletion is only recorded; Arc, back, still holds the row until Memtrace applies it."""
    arc = ArcLite(tmp_path / "arc", extra=["--delete-enabled"])
    data = tmp_path / "mt"
    data.mkdir()
    tenant = provision(data / "memtrace.db", "outage", arc.url, DB)
    server = MemtraceServer(data, workers=2)
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=30) as c:
            memories = write_corpus(c, "outage")
            wait_until(lambda: in_arc_count(arc, "outage") == len(CORPUS), "the corpus in Arc")
            doomed = next(m for m in memories if m["content"].startswith("Rotated the TLS"))
            arc.stop()
            assert c.delete(f"/api/v1/memories/{doomed['id']}").status_code == 202
            arc = ArcLite(tmp_path / "arc", port=arc.port, extra=["--delete-enabled"])
            for _ in range(4):  # both workers, while the deletion is pending and after it was applied
                found = search(c, "rotated TLS certificates gateway", agent_id="outage")
                assert doomed["id"] not in {r["id"] for r in found}
                recalled = c.post("/api/v1/recall", json={"query": "TLS certificates", "agent_id": "outage"}
                                  ).json()["memories"]
                assert doomed["id"] not in {m["id"] for m in recalled}
    finally:
        server.stop()
        arc.stop()
