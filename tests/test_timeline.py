"""Timelines over real HTTP: exact per-bucket counts from Arc ⨝ journal, org scoping, bad parameters.

Arc here hides written rows until an explicit flush (`--buffer-age-ms` far beyond the test), so the same
question is asked while the newest memories exist only in the journal and again once Arc holds them too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from memtrace.arc.encode import encode_rows
from memtrace.client import AsyncMemtraceClient, MemtraceClient, ValidationError
from memtrace.ids import memory_id
from memtrace.rows import MemoryRow
from memtrace.timeutil import format_us
from tests.procs import ArcLite, MemtraceServer
from tests.provision import Tenant, provision
from tests.waiting import wait_until

HOUR_US = 3_600_000_000
DB = "shared"


class TimelineStack:
    def __init__(self, arc: ArcLite, server: MemtraceServer, acme: Tenant, other: Tenant):
        self.arc, self.server, self.acme, self.other = arc, server, acme, other

    def client(self, tenant: Tenant) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers={"x-api-key": tenant.key}, timeout=30)

    def flush_arc(self) -> None:
        assert httpx.post(f"{self.arc.url}/api/v1/write/line-protocol/flush").status_code == 200

    def arc_rows(self, sql: str) -> list[list[Any]]:
        resp = httpx.post(f"{self.arc.url}/api/v1/query", headers={"x-arc-database": DB}, json={"sql": sql})
        assert resp.status_code == 200, resp.text
        data: list[list[Any]] = resp.json()["data"]
        return data


@pytest.fixture(scope="module")
def ts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TimelineStack]:
    """Two orgs bound to ONE Arc database and measurement; Arc shows rows only when flushed."""
    base: Path = tmp_path_factory.mktemp("timeline")
    arc = ArcLite(base / "arc", extra=["--buffer-age-ms", "600000", "--delete-enabled"])
    try:
        data = base / "mt"
        data.mkdir()
        acme = provision(data / "memtrace.db", "acme", arc.url, database=DB)
        other = provision(data / "memtrace.db", "other", arc.url, database=DB)
        server = MemtraceServer(data, env={"MEMTRACE_JOURNAL_RETENTION_S": "600"})
        try:
            yield TimelineStack(arc, server, acme, other)
        finally:
            server.stop()
    finally:
        arc.stop()


def row(org_id: str, agent: str, t_us: int, memory_type: str = "episodic", event_type: str = "general",
        session_id: str = "", mid: str | None = None) -> MemoryRow:
    return MemoryRow(id=mid or memory_id(t_us), time_us=t_us, org_id=org_id, agent_id=agent, session_id=session_id,
                     memory_type=memory_type, event_type=event_type, content=f"at {t_us}", metadata_json="{}",
                     tags_csv="", dedup_key=f"k{t_us}{memory_type}", importance=0.5, parent_id="")


def write_arc(ts: TimelineStack, rows: list[MemoryRow]) -> None:
    resp = httpx.post(f"{ts.arc.url}/api/v1/write/msgpack", content=encode_rows("events", rows),
                      headers={"x-arc-database": DB, "content-type": "application/msgpack"})
    assert resp.status_code == 204, resp.text
    ts.flush_arc()


def hour_of(rfc3339: str) -> str:
    us = round(datetime.fromisoformat(rfc3339).timestamp() * 1_000_000)
    return iso(us - us % HOUR_US)


def iso(us: int) -> str:
    return format_us(us)


def summary(body: dict[str, Any]) -> dict[str, tuple[int, dict[str, int], int]]:
    return {b["start"]: (b["count"], b["by_type"], b["errors"]) for b in body["buckets"]}


def test_counts_are_exact_before_and_after_delivery_and_never_cross_orgs(ts: TimelineStack) -> None:
    now = time.time_ns() // 1000
    h0 = now - now % HOUR_US
    five, two = h0 - 5 * HOUR_US + 600_000_000, h0 - 2 * HOUR_US + 300_000_000
    copy = row(ts.acme.org_id, "bot", two + 1, "decision", "error")
    write_arc(ts, [
        row(ts.acme.org_id, "bot", five), row(ts.acme.org_id, "bot", five + 1),
        row(ts.acme.org_id, "bot", five + 2, "decision", "error"),
        copy, copy,  # one memory delivered twice (a crash between write and mark): counted once
        row(ts.acme.org_id, "bot", two + 2, "entity", session_id="s1"),
        row(ts.acme.org_id, "bot", h0 - 30 * 86_400_000_000),  # outside the 7-day window
        # the other org, same database, same measurement, same agent name: never counted for acme
        *(row(ts.other.org_id, "bot", five + 10 + i) for i in range(4)),
        row(ts.other.org_id, "bot", two + 50, "decision", "error"),
    ])
    with ts.client(ts.acme) as api:
        agent = api.post("/api/v1/agents", json={"name": "bot"}).json()
        created = api.post("/api/v1/memories", json={"memories": [
            {"agent_id": "bot", "content": "now 1"},
            {"agent_id": agent["id"], "content": "now 2", "memory_type": "session", "session_id": "s1"},
            {"agent_id": "bot", "content": "now 3", "event_type": "error"},
        ]}).json()["memories"]
        expected = {
            iso(h0 - 5 * HOUR_US): (3, {"episodic": 2, "decision": 1}, 1),
            iso(h0 - 2 * HOUR_US): (2, {"decision": 1, "entity": 1}, 1),
        }
        for m in created:
            count, by_type, errors = expected.get(hour_of(m["time"]), (0, {}, 0))
            by_type = {**by_type, m["memory_type"]: by_type.get(m["memory_type"], 0) + 1}
            expected[hour_of(m["time"])] = (count + 1, by_type, errors + (m["event_type"] == "error"))
        api_ids = ", ".join(f"'{m['id']}'" for m in created)
        assert ts.arc_rows(f"SELECT count(*) FROM events WHERE id IN ({api_ids})")[0][0] == 0  # journal only

        def check(phase: str) -> None:
            for name in ("bot", agent["id"]):
                body = api.get(f"/api/v1/agents/{name}/timeline", params={"since": "7d", "bucket": "1h"}).json()
                assert body["agent_id"] == agent["id"], phase
                assert body["bucket"] == "1h", phase
                assert summary(body) == expected, phase
                starts = [b["start"] for b in body["buckets"]]
                assert starts == sorted(starts), phase
            session = api.get("/api/v1/sessions/s1/timeline", params={"bucket": "1d"}).json()
            assert session["session_id"] == "s1"
            assert sum(b["count"] for b in session["buckets"]) == 2, phase
            assert {t for b in session["buckets"] for t in b["by_type"]} == {"entity", "session"}, phase

        check("the newest rows only in the journal")
        def delivered() -> bool:
            ts.flush_arc()
            return bool(ts.arc_rows(f"SELECT count(DISTINCT id) FROM events WHERE id IN ({api_ids})")[0][0] >= 3)

        wait_until(delivered, "the deliverer writing the rows to Arc", interval=0.2)
        check("Arc and the journal both hold them")

    with ts.client(ts.other) as api:
        body = api.get("/api/v1/agents/bot/timeline", params={"bucket": "1h"}).json()
        assert summary(body) == {iso(h0 - 5 * HOUR_US): (4, {"episodic": 4}, 0),
                                 iso(h0 - 2 * HOUR_US): (1, {"decision": 1}, 1)}
        assert api.get("/api/v1/sessions/s1/timeline").json()["buckets"] == []


def test_window_and_bucket_are_echoed_and_until_is_exclusive(ts: TimelineStack) -> None:
    base = 1_700_000_000_000_000 - 1_700_000_000_000_000 % 86_400_000_000  # a midnight, long ago
    write_arc(ts, [row(ts.acme.org_id, "early", base + i * 60_000_000) for i in range(10)])
    with ts.client(ts.acme) as api:
        params = {"since": iso(base), "until": iso(base + 300_000_000), "bucket": "2m"}
        body = api.get("/api/v1/agents/early/timeline", params=params).json()
        assert (body["since"], body["until"], body["bucket"]) == (iso(base), iso(base + 300_000_000), "2m")
        assert [(b["start"], b["count"]) for b in body["buckets"]] == [
            (iso(base), 2), (iso(base + 120_000_000), 2), (iso(base + 240_000_000), 1)]


@pytest.mark.parametrize("params", [
    {"bucket": "30s"}, {"bucket": "2d"}, {"bucket": "1w"}, {"bucket": "hour"}, {"bucket": "-1h"}, {"bucket": "1.5h"},
    {"since": "8d", "bucket": "1m"},  # 11,520 buckets
    {"since": "yesterday"}, {"until": "soon"}, {"since": "1h", "until": "2h"},
])
def test_bad_parameters_are_400(ts: TimelineStack, params: dict[str, str]) -> None:
    with ts.client(ts.acme) as api:
        for path in ("/api/v1/agents/bot/timeline", "/api/v1/sessions/s1/timeline"):
            resp = api.get(path, params=params)
            assert resp.status_code == 400, (path, params, resp.text)
            assert resp.json()["error"]


def test_malformed_ids_are_404_and_a_missing_key_401(ts: TimelineStack) -> None:
    with ts.client(ts.acme) as api:
        assert api.get("/api/v1/agents/has space/timeline").status_code == 404
        assert api.get("/api/v1/sessions/-x/timeline").status_code == 404
    assert httpx.get(f"{ts.server.url}/api/v1/agents/bot/timeline").status_code == 401


async def test_async_and_sync_clients_read_timelines(ts: TimelineStack) -> None:
    async with AsyncMemtraceClient(ts.server.url, ts.acme.key) as mt:
        await mt.remember("clientbot", "hello", session_id="cs1", event_type="error")
        got = await mt.agent_timeline("clientbot", since="1d", bucket="5m")
        registered = await mt.get_agent("clientbot")  # the memory registered it: the timeline names its id
        assert (got.agent_id, got.bucket, [(b.count, b.by_type, b.errors) for b in got.buckets]) == (
            registered.id, "5m", [(1, {"episodic": 1}, 1)])
        assert got.buckets[0].start.tzinfo is not None and got.since < got.until
        with pytest.raises(ValidationError):
            await mt.agent_timeline("clientbot", bucket="1w")
    with MemtraceClient(ts.server.url, ts.acme.key) as sync:
        session = sync.session_timeline("cs1", bucket="1d")
        assert session.session_id == "cs1" and sum(b.count for b in session.buckets) == 1


@pytest.mark.parametrize("params", [
    {"since": "0001-01-01", "until": "0001-01-05", "bucket": "1d"},
    {"since": "9999-12-25", "until": "9999-12-31T23:59:59.999999Z", "bucket": "1d"},
    {"since": "1970-01-01", "until": "1970-01-02", "bucket": "1m"},
    {"since": "9999999999w"}, {"bucket": "9999999999d"}, {"since": "2026-02-07T20:15:00+14:00", "bucket": "7m"},
])
def test_extreme_windows_answer_without_a_server_error(ts: TimelineStack, params: dict[str, str]) -> None:
    with ts.client(ts.acme) as api:
        resp = api.get("/api/v1/agents/bot/timeline", params=params)
        assert resp.status_code in (200, 400), resp.text
        assert isinstance(resp.json(), dict)


def test_forgotten_memories_leave_the_timeline(ts: TimelineStack) -> None:
    """Forgotten memories leave the timeline at once (pending deletions are hidden too)."""
    with ts.client(ts.acme) as api:
        for i in range(3):
            api.post("/api/v1/memories", json={"agent_id": "forgetful", "content": f"m{i}", "tags": [f"t{i % 2}"]})

        def total() -> int:
            body = api.get("/api/v1/agents/forgetful/timeline", params={"since": "1d", "bucket": "1d"}).json()
            return sum(b["count"] for b in body["buckets"])

        assert total() == 3
        resp = api.post("/api/v1/forget", json={"agent_id": "forgetful", "tags": ["t0"]})
        assert resp.status_code == 200 and resp.json()["matched"] == 2, resp.text
        assert total() == 1
