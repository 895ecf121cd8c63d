"""Forgetting throughput and latency on the real stack: `python -m perf.forget_bench [--rows 100000]`.

Starts arclite (deletes enabled) and Memtrace (2 Granian workers), writes `--rows` memories for one agent through
the batch API, waits until arclite holds them all, then times:
- `POST /api/v1/forget {"agent_id": ...}` over all of them (rows deleted per second, end to end);
- `DELETE /api/v1/memories/{id}` of single delivered memories (median and p90 over `--singles`);
- arclite's own `POST /api/v1/delete` of one row by id, without Memtrace (median).
Prints one line per number.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from tests.procs import ArcLite, MemtraceServer
from tests.provision import provision

DB = "bench"


def arc_count(arc: ArcLite, where: str) -> int:
    resp = httpx.post(f"{arc.url}/api/v1/query", json={"sql": f"SELECT count(*) FROM events WHERE {where}"},
                      headers={"x-arc-database": DB}, timeout=60)
    return int(resp.json()["data"][0][0]) if resp.status_code == 200 else 0


def wait_for(arc: ArcLite, where: str, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while arc_count(arc, where) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"arclite did not reach {n} rows for {where}")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--singles", type=int, default=30)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="forget-bench-"))
    arc = ArcLite(base / "arc", extra=["--delete-enabled"])
    (base / "mt").mkdir()
    tenant = provision(base / "mt" / "memtrace.db", "bench", arc.url, DB)
    server = MemtraceServer(base / "mt", workers=2, env={"MEMTRACE_ARC_BATCH_SIZE": "5000",
                                                         "MEMTRACE_JOURNAL_RETENTION_S": "2"})
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=300) as c:
            agent = f"bulk{uuid.uuid4().hex[:8]}"
            started = time.perf_counter()
            for start in range(0, args.rows, 1000):
                batch = [{"agent_id": agent, "content": f"bulk memory {i}"}
                         for i in range(start, min(args.rows, start + 1000))]
                assert c.post("/api/v1/memories", json={"memories": batch}).status_code == 201
            wait_for(arc, f"agent_id = '{agent}'", args.rows)
            print(f"wrote and delivered {args.rows} rows in {time.perf_counter() - started:.1f} s")
            time.sleep(3)  # past the journal retention: the forget works on Arc, not on journal copies

            started = time.perf_counter()
            resp = c.post("/api/v1/forget", json={"agent_id": agent})
            elapsed = time.perf_counter() - started
            assert resp.status_code == 200, resp.text
            deleted = resp.json()["deleted"]
            assert arc_count(arc, f"agent_id = '{agent}'") == 0
            print(f"forget: {deleted} rows in {elapsed:.2f} s = {deleted / elapsed:,.0f} rows/s")

            single = f"single{uuid.uuid4().hex[:8]}"
            ids = [c.post("/api/v1/memories", json={"agent_id": single, "content": f"one {i}"}).json()["id"]
                   for i in range(args.singles * 2)]
            wait_for(arc, f"agent_id = '{single}'", len(ids))
            latencies = []
            for memory_id in ids[: args.singles]:
                t0 = time.perf_counter()
                assert c.delete(f"/api/v1/memories/{memory_id}").status_code == 204
                latencies.append((time.perf_counter() - t0) * 1000)
            latencies.sort()
            print(f"DELETE /api/v1/memories/{{id}} (delivered row): median {statistics.median(latencies):.1f} ms, "
                  f"p90 {latencies[int(len(latencies) * 0.9) - 1]:.1f} ms over {len(latencies)}")
            direct = []
            time.sleep(3)  # let the background settle re-applies of the deletes above finish
            with httpx.Client(timeout=60) as raw:  # keep-alive, as Memtrace's pool
                for memory_id in ids[args.singles:]:
                    body = {"database": DB, "measurement": "events", "where": f"id = '{memory_id}'",
                            "confirm": True}
                    t0 = time.perf_counter()
                    r = raw.post(f"{arc.url}/api/v1/delete", json=body)
                    direct.append((time.perf_counter() - t0) * 1000)
                    assert r.json()["deleted_count"] == 1, r.text
            print(f"arclite POST /api/v1/delete of 1 row: median {statistics.median(direct):.1f} ms "
                  f"over {len(direct)}")
    finally:
        server.stop()
        arc.stop()


if __name__ == "__main__":
    main()
