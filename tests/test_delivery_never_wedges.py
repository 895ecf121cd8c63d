"""Delivery never wedges: large rows after an outage, rows Arc can never take, permanent refusals, failures
inside the deliverer, and a full journal — each injected against real processes or a real journal + arclite."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.procs import ArcLite, MemtraceServer
from tests.provision import provision
from tests.test_delivery import arc_stats, ids_in_arc, wait_for

KIB = 1024
MIB = 1024 * KIB


def admin(*args: str) -> Any:
    """`memtrace admin ...` as an operator runs it; JSON output decoded."""
    done = subprocess.run([sys.executable, "-m", "memtrace", "admin", *args, "--json"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def post(client: httpx.Client, memories: list[dict[str, Any]]) -> list[str]:
    resp = client.post("/api/v1/memories", json={"memories": memories})
    assert resp.status_code == 201, resp.text
    return [m["id"] for m in resp.json()["memories"]]


def large(agent: str, i: int, size: int) -> dict[str, Any]:
    """A memory of about `size` bytes, half content and half metadata (both well within the limits)."""
    return {"agent_id": agent, "content": f"{i} {uuid.uuid4().hex} " + "c" * (size // 2),
            "metadata": {"pad": "m" * (size // 2)}}


@pytest.mark.slow
@pytest.mark.parametrize("max_batch_bytes", [None, MIB], ids=["split-refused", "byte-bound"])
def test_large_rows_after_an_outage_are_all_delivered(tmp_path: Path, max_batch_bytes: int | None) -> None:
    """1,100 rows of ~10 KiB wait out an outage; the Arc behind takes at most 2 MiB per request (Arc: 100 MiB,
    the same shape scaled down). A 1,000-row batch is ~10 MiB: refused with 413 for ever before the fix."""
    arc_dir = tmp_path / "arc"
    arc = ArcLite(arc_dir, extra=["--max-body-mb", "2"])
    data = tmp_path / "mt"
    tenant = provision(data / "memtrace.db", "bulky", arc.url)
    env = {"MEMTRACE_ARC_RETRY_MAX_MS": "500", "MEMTRACE_ARC_BREAKER_PROBE_INTERVAL_S": "0.5"}
    if max_batch_bytes:
        env["MEMTRACE_ARC_MAX_BATCH_BYTES"] = str(max_batch_bytes)
    server = MemtraceServer(data, env=env)
    acknowledged: list[str] = []
    try:
        arc.stop()
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=60) as client:
            for start in range(0, 1100, 100):
                acknowledged += post(client, [large("big", start + i, 10 * KIB) for i in range(100)])
        arc = ArcLite(arc_dir, port=arc.port, extra=["--max-body-mb", "2"])
        wait_for(lambda: len(ids_in_arc(arc, tenant)) == 1100, 60, "1,100 large rows delivered")
        assert set(ids_in_arc(arc, tenant)) == set(acknowledged)
        stats = arc_stats(arc)
        assert stats["largest_request_bytes"] <= 2 * MIB
        if max_batch_bytes:
            assert stats["refused_requests"] == 0  # requests were bounded before Arc had to refuse one
            assert stats["largest_request_bytes"] <= max_batch_bytes
        else:
            assert stats["refused_requests"] >= 1  # the 8 MiB default is over this Arc's cap: split on 413
    finally:
        server.stop()
        arc.stop()


def test_a_row_arc_never_takes_is_dead_lettered_and_blocks_nobody(tmp_path: Path) -> None:
    """Arc takes at most 100 KiB per request; two memories of ~115 KiB (within Memtrace's limits) can never
    go. They are set aside, stay readable, and the other rows of their org and of another org sharing the
    Arc target are delivered; the operator then drops one and, once Arc's cap is raised, retries the other."""
    arc_dir = tmp_path / "arc"
    arc = ArcLite(arc_dir, extra=["--max-body-mb", "0.1"])
    data = tmp_path / "mt"
    acme = provision(data / "memtrace.db", "acme", arc.url, "shared")
    globex = provision(data / "memtrace.db", "globex", arc.url, "shared")
    server = MemtraceServer(data, env={"MEMTRACE_ARC_FLUSH_INTERVAL_MS": "1000"})
    journal = str(data / "journal.db")
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": acme.key}, timeout=30) as a_client, \
                httpx.Client(base_url=server.url, headers={"x-api-key": globex.key}, timeout=30) as g_client:
            small = [{"agent_id": "a", "content": f"small {i} {uuid.uuid4().hex}"} for i in range(9)]
            huge = [{"agent_id": "a", "content": f"huge {i} {uuid.uuid4().hex} ".ljust(64 * KIB, "c"),
                     "metadata": {"pad": "m" * 50_000}} for i in range(2)]
            a_ids = post(a_client, small[:3] + huge[:1] + small[3:6] + huge[1:] + small[6:])
            big_ids = [a_ids[3], a_ids[7]]
            small_ids = [i for i in a_ids if i not in big_ids]
            g_ids = post(g_client, [{"agent_id": "g", "content": f"g {i} {uuid.uuid4().hex}"} for i in range(5)])
            wait_for(lambda: set(ids_in_arc(arc, acme)) == set(small_ids), 20, "acme's other rows delivered")
            wait_for(lambda: set(ids_in_arc(arc, globex)) == set(g_ids), 20, "globex's rows delivered")

            dead = admin("delivery", "dead-letters", "--journal", journal)
            assert sorted(d["memory_id"] for d in dead) == sorted(big_ids)
            assert {(d["org_id"], d["arc_status"]) for d in dead} == {(acme.org_id, 413)}
            assert all(d["attempts"] >= 2 and "too large" in d["arc_error"] for d in dead)
            assert admin("delivery", "dead-letters", "--journal", journal, "--org", globex.org_id) == []
            # acknowledged with 201, so still readable while set aside
            got = a_client.get(f"/api/v1/memories/{big_ids[0]}")
            assert got.status_code == 200 and got.json()["content"] == huge[0]["content"]
            listed = a_client.get("/api/v1/memories", params={"agent_id": "a", "limit": 100}).json()["memories"]
            assert {m["id"] for m in listed} == set(a_ids)

            entry = {d["memory_id"]: d["entry"] for d in dead}
            assert admin("delivery", "drop", str(entry[big_ids[1]]), "--journal", journal) == {"dropped": 1}
            assert a_client.get(f"/api/v1/memories/{big_ids[1]}").status_code == 404
            arc.stop()
            arc = ArcLite(arc_dir, port=arc.port)  # the operator raised Arc's cap
            assert admin("delivery", "retry", "--all", "--journal", journal) == {"retried": 1}
            wait_for(lambda: big_ids[0] in ids_in_arc(arc, acme), 20, "the retried memory delivered")
            assert admin("delivery", "dead-letters", "--journal", journal) == []
            assert a_client.get(f"/api/v1/memories/{big_ids[0]}").status_code == 200
    finally:
        server.stop()
        arc.stop()
