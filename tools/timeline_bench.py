"""p50 of `GET /api/v1/agents/{agent}/timeline?since=7d&bucket=1h` over 100k memories (issue 14).

Writes the memories straight into arclite as columnar msgpack (`memtrace/arc/encode.py`), spread evenly over
the last 7 days for one agent (plus a second org's rows in the same database, which the query must skip),
then times the endpoint through a real Memtrace server, one request at a time. Measures only; asserts nothing.

    PYTHONPATH=. .venv/bin/python tools/timeline_bench.py [--rows 100000] [--requests 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from memtrace.arc.encode import encode_rows  # noqa: E402
from memtrace.ids import memory_id  # noqa: E402
from memtrace.memory.model import MEMORY_TYPES  # noqa: E402
from memtrace.rows import MemoryRow  # noqa: E402
from tests.procs import ArcLite, MemtraceServer  # noqa: E402
from tests.provision import provision  # noqa: E402

WEEK_US = 7 * 86_400 * 1_000_000
BATCH = 10_000


def rows(org_id: str, agent: str, n: int, now_us: int) -> list[MemoryRow]:
    step = (WEEK_US - 60_000_000) // n
    out = []
    for i in range(n):
        t = now_us - WEEK_US + 60_000_000 + i * step
        out.append(MemoryRow(id=memory_id(t), time_us=t, org_id=org_id, agent_id=agent, session_id=f"s{i % 50}",
                             memory_type=MEMORY_TYPES[i % 4], event_type="error" if i % 17 == 0 else "general",
                             content=f"step {i} of the crawl", metadata_json="{}", tags_csv="bench",
                             dedup_key=f"k{i}", importance=0.5, parent_id=""))
    return out


def write(arc: ArcLite, database: str, batch: list[MemoryRow]) -> None:
    for start in range(0, len(batch), BATCH):
        resp = httpx.post(f"{arc.url}/api/v1/write/msgpack", content=encode_rows("events", batch[start:start + BATCH]),
                          headers={"x-arc-database": database, "content-type": "application/msgpack"}, timeout=120)
        resp.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--other-rows", type=int, default=20_000, help="another org's rows in the same database")
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="timeline-bench-") as tmp:
        base = Path(tmp)
        arc = ArcLite(base / "arc")
        try:
            data = base / "mt"
            data.mkdir()
            acme = provision(data / "memtrace.db", "acme", arc.url, database="bench")
            other = provision(data / "memtrace.db", "other", arc.url, database="bench")
            now = time.time_ns() // 1000
            t0 = time.perf_counter()
            write(arc, "bench", rows(acme.org_id, "bot", args.rows, now))
            write(arc, "bench", rows(other.org_id, "bot", args.other_rows, now))
            httpx.post(f"{arc.url}/api/v1/write/line-protocol/flush", timeout=120).raise_for_status()
            print(f"wrote {args.rows} + {args.other_rows} rows in {time.perf_counter() - t0:.1f} s")
            server = MemtraceServer(data)
            try:
                with httpx.Client(base_url=server.url, headers={"x-api-key": acme.key}, timeout=60) as api:
                    params = {"since": "7d", "bucket": "1h"}
                    body = api.get("/api/v1/agents/bot/timeline", params=params).json()  # warm-up
                    total = sum(b["count"] for b in body["buckets"])
                    print(f"{len(body['buckets'])} buckets, {total} memories counted")
                    times = []
                    for _ in range(args.requests):
                        start = time.perf_counter()
                        resp = api.get("/api/v1/agents/bot/timeline", params=params)
                        times.append((time.perf_counter() - start) * 1000)
                        resp.raise_for_status()
                    times.sort()
                    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                    print(f"timeline 7d/1h over {args.rows} memories, {args.requests} requests: "
                          f"p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, min {times[0]:.1f} ms")
            finally:
                server.stop()
        finally:
            arc.stop()


if __name__ == "__main__":
    main()
