"""The settle path of forgetting against an Arc-strict arclite: a memory still in Arc's ingest buffer when it is
forgotten is untouched by the first Arc delete (Arc's delete reads only flushed files), lands at the flush, and
must be removed by the second ("settling") delete. On both journal backends, with Arc down at the forget (202)
and with Memtrace killed (-9) between the two deletes.

arclite buffers for 10 minutes here and the test flushes it explicitly once the first delete is done: Arc's
own flush comes within its buffer age, which the settle delay (`journal.retention_s`) must cover.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.procs import ArcLite, MemtraceServer
from tests.provision import Tenant, provision
from tests.waiting import wait_until

DB = "settle"
ARC_ARGS = ["--delete-enabled", "--buffer-age-ms", "600000"]
SERVER_ENV = {"MEMTRACE_JOURNAL_RETENTION_S": "2", "MEMTRACE_ARC_CONNECT_TIMEOUT_S": "0.5",
              "MEMTRACE_ARC_REQUEST_TIMEOUT_S": "5"}


@dataclass
class Site:
    base: Path
    pg_url: str | None
    arc: ArcLite
    server: MemtraceServer
    tenant: Tenant

    @property
    def data(self) -> Path:
        return self.base / "mt"

    def start_server(self) -> None:
        env = {**SERVER_ENV, **({"MEMTRACE_METADATA_URL": self.pg_url} if self.pg_url else {})}
        self.server = MemtraceServer(self.data, workers=1, env=env)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers={"x-api-key": self.tenant.key}, timeout=30)

    def deletions(self) -> list[str]:
        """States of the org's unfinished deletions, read from the journal (SQLite file or PostgreSQL)."""
        sql = "SELECT state FROM deletions WHERE org_id = %s ORDER BY id"
        if self.pg_url:
            import psycopg

            with psycopg.connect(self.pg_url) as conn:
                return [str(state) for (state,) in conn.execute(sql, (self.tenant.org_id,)).fetchall()]
        path = self.data / "journal.db"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as conn:
            return [str(state) for (state,) in conn.execute(sql.replace("%s", "?"), (self.tenant.org_id,))]


@pytest.fixture(params=["sqlite", "postgres"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    pg_url = str(request.getfixturevalue("pg_cluster").new_database()) if request.param == "postgres" else None
    (tmp_path / "mt").mkdir()
    site = Site(tmp_path, pg_url, ArcLite(tmp_path / "arc", extra=ARC_ARGS), None, None)  # type: ignore[arg-type]
    try:
        site.tenant = provision(pg_url or tmp_path / "mt" / "memtrace.db", "settle", site.arc.url, DB)
        site.start_server()
        yield site
    finally:
        if site.server is not None:
            site.server.stop()
        site.arc.stop()  # the one running now (a test may have restarted it)


def arc_query(arc: ArcLite, sql: str) -> list[list[Any]]:
    resp = httpx.post(f"{arc.url}/api/v1/query", json={"sql": sql}, headers={"x-arc-database": DB}, timeout=30)
    assert resp.status_code == 200, resp.text
    data: list[list[Any]] = resp.json()["data"]
    return data


def in_arc(arc: ArcLite, memory_id: str) -> int:
    """Copies of the memory Arc answers queries with (flushed rows only)."""
    rows = arc_query(arc, f"SELECT count(*) FROM events WHERE id = '{memory_id}'")
    return int(rows[0][0]) if rows else 0


def flush(arc: ArcLite) -> None:
    resp = httpx.post(f"{arc.url}/api/v1/write/line-protocol/flush", timeout=30)
    assert resp.status_code == 200, resp.text


def rows_written(arc: ArcLite) -> int:
    stats = httpx.get(f"{arc.url}/api/v1/arclite/stats", timeout=10).json()
    return int(sum(stats["by_database"].get(DB, {}).get("rows", {}).values()))


def write_buffered(site: Site, c: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """A memory to forget and one to keep, both delivered to Arc and both still in its buffer."""
    made = []
    for agent in ("doomed", "keeper"):
        resp = c.post("/api/v1/memories", json={"agent_id": agent, "content": f"{agent} {uuid.uuid4().hex}"})
        assert resp.status_code == 201, resp.text
        made.append(resp.json())
    wait_until(lambda: rows_written(site.arc) >= 2, "delivery to Arc")
    assert in_arc(site.arc, made[0]["id"]) == 0  # acknowledged by Arc, not queryable yet
    return made[0], made[1]


def never_comes_back(site: Site, doomed: dict[str, Any], kept: dict[str, Any]) -> None:
    """Once the deletion is finished (reads stop hiding its filter) and Arc's buffer is empty, the forgotten
    memory is in no Arc answer and no Memtrace read; the other memory is intact."""
    wait_until(lambda: site.deletions() == [], "the deletion finished", timeout=30)
    flush(site.arc)
    assert in_arc(site.arc, doomed["id"]) == 0
    assert in_arc(site.arc, kept["id"]) == 1
    with site.client() as c:
        assert c.get(f"/api/v1/memories/{doomed['id']}").status_code == 404
        listed = c.get("/api/v1/memories", params={"agent_id": "doomed"}).json()
        assert listed["memories"] == [], listed
        assert c.get(f"/api/v1/memories/{kept['id']}").status_code == 200


def test_a_memory_forgotten_while_arc_buffers_it_never_comes_back(site: Site) -> None:
    with site.client() as c:
        doomed, kept = write_buffered(site, c)
        assert c.delete(f"/api/v1/memories/{doomed['id']}").status_code == 204
        assert site.deletions() == ["settling"]  # the first delete is done; Arc still buffers the row
        flush(site.arc)  # ...which lands now, after the first delete
        assert in_arc(site.arc, doomed["id"]) == 1
        assert c.get(f"/api/v1/memories/{doomed['id']}").status_code == 404  # hidden while settling
    never_comes_back(site, doomed, kept)


def test_forgotten_while_arc_is_down_and_applied_when_it_is_back(site: Site) -> None:
    """The 202 case: Arc is killed (-9) holding the buffered row; the forget is recorded pending; Arc comes back
    with the row still buffered (replayed from its WAL); the background applier deletes, then settles."""
    with site.client() as c:
        doomed, kept = write_buffered(site, c)
        site.arc.kill9()
        site.arc.stop()
        resp = c.delete(f"/api/v1/memories/{doomed['id']}")
        assert resp.status_code == 202, resp.text
        assert site.deletions() == ["pending"]
        assert c.get(f"/api/v1/memories/{doomed['id']}").status_code == 503  # reads need Arc
    site.arc = ArcLite(site.base / "arc", port=site.arc.port, extra=ARC_ARGS)
    wait_until(lambda: site.deletions() == ["settling"], "the first delete after Arc came back")
    assert in_arc(site.arc, doomed["id"]) == 0 and in_arc(site.arc, kept["id"]) == 0  # both still buffered
    flush(site.arc)
    never_comes_back(site, doomed, kept)


def test_memtrace_killed_between_the_two_deletes_still_settles(site: Site) -> None:
    with site.client() as c:
        doomed, kept = write_buffered(site, c)
        assert c.delete(f"/api/v1/memories/{doomed['id']}").status_code == 204
    site.server.kill9()
    site.server.stop()
    flush(site.arc)  # the row lands while no Memtrace runs
    assert in_arc(site.arc, doomed["id"]) == 1
    assert site.deletions() == ["settling"]  # durable across kill -9
    site.start_server()
    with site.client() as c:
        assert c.get(f"/api/v1/memories/{doomed['id']}").status_code == 404  # still hidden after the restart
    never_comes_back(site, doomed, kept)


def test_a_forget_counts_the_memories_arc_still_buffers(site: Site) -> None:
    """Arc's dry run counts only flushed rows, so the journal's delivered rows that Arc does not show yet are
    added: the answer names every memory that was forgotten, once."""
    with site.client() as c:
        doomed, kept = write_buffered(site, c)
        flushed = c.post("/api/v1/memories", json={"agent_id": "doomed", "content": f"flushed {uuid.uuid4().hex}"})
        assert flushed.status_code == 201, flushed.text
        wait_until(lambda: rows_written(site.arc) >= 3, "delivery to Arc")
        flush(site.arc)  # one doomed memory queryable in Arc (and still in the journal), one...
        buffered = c.post("/api/v1/memories", json={"agent_id": "doomed", "content": f"late {uuid.uuid4().hex}"})
        wait_until(lambda: rows_written(site.arc) >= 4, "delivery to Arc")  # ...delivered but buffered
        assert in_arc(site.arc, buffered.json()["id"]) == 0
        dry = c.post("/api/v1/forget", json={"agent_id": "doomed", "dry_run": True})
        assert dry.status_code == 200 and dry.json()["matched"] == 3, dry.text
        done = c.post("/api/v1/forget", json={"agent_id": "doomed"})
        assert done.status_code == 200, done.text
        assert (done.json()["matched"], done.json()["deleted"]) == (3, 3), done.text
        flush(site.arc)  # Arc's own flush, within its buffer age: before the settle pass
    never_comes_back(site, doomed, kept)
    assert in_arc(site.arc, buffered.json()["id"]) == 0 and in_arc(site.arc, flushed.json()["id"]) == 0
