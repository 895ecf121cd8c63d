"""Read-your-writes against an Arc that hides rows for seconds (arclite --buffer-age-ms), on 2 workers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.procs import ArcLite, MemtraceServer, wait_until_pruned
from tests.provision import Tenant, provision
from tests.waiting import wait_until

BUFFER_MS = 3000


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MemtraceServer, Tenant, ArcLite]]:
    base: Path = tmp_path_factory.mktemp("ryw")
    arc = ArcLite(base / "arc", extra=["--buffer-age-ms", str(BUFFER_MS)])
    data = base / "mt"
    data.mkdir()
    tenant = provision(data / "memtrace.db", "ryw", arc.url)
    server = MemtraceServer(data, workers=2, env={"MEMTRACE_JOURNAL_RETENTION_S": "6"})
    try:
        yield server, tenant, arc
    finally:
        server.stop()
        arc.stop()


def arc_count(arc: ArcLite, tenant: Tenant, agent: str) -> int:
    resp = httpx.post(f"{arc.url}/api/v1/query", headers={"x-arc-database": tenant.database},
                      json={"sql": f"SELECT count(*) FROM events WHERE agent_id = '{agent}'"})
    data: list[list[Any]] = resp.json()["data"]
    return int(data[0][0]) if data else 0


@pytest.mark.slow
def test_every_read_sees_acknowledged_writes_before_arc_does(served: tuple[MemtraceServer, Tenant, ArcLite]) -> None:
    server, tenant, arc = served
    agent = f"ryw_{uuid.uuid4().hex[:8]}"
    session = f"sess_{uuid.uuid4().hex[:8]}"
    written: list[str] = []
    # fresh connections each time, so requests land on both workers
    for i in range(12):
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}) as client:
            resp = client.post("/api/v1/memories", json={
                "agent_id": agent, "session_id": session, "content": f"step {i}", "tags": ["t"],
                "event_type": "error" if i % 4 == 0 else "general"})
            assert resp.status_code == 201
            written.append(resp.json()["id"])

    def reads_agree(phase: str) -> None:
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}) as client:
            listed = client.get("/api/v1/memories", params={"agent_id": agent, "limit": 5, "offset": 5}).json()
            assert [m["content"] for m in listed["memories"]] == [f"step {i}" for i in range(6, 1, -1)], phase
            assert listed["has_more"] is True, phase
            every = client.get("/api/v1/memories", params={"agent_id": agent, "order": "asc"}).json()
            assert [m["id"] for m in every["memories"]] == written, phase
            assert client.get(f"/api/v1/memories/{written[-1]}").status_code == 200, phase
            found = client.post("/api/v1/search", json={"agent_id": agent, "event_types": ["error"]}).json()
            assert found["count"] == 3, phase
            stats = client.get(f"/api/v1/agents/{agent}/stats").json()
            assert (stats["memory_count"], stats["errors_24h"]) == (12, 3), phase
            context = client.post(f"/api/v1/sessions/{session}/context", json={}).json()
            assert context["memory_count"] == 12, phase

    assert arc_count(arc, tenant, agent) < 12  # Arc does not show them all yet...
    reads_agree("before Arc shows the rows")   # ...but every read does
    wait_until(lambda: arc_count(arc, tenant, agent) >= 12, "the rows visible in Arc")
    reads_agree("Arc and journal both hold the rows")  # no double counting
    wait_until_pruned(server.data_dir, tenant.org_id)  # past the journal retention: Arc alone answers
    reads_agree("Arc alone")
