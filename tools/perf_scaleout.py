"""P5 of `make perf-report`: several hosts on one shared PostgreSQL (`metadata.url`).

- single-POST req/s and batch rows/s (accepted, and until every row is in Arc), 2 hosts vs 1 on one PostgreSQL,
  processes side by side, one wrk each; on 2 shared cores this is capped by the machine: reported, not gated);
- group-commit latency p50/p99 (100-row groups, one writer), PostgreSQL vs SQLite, through the Journal facade;
- revocation-to-refusal time across hosts: a key revoked in the database, polled on the other host.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tools.loadgen import batch_bodies, send_all
from tools.perfstack import ArcLite, BaselineServer, MemtraceServer, WrkResult, arc_stats, provision, wait_delivered

P5_GROUPS = 200
P5_GROUP_ROWS = 100
P5_REVOCATIONS = 10


def _side_by_side(ctx: Any, urls: list[str], keys: str | None, tag: str, connections: int) -> dict[str, float]:
    """One wrk per URL at once; the sum of their req/s and the worst p99."""
    results: list[WrkResult] = []

    def one(url: str, i: int) -> None:
        results.append(ctx.wrk(url, connections, ctx.plan.wrk_s, keys, f"{tag}-{i}"))

    threads = [threading.Thread(target=one, args=(url, i)) for i, url in enumerate(urls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"rps": sum(r.rps for r in results), "p99_ms": max(r.p99_ms for r in results),
            "non_2xx": sum(r.non_2xx for r in results)}


def _batches(ctx: Any, arc_url: str, urls: list[str], key: str, tag: str) -> dict[str, float]:
    """The plan's P2 batches, split over the hosts and sent at once; rows/s accepted and in Arc."""
    plan = ctx.plan
    n, size = plan.batch_requests, plan.batch_size
    bodies = batch_bodies(f"{tag}-{time.time_ns()}", n, size)
    headers = {"x-api-key": key, "content-type": "application/json"}
    before = int(arc_stats(arc_url)["rows_written"])
    started = time.monotonic()
    threads = [threading.Thread(target=send_all, args=(url, bodies[i::len(urls)], headers, plan.batch_concurrency))
               for i, url in enumerate(urls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted_s = time.monotonic() - started
    wait_delivered(arc_url, before + n * size)
    e2e_s = time.monotonic() - started
    return {"accepted_rows_s": n * size / accepted_s, "e2e_rows_s": n * size / e2e_s}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _group_commits(open_journal: Any, org: str) -> list[float]:
    from memtrace.rows import MemoryRow

    journal = await open_journal()
    try:
        out = []
        for g in range(P5_GROUPS):
            now = time.time_ns() // 1000
            rows = [MemoryRow(id=f"mem_{g}_{i}_{now}", time_us=now, org_id=org, agent_id="a", session_id="",
                              memory_type="episodic", event_type="general", content="x" * 500, metadata_json="{}",
                              tags_csv="", dedup_key=uuid.uuid4().hex, importance=0.5, parent_id="")
                    for i in range(P5_GROUP_ROWS)]
            started = time.perf_counter()
            await journal.append(org, rows)
            out.append((time.perf_counter() - started) * 1000)
        return out
    finally:
        await journal.close()


def _group_commit_ms(base: Path, url: str) -> dict[str, dict[str, float]]:
    from memtrace.journal import Journal, JournalConfig
    from memtrace.journal.pg import PgJournal

    config = JournalConfig(base / "gc.db", 3600, 10.0, 10_000_000)
    out = {}
    openers = (("sqlite", lambda: Journal.open(config)), ("postgres", lambda: PgJournal.open_url(config, url)))
    for name, opener in openers:
        ms = asyncio.run(_group_commits(opener, "gc"))
        out[name] = {"p50_ms": _pct(ms, 0.5), "p99_ms": _pct(ms, 0.99)}
    return out


async def _revoke(url: str, key_id: str) -> None:
    from memtrace.metadata.pg import open_pg_metadata

    db = await open_pg_metadata(url)
    try:
        await db.api_keys.revoke(key_id)
    finally:
        await db.close()


def _revocation_ms(url: str, org_id: str, host_b: str) -> list[float]:
    from tests.provision import add_key

    out = []
    for _ in range(P5_REVOCATIONS):
        key = add_key(url, org_id, f"p5-{uuid.uuid4().hex[:8]}")
        with httpx.Client(base_url=host_b, headers={"x-api-key": key}, timeout=10) as b:
            b.get("/api/v1/agents")  # cached on B
            import psycopg

            from memtrace.keys import lookup_id

            with psycopg.connect(url) as conn:
                found = conn.execute("SELECT id FROM api_keys WHERE lookup_id = %s", (lookup_id(key),)).fetchone()
            assert found is not None
            asyncio.run(_revoke(url, str(found[0])))
            started = time.perf_counter()  # from the revocation's commit
            while b.get("/api/v1/agents").status_code != 401 and time.perf_counter() - started < 5:
                pass
            out.append((time.perf_counter() - started) * 1000)
    return out


def run_p5(ctx: Any, mt_env: dict[str, str], log: Any) -> dict[str, Any]:
    from tests import pgcluster

    if not pgcluster.available():
        return {"skipped": "PostgreSQL or psycopg is not installed (make postgresql)"}
    connections = max(ctx.plan.concurrencies)
    out: dict[str, Any] = {"connections_per_host": connections, "wrk_s": ctx.plan.wrk_s}
    log("P5 bare app, 1 and 2 processes side by side")
    with ctx.servers():
        bare = [BaselineServer(1), BaselineServer(1)]
    try:
        urls = [f"{b.url}/api/v1/memories" for b in bare]
        out["bare"] = {"1": _side_by_side(ctx, urls[:1], None, "p5bare1", connections),
                       "2": _side_by_side(ctx, urls, None, "p5bare2", connections)}
    finally:
        for b in bare:
            b.stop()
    pg = pgcluster.PgCluster()
    try:
        url = pg.new_database()
        d = ctx.base / "p5"
        with ctx.servers():
            arc = ArcLite(d / "arc")
        hosts: list[MemtraceServer] = []
        try:
            tenant = provision(url, "p5", arc.url)
            env = {**mt_env, "MEMTRACE_METADATA_URL": url}
            with ctx.servers():
                hosts = [MemtraceServer(d / f"h{i}", 1, env=env) for i in range(2)]
            urls = [f"{h.url}/api/v1/memories" for h in hosts]
            log("P5 memtrace on one PostgreSQL, 1 and 2 hosts side by side")
            out["memtrace"] = {"1": _side_by_side(ctx, urls[:1], tenant.key, "p5mt1", connections),
                               "2": _side_by_side(ctx, urls, tenant.key, "p5mt2", connections)}
            log("P5 batches on one PostgreSQL, 1 and 2 hosts")
            out["batches"] = {"1": _batches(ctx, arc.url, [hosts[0].url + "/api/v1/memories"], tenant.key, "p5b1"),
                              "2": _batches(ctx, arc.url, urls, tenant.key, "p5b2")}
            log("P5 revocation across hosts")
            ms = _revocation_ms(url, tenant.org_id, hosts[1].url)
            out["revocation_ms"] = {"p50": _pct(ms, 0.5), "max": max(ms), "runs": len(ms)}
        finally:
            for h in hosts:
                h.stop()
            arc.stop()
        log("P5 group commit, PostgreSQL vs SQLite")
        out["group_commit"] = _group_commit_ms(d, pg.new_database())
    finally:
        pg.destroy()
    return out


def render_p5(p5: dict[str, Any] | None) -> str:
    if not p5:
        return ""
    if "skipped" in p5:
        return f"\n## P5 — several hosts on one PostgreSQL\n\nNot run: {p5['skipped']}.\n"
    bare, mt = p5["bare"], p5["memtrace"]

    def ratio(side: dict[str, Any]) -> str:
        return f"{side['2']['rps'] / max(side['1']['rps'], 1e-9):.2f}×"

    gc = p5["group_commit"]
    bt = p5["batches"]
    rev = p5["revocation_ms"]
    return "\n".join([
        "", "## P5 — several hosts on one PostgreSQL", "",
        f"Single-memory POST, {p5['connections_per_host']} connections per process, {p5['wrk_s']} s, one wrk per"
        " process, processes side by side on the same cores (capped by the machine: reported, not gated).", "",
        "| | 1 process req/s | 2 processes req/s | 2 vs 1 | p99 ms (2) | non-2xx (2) |",
        "|---|---|---|---|---|---|",
        f"| bare app | {bare['1']['rps']:.0f} | {bare['2']['rps']:.0f} | {ratio(bare)} | {bare['2']['p99_ms']:.1f}"
        f" | {bare['2']['non_2xx']} |",
        f"| Memtrace hosts, one PostgreSQL | {mt['1']['rps']:.0f} | {mt['2']['rps']:.0f} | {ratio(mt)} |"
        f" {mt['2']['p99_ms']:.1f} | {mt['2']['non_2xx']} |", "",
        "Batches of the P2 plan split over the hosts, one PostgreSQL: 1 host"
        f" {bt['1']['accepted_rows_s']:.0f} rows/s accepted, {bt['1']['e2e_rows_s']:.0f} rows/s in Arc; 2 hosts"
        f" {bt['2']['accepted_rows_s']:.0f} accepted, {bt['2']['e2e_rows_s']:.0f} in Arc.", "",
        f"Group commit ({P5_GROUP_ROWS}-row groups of 600 B memories, one writer, {P5_GROUPS} groups):"
        f" SQLite p50 {gc['sqlite']['p50_ms']:.2f} / p99 {gc['sqlite']['p99_ms']:.2f} ms;"
        f" PostgreSQL p50 {gc['postgres']['p50_ms']:.2f} / p99 {gc['postgres']['p99_ms']:.2f} ms"
        " (the test cluster runs with fsync off).", "",
        f"Revocation to refusal across hosts (LISTEN/NOTIFY): p50 {rev['p50']:.1f} ms, max {rev['max']:.1f} ms"
        f" over {rev['runs']} keys.", "",
    ])
