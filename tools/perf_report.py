"""`make perf-report`: baselines and Memtrace back to back on this machine, then perf/REPORT.md and a plot.

Every figure that matters is a ratio against a ceiling measured in the same run on the same machine:

- P1  single-memory POST through the whole stack vs a bare BlackSheep+Granian app that decodes the same
      body into the same msgspec Struct (tools/baseline_app.py); wrk, a sweep of concurrencies, for each
      worker count (1, 2, 4 … up to the cores the servers get, or `--workers 1,2`).
- P2  batch POSTs (rows/s until every row is in Arc) vs the same rows written straight to the same arclite
      as columnar msgpack (tools/loadgen.py), same client, same concurrency; fewest and most workers.
- P3  list, search and session-context p50 vs the p50 of the exact SQL Memtrace sends, sent straight to
      arclite: once with nothing left in the journal (Arc only), once with recent rows merged from it.
- P4  scaling with workers; many active orgs vs 1 org, all in one Arc database and each in its own.
- Memory: worker RSS at rest and under load, per idle org, around the journal's reads, and over a soak.
- The locust suites (loadtests/) for req/s, rows/s, p50/p99 per scenario, batching and routing.
- P5  several hosts on one shared PostgreSQL: 2 hosts vs 1 beside the bare app's 2 vs 1, group commit
      PostgreSQL vs SQLite, revocation-to-refusal across hosts (tools/perf_scaleout.py).

Cores come from the machine: with 4 or more, the load generators (wrk, this process's aiohttp client) and the
servers (Granian workers, arclite) are pinned to separate cores; wrk gets one thread per load core. Every run
records the CPU each side used. Runs are short and bounded; everything listens on 127.0.0.1. `--quick` shrinks
every run (a smoke test). The report states numbers from the run only (tools/perf_render.py).

    .venv/bin/python tools/perf_report.py [--quick] [--no-profile] [--workers 1,2] [--out perf/REPORT.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
for _p in (REPO, REPO / "tools"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import msgspec  # noqa: E402

from tools.loadgen import (  # noqa: E402
    batch_bodies,
    direct_bodies,
    memory_item,
    mix_description,
    mixed_calls,
    run_for,
    send_all,
    sequential,
)
from tools.perf_render import load_results, plot, render  # noqa: E402
from tools.perf_scaleout import render_p5, run_p5  # noqa: E402
from tools.perfstack import (  # noqa: E402
    ArcLite,
    BaselineServer,
    CpuLayout,
    CpuMeter,
    MemtraceServer,
    Proc,
    Sampler,
    WrkResult,
    affinity,
    arc_flush,
    arc_stats,
    cpu_layout,
    group_pids,
    provision_many,
    rss_each_kib,
    rss_kib,
    run_wrk,
    soak_stats,
    wait_delivered,
    worker_sweep,
    wrk_available,
)

LUA_SINGLE = REPO / "tools" / "wrk" / "post_single.lua"
RSS_INTERVAL_S = 0.5
# Production defaults except these (each stated in the report from this dict and the plan).
P = TypeVar("P", bound=Proc)

MT_ENV = {"MEMTRACE_ARC_FLUSH_INTERVAL_MS": "500", "MEMTRACE_SERVER_LOG_LEVEL": "warning"}


@dataclass
class Plan:
    concurrencies: tuple[int, ...]
    conns_per_worker: int  # the sweep also runs at workers × this many connections when that is higher
    wrk_s: int
    agents: int
    sessions: int
    batch_size: int
    batch_requests: int
    batch_concurrency: int
    reads: int
    p3_batches: int
    p3_context_rows: int
    p3_retention_s: float  # Arc-only run: delivered rows leave the journal this fast
    merge_rows: int  # merge run: this many rows written just before measuring, still in the journal
    merge_retention_s: float
    orgs: int
    soak_s: int
    soak_interval_s: float
    soak_warmup_s: float
    soak_tolerance_pct: float
    soak_concurrency: int
    locust_s: int
    locust_users: int
    locust_orgs: int
    locust_arcs: int


FULL = Plan(concurrencies=(4, 16, 64), conns_per_worker=32, wrk_s=5, agents=50, sessions=200, batch_size=1000,
            batch_requests=30, batch_concurrency=4, reads=120, p3_batches=10, p3_context_rows=1000,
            p3_retention_s=1.0, merge_rows=1000, merge_retention_s=3600.0, orgs=1000, soak_s=615,
            soak_interval_s=3.0, soak_warmup_s=15.0, soak_tolerance_pct=10.0, soak_concurrency=8,
            locust_s=6, locust_users=16, locust_orgs=4, locust_arcs=2)
QUICK = Plan(concurrencies=(4, 32), conns_per_worker=16, wrk_s=2, agents=50, sessions=200, batch_size=1000,
             batch_requests=6, batch_concurrency=2, reads=20, p3_batches=2, p3_context_rows=200,
             p3_retention_s=1.0, merge_rows=200, merge_retention_s=3600.0, orgs=50, soak_s=10,
             soak_interval_s=1.0, soak_warmup_s=3.0, soak_tolerance_pct=10.0, soak_concurrency=4,
             locust_s=2, locust_users=6, locust_orgs=4, locust_arcs=2)


def log(msg: str) -> None:
    print(f"[perf {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _workers_of(proc: Any) -> list[int]:
    return [p for p in group_pids(proc.popen.pid) if p != proc.popen.pid]


def concurrencies_for(plan: Plan, workers: int) -> list[int]:
    """The plan's connection counts, plus workers × conns_per_worker when that is higher (so many workers
    are not starved by a sweep sized for one)."""
    top = workers * plan.conns_per_worker
    return sorted(set(plan.concurrencies) | ({top} if top > max(plan.concurrencies) else set()))


@dataclass
class Ctx:
    """What every run needs: the plan, the cores, and where things go."""

    plan: Plan
    layout: CpuLayout
    base: Path

    def wrk_env(self, keys: str | None, run: str) -> dict[str, str]:
        return {"MT_KEYS": keys or "", "MT_RUN": run, "MT_AGENTS": str(self.plan.agents),
                "MT_SESSIONS": str(self.plan.sessions)}

    def wrk(self, url: str, c: int, seconds: int, keys: str | None, tag: str,
            meter: dict[str, int] | None = None, threads_of: int | None = None) -> WrkResult:
        return run_wrk(url, LUA_SINGLE, c, seconds, threads=min(self.layout.wrk_threads, c),
                       env=self.wrk_env(keys, f"{tag}-{time.time_ns()}"),
                       cpus=self.layout.load if self.layout.pinned else None, meter=meter, threads_of=threads_of)

    def servers(self) -> contextlib.AbstractContextManager[None]:
        """Start servers inside this block: they (and their workers) inherit the servers' cores."""
        return affinity(self.layout.servers if self.layout.pinned else None)

    @contextlib.contextmanager
    def running(self, make: Callable[..., P], *args: Any, **kwargs: Any) -> Iterator[P]:
        """The server `make(*args, **kwargs)` starts, on the servers' cores; stopped when the block ends, failed
        or not."""
        with self.servers():
            proc = make(*args, **kwargs)
        try:
            yield proc
        finally:
            proc.stop()


def sweep(ctx: Ctx, url: str, conns: list[int], keys: str | None, tag: str, meter: dict[str, int],
          workers: list[int]) -> tuple[list[WrkResult], dict[str, Any]]:
    """wrk at each connection count; per-worker RSS at rest (before) and the max under load."""
    ctx.wrk(url, conns[0], 1, keys, f"{tag}-warm")  # warm-up: connections, caches
    time.sleep(0.5)
    at_rest = rss_each_kib(workers)
    out = []
    with Sampler(lambda: rss_each_kib(workers), RSS_INTERVAL_S) as rss:
        for c in conns:
            out.append(ctx.wrk(url, c, ctx.plan.wrk_s, keys, f"{tag}-c{c}", meter,
                               threads_of=workers[0] if len(workers) == 1 else None))
            r = out[-1]
            log(f"  {tag} c={c} t={r.threads}: {r.rps:.0f} req/s p50 {r.p50_ms:.2f} ms p99 {r.p99_ms:.2f} ms "
                f"non-2xx {r.non_2xx} cpu {', '.join(f'{k} {v:.2f}' for k, v in r.cpu.items())}")
    loaded = {pid: max((s.get(pid, 0) for _, s in rss.samples), default=0) for pid in workers}
    return out, {"at_rest_kib": list(at_rest.values()), "under_load_kib": list(loaded.values())}


def profile_worker(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    return subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "100", "-f", "raw",
                             "-o", str(out), "--nonblocking", "--threads"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- P1 and P4 (workers) --------------------------------------------------------------------------------

def run_p1(ctx: Ctx, workers_sweep: list[int], profile: bool) -> dict[str, Any]:
    plan = ctx.plan
    out: dict[str, Any] = {"baseline": {}, "memtrace": {}, "arc_batching": {}, "rss": {}, "profile": None}
    for workers in workers_sweep:
        conns = concurrencies_for(plan, workers)
        log(f"P1 baseline, {workers} worker(s)")
        with ctx.running(BaselineServer, workers) as b:
            out["baseline"][workers], _ = sweep(ctx, f"{b.url}/api/v1/memories", conns, None, f"base{workers}",
                                                {"server": b.popen.pid}, _workers_of(b))
        log(f"P1 memtrace, {workers} worker(s)")
        d = ctx.base / f"p1w{workers}"
        with ctx.running(ArcLite, d / "arc") as arc:
            (d / "mt").mkdir(parents=True)
            (tenant,) = provision_many(d / "mt" / "memtrace.db", ["p1"], arc.url, "db_p1")
            with ctx.running(MemtraceServer, d / "mt", workers, env=MT_ENV) as mt:
                meter = {"server": mt.popen.pid, "arclite": arc.popen.pid}
                out["memtrace"][workers], out["rss"][workers] = sweep(
                    ctx, f"{mt.url}/api/v1/memories", conns, tenant.key, f"mt{workers}", meter, _workers_of(mt))
                stats = arc_stats(arc.url)
                out["arc_batching"][workers] = {
                    "write_requests": stats["write_requests"], "rows": stats["rows_written"],
                    "rows_per_request": stats["rows_written"] / max(1, stats["write_requests"]),
                }
                if profile and workers == workers_sweep[0]:
                    worker = max(_workers_of(mt))
                    prof = ctx.base / "p1.spy"
                    spy = profile_worker(worker, plan.wrk_s + 1, prof)
                    if spy is None:
                        out["profile_note"] = "py-spy was not found next to this Python or on PATH: no profile taken"
                    else:
                        time.sleep(0.3)
                        ctx.wrk(f"{mt.url}/api/v1/memories", conns[-1], plan.wrk_s, tenant.key, "prof")
                        spy.wait(timeout=60)
                        out["profile"] = _summary(prof)
                        out["profile_workers"] = workers
                        out["profile_connections"] = conns[-1]
    return out


def _summary(path: Path) -> str | None:
    if not path.exists():
        return None
    from tools.spy_summary import summarise

    return summarise(path, top=14)


# --- P4 (orgs, memory) ----------------------------------------------------------------------------------

def run_orgs(ctx: Ctx, own_db: bool) -> dict[str, Any]:
    plan = ctx.plan
    layout = "own database per org" if own_db else "one shared database"
    log(f"P4 orgs ({layout}): provisioning {plan.orgs} orgs")
    d = ctx.base / ("orgs_own" if own_db else "orgs_shared")
    with ctx.running(ArcLite, d / "arc") as arc:
        (d / "mt").mkdir(parents=True)
        t0 = time.monotonic()
        tenants = provision_many(d / "mt" / "memtrace.db", [f"o{i}" for i in range(plan.orgs)], arc.url, "db_orgs",
                                 own_db=own_db)
        provision_s = time.monotonic() - t0
        with ctx.running(MemtraceServer, d / "mt", 1, env=MT_ENV) as mt:
            c = max(plan.concurrencies)
            meter = {"server": mt.popen.pid, "arclite": arc.popen.pid}
            pids = _workers_of(mt)
            url = f"{mt.url}/api/v1/memories"
            one = tenants[0].key
            all_keys = ",".join(t.key for t in tenants)
            ctx.wrk(url, c, 1, one, "w1")
            r1 = ctx.wrk(url, c, plan.wrk_s, one, "o1", meter, threads_of=pids[0])
            time.sleep(2.0)
            rss_1, arc_rss_1 = rss_kib(pids), rss_kib(group_pids(arc.popen.pid))
            log(f"  1 org: {r1.rps:.0f} req/s, worker RSS {rss_1} KiB; warming {plan.orgs} keys")
            # every key verified once (argon2) and every org written once before measuring; otherwise the
            # measured window pays the first verify of hundreds of keys
            warm = [msgspec.json.encode({"agent_id": "warm", "content": f"warm-up of {t.org_id} {time.time_ns()}"})
                    for t in tenants]
            t_warm = time.monotonic()
            pairs = [(body, {"x-api-key": t.key, "content-type": "application/json"})
                     for t, body in zip(tenants, warm, strict=True)]
            res = send_all(url, pairs, {}, 4)
            if set(res.statuses) != {201}:
                raise RuntimeError(f"warm-up of {plan.orgs} orgs: {dict(res.statuses)}")
            warm_s = time.monotonic() - t_warm
            time.sleep(1.0)
            rn = ctx.wrk(url, c, plan.wrk_s, all_keys, "on", meter, threads_of=pids[0])
            time.sleep(3.0)  # let every org's buffer flush: the orgs are now idle
            rss_n, arc_rss_n = rss_kib(pids), rss_kib(group_pids(arc.popen.pid))
            stats = arc_stats(arc.url)
            log(f"  {plan.orgs} orgs: {rn.rps:.0f} req/s, worker RSS {rss_n} KiB, arclite RSS {arc_rss_n} KiB")
            return {"orgs": plan.orgs, "own_db": own_db, "databases": len(stats.get("by_database", {})),
                    "concurrency": c, "workers": 1, "one": asdict(r1), "many": asdict(rn), "rss_one_kib": rss_1,
                    "rss_many_kib": rss_n, "per_org_kib": (rss_n - rss_1) / max(1, plan.orgs - 1),
                    "arc_rss_one_kib": arc_rss_1, "arc_rss_many_kib": arc_rss_n,
                    "provision_s": provision_s, "warm_s": warm_s, "arc_requests": stats["write_requests"],
                    "arc_rows": stats["rows_written"]}


# --- memory: a soak under a steady mixed load ------------------------------------------------------------

def run_soak(ctx: Ctx) -> dict[str, Any]:
    plan = ctx.plan
    log(f"soak: {plan.soak_s} s of mixed load, worker RSS every {plan.soak_interval_s} s")
    d = ctx.base / "soak"
    with ctx.running(ArcLite, d / "arc") as arc:
        (d / "mt").mkdir(parents=True)
        (tenant,) = provision_many(d / "mt" / "memtrace.db", ["soak"], arc.url, "db_soak")
        with ctx.running(MemtraceServer, d / "mt", 1, env=MT_ENV) as mt:
            pids = _workers_of(mt)
            call = mixed_calls(mt.url, tenant.key, f"soak-{time.time_ns()}")
            with CpuMeter({"server": mt.popen.pid, "arclite": arc.popen.pid}, self_as="load") as cpu, \
                    Sampler(lambda: rss_kib(pids), plan.soak_interval_s) as rss:
                res = run_for(call, plan.soak_s, plan.soak_concurrency)
            stats = soak_stats([(t, int(v)) for t, v in rss.samples], plan.soak_warmup_s, plan.soak_tolerance_pct)
            bad = {k: v for k, v in res.statuses.items() if k >= 500}
            log(f"  soak: {res.requests} requests ({res.rps:.0f}/s), statuses {dict(res.statuses)}, RSS "
                f"{stats['start_kib']} → {stats['end_kib']} KiB (max {stats['max_kib']}), "
                f"{'bounded' if stats['bounded'] else 'NOT bounded'}")
            return {**stats, "requests": res.requests, "rps": res.rps, "statuses": {str(k): v for k, v in
                    res.statuses.items()}, "server_errors": sum(bad.values()), "cpu": cpu.cores,
                    "samples": rss.samples, "concurrency": plan.soak_concurrency, "workers": 1,
                    "mix": mix_description()}


# --- P2 ----------------------------------------------------------------------------------------------------

def run_p2(ctx: Ctx, workers_list: list[int]) -> dict[int, Any]:
    plan = ctx.plan
    out: dict[int, Any] = {}
    n, size, conc = plan.batch_requests, plan.batch_size, plan.batch_concurrency
    for workers in workers_list:
        log(f"P2 batches of {size}, {workers} worker(s)")
        d = ctx.base / f"p2w{workers}"
        with ctx.running(ArcLite, d / "arc") as arc:
            (d / "mt").mkdir(parents=True)
            (tenant,) = provision_many(d / "mt" / "memtrace.db", ["p2"], arc.url, "db_p2")
            with ctx.running(MemtraceServer, d / "mt", workers, env=MT_ENV) as mt:
                run = f"p2w{workers}-{time.time_ns()}"
                direct = direct_bodies(run + "d", tenant.org_id, n, size)
                bodies = batch_bodies(run + "m", n, size)
                warm = direct_bodies(run + "w", tenant.org_id, 2, size)
                dheaders = {"x-arc-database": "db_direct", "content-type": "application/msgpack"}
                send_all(f"{arc.url}/api/v1/write/msgpack", warm, dheaders, conc)
                with CpuMeter({"arclite": arc.popen.pid}, self_as="load") as cpu_d:
                    rd = send_all(f"{arc.url}/api/v1/write/msgpack", direct, dheaders, conc)
                direct_rows_s = n * size / rd.elapsed_s
                before = int(arc_stats(arc.url)["rows_written"])
                mheaders = {"x-api-key": tenant.key, "content-type": "application/json"}
                with CpuMeter({"server": mt.popen.pid, "arclite": arc.popen.pid}, self_as="load") as cpu_m:
                    t0 = time.monotonic()
                    rm = send_all(f"{mt.url}/api/v1/memories", bodies, mheaders, conc)
                    accepted_s = time.monotonic() - t0
                    wait_delivered(arc.url, before + n * size)
                    e2e_s = time.monotonic() - t0
                stats = arc_stats(arc.url)["by_database"]["db_p2"]
                out[workers] = {
                    "direct_rows_s": direct_rows_s, "direct_p50_ms": rd.p50_ms, "direct_p99_ms": rd.p99_ms,
                    "accepted_rows_s": n * size / accepted_s, "e2e_rows_s": n * size / e2e_s,
                    "mt_p50_ms": rm.p50_ms, "mt_p99_ms": rm.p99_ms, "statuses": dict(rm.statuses),
                    "arc_requests": stats["write_requests"], "rows": sum(stats["rows"].values()),
                    "cpu_direct": cpu_d.cores, "cpu_memtrace": cpu_m.cores,
                }
                log(f"  direct {direct_rows_s:.0f} rows/s; memtrace accepted {n * size / accepted_s:.0f} rows/s, "
                    f"in Arc {n * size / e2e_s:.0f} rows/s")
    return out


# --- P3 ----------------------------------------------------------------------------------------------------

def journal_fds(pid: int, journal: Path) -> int:
    """Open descriptors of `journal` itself in `pid`: one per SQLite connection to it."""
    n = 0
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if fd.readlink() == journal:
                    n += 1
    return n


def journal_cache_kib() -> int:
    """The page cache each journal connection may grow to, read from a connection the journal code opens."""
    from memtrace.journal._sqlite import connect

    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "probe.db", "NORMAL")
        try:
            (size,) = conn.execute("PRAGMA cache_size").fetchone()
            (page,) = conn.execute("PRAGMA page_size").fetchone()
        finally:
            conn.close()
    return int(-size if size < 0 else size * page // 1024)


def run_p3(ctx: Ctx, merge: bool) -> dict[str, Any]:
    from memtrace.api.params import list_filter, search_filter
    from memtrace.memory import query
    from memtrace.memory.model import MemoryFilter, SearchRequest
    from memtrace.memory.service import CONTEXT_MAX_ROWS

    plan = ctx.plan
    retention = plan.merge_retention_s if merge else plan.p3_retention_s
    log(f"P3 reads ({'merge with recent journal rows' if merge else 'Arc only'}): preloading")
    d = ctx.base / ("p3merge" if merge else "p3")

    def start(retention_s: float) -> contextlib.AbstractContextManager[MemtraceServer]:
        env = {**MT_ENV, "MEMTRACE_JOURNAL_RETENTION_S": str(retention_s)}
        return ctx.running(MemtraceServer, d / "mt", 1, env=env)

    with contextlib.ExitStack() as stack:
        arc = stack.enter_context(ctx.running(ArcLite, d / "arc"))
        (d / "mt").mkdir(parents=True)
        (tenant,) = provision_many(d / "mt" / "memtrace.db", ["p3"], arc.url, "db_p3")
        # The preload goes through a server that prunes delivered rows quickly, so that in the merge run the
        # journal holds only the rows written just before measuring, as for an org that writes steadily.
        mt = stack.enter_context(start(plan.p3_retention_s))
        run = f"p3-{time.time_ns()}"
        bodies = batch_bodies(run, plan.p3_batches, plan.batch_size)
        ctx_items = [{"agent_id": "agent_ctx", "session_id": "sess_ctx", "memory_type": ("episodic", "decision")[i % 2],
                      "event_type": "error" if i % 13 == 0 else "tool_call", "importance": (i % 10) / 10,
                      "content": f"{run} context line {i}: crawled a page and found {i % 7} products"}
                     for i in range(plan.p3_context_rows)]
        bodies.append(msgspec.json.encode({"memories": ctx_items}))
        headers = {"x-api-key": tenant.key, "content-type": "application/json"}
        res = send_all(f"{mt.url}/api/v1/memories", bodies, headers, 2)
        assert set(res.statuses) == {201}, res.statuses
        preloaded = plan.p3_batches * plan.batch_size + plan.p3_context_rows
        wait_delivered(arc.url, preloaded)
        arc_flush(arc.url)
        time.sleep(plan.p3_retention_s + 3.0)  # retention + the prune interval: the journal no longer holds them
        recent = 0
        if merge:
            mt.stop()
            mt = stack.enter_context(start(retention))
            # the last rows written just before measuring: delivered to Arc too, but still in the journal,
            # so every read merges them with Arc's answer (list, search and context all match some)
            items = [{**memory_item(f"{run}-recent", i), "session_id": "sess_ctx" if i % 2 else f"sess_{i % 200}"}
                     for i in range(plan.merge_rows)]
            res = send_all(f"{mt.url}/api/v1/memories", [msgspec.json.encode({"memories": items})], headers, 1)
            assert set(res.statuses) == {201}, res.statuses
            recent = plan.merge_rows
            wait_delivered(arc.url, preloaded + recent)
            arc_flush(arc.url)
        worker = max(_workers_of(mt))
        journal = d / "mt" / "journal.db"

        now_us = time.time_ns() // 1000
        measurement, org = "events", tenant.org_id
        f_list, page = list_filter({"agent_id": "agent_7", "limit": "100"}, now_us)
        sql_list = query.select_memories(measurement, org, f_list, page.order, page.limit + 1, 0)
        search_body = {"content_contains": "REFACTOR", "tags": ["load"], "memory_types": ["episodic", "decision"],
                       "limit": 50}
        f_s, page_s = search_filter(msgspec.convert(search_body, SearchRequest), now_us)
        sql_search = query.select_memories(measurement, org, f_s, page_s.order, page_s.limit + 1, 0)
        f_ctx = MemoryFilter(session_id="sess_ctx")
        sql_ctx = query.select_memories(measurement, org, f_ctx, "desc", CONTEXT_MAX_ROWS + 1, 0)
        qh = {"x-arc-database": "db_p3", "content-type": "application/json"}
        qurl = f"{arc.url}/api/v1/query"

        def direct(sql: str) -> tuple[str, str, bytes, dict[str, str]]:
            return ("POST", qurl, msgspec.json.encode({"sql": sql}), qh)

        cases = {
            "list": (("GET", f"{mt.url}/api/v1/memories?agent_id=agent_7&limit=100", None, headers), direct(sql_list)),
            "search": (("POST", f"{mt.url}/api/v1/search", msgspec.json.encode(search_body), headers),
                       direct(sql_search)),
            "context": (("POST", f"{mt.url}/api/v1/sessions/sess_ctx/context", b"{}", headers), direct(sql_ctx)),
        }
        rss_before = rss_kib([worker])
        out: dict[str, Any] = {}
        for name, (mt_call, arc_call) in cases.items():
            # interleave the two sides in small blocks so drift on a noisy machine hits both alike
            lat_mt: list[float] = []
            lat_arc: list[float] = []
            rows_seen: Counter[str] = Counter()

            def check(status: int, raw: bytes, _name: str = name) -> None:
                if status != 200:
                    raise RuntimeError(f"{_name}: status {status}: {raw[:200]!r}")

            for _ in range(4):
                block = max(5, plan.reads // 4)
                lat_mt += sequential([mt_call] * block, warmup=2, check=check).latencies_ms
                lat_arc += sequential([arc_call] * block, warmup=2, check=check).latencies_ms
            mt_body = msgspec.json.decode(_fetch(mt_call))
            arc_body = msgspec.json.decode(_fetch(arc_call))
            rows_seen["memtrace"] = int(mt_body.get("count", mt_body.get("memory_count", 0)))
            rows_seen["arc"] = int(arc_body.get("row_count", 0))
            out[name] = {"mt_p50_ms": _median(lat_mt), "arc_p50_ms": _median(lat_arc),
                         "mt_p99_ms": _pct(lat_mt, 0.99), "arc_p99_ms": _pct(lat_arc, 0.99),
                         "rows": dict(rows_seen), "n": len(lat_mt)}
            log(f"  {name}: memtrace p50 {out[name]['mt_p50_ms']:.2f} ms, store p50 {out[name]['arc_p50_ms']:.2f} ms "
                f"(rows {dict(rows_seen)})")
        rss_after = rss_kib([worker])
        return {"retention_s": retention, "preloaded": preloaded, "recent_rows": recent,
                "journal_rows": journal_rows(journal, org),
                "context_rows": plan.p3_context_rows, "cases": out,
                "memory": {"rss_before_reads_kib": rss_before, "rss_after_reads_kib": rss_after,
                           "journal_connections": journal_fds(worker, journal),
                           "journal_file_kib": sum(f.stat().st_size for f in journal.parent.glob("journal.db*")
                                                   if f.suffix in (".db", ".db-wal")) // 1024}}


def journal_rows(journal: Path, org_id: str) -> int:
    """The org's rows in the journal file (read-only): what a read merges with Arc's answer."""
    import sqlite3

    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM journal WHERE org_id = ?", (org_id,)).fetchone()[0])
    finally:
        conn.close()


def _fetch(call: tuple[str, str, bytes | None, dict[str, str]]) -> bytes:
    import urllib.request

    method, url, body, headers = call
    assert url.startswith("http://127.0.0.1:")
    req = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310 - loopback
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
        return bytes(resp.read())


def _median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2] if s else float("nan")


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


# --- locust suites -----------------------------------------------------------------------------------------

def run_locust(ctx: Ctx) -> dict[str, Any]:
    from loadtests.run import run_suite

    plan = ctx.plan
    scenarios = ["single", "batch100", "batch1000", "mixed"]
    log(f"locust suites ({', '.join(scenarios)}): {plan.locust_orgs} orgs on {plan.locust_arcs} arclites, 1 worker")
    with affinity(sorted(set(ctx.layout.load) | set(ctx.layout.servers)) if ctx.layout.pinned else None):
        return run_suite(ctx.base / "locust", scenarios, plan.locust_s, plan.locust_users, n_orgs=plan.locust_orgs,
                         n_arcs=plan.locust_arcs, workers=1)


# --- report ------------------------------------------------------------------------------------------------

def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    import granian

    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.splitlines()
    return {
        "cpu": cpu, "cores available": str(len(os.sched_getaffinity(0))), "memory": mem, "kernel": platform.release(),
        "python": platform.python_version(), "granian": granian.__version__,
        "wrk": wrk_v[0] if wrk_v else "?", "loadavg_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def _jsonable(o: Any) -> Any:
    return asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)


def settings(layout: CpuLayout, workers: list[int], chosen: bool) -> dict[str, Any]:
    """What this run used, from the code's own defaults and MT_ENV: the report states these, never constants."""
    from memtrace.config import ArcSettings, JournalSettings, ServerSettings

    env = {k.removeprefix("MEMTRACE_").lower(): v for k, v in MT_ENV.items()}
    return {
        "cores": len(layout.servers) + (len(layout.load) if layout.pinned else 0),
        "pinned": layout.pinned, "load_cpus": list(layout.load), "server_cpus": list(layout.servers),
        "workers": workers, "workers_chosen": chosen, "wrk_threads": layout.wrk_threads,
        "backpressure": ServerSettings().backpressure,
        "arc_batch_size": int(env.get("arc_batch_size", ArcSettings().batch_size)),
        "arc_flush_interval_ms": int(env.get("arc_flush_interval_ms", ArcSettings().flush_interval_ms)),
        "arc_max_in_flight": int(env.get("arc_max_in_flight", ArcSettings().max_in_flight)),
        "journal_retention_s": float(env.get("journal_retention_s", JournalSettings().retention_s)),
        "journal_cache_kib": journal_cache_kib(), "rss_interval_s": RSS_INTERVAL_S,
    }


def provenance() -> dict[str, str]:
    """The commit (marked when the tree differs from it), the exact command and the servers' log level."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += " + uncommitted changes"
    command = " ".join(["python", "tools/perf_report.py", *sys.argv[1:]])
    return {"commit": commit, "command": command, "log_level": MT_ENV.get("MEMTRACE_SERVER_LOG_LEVEL", "info")}


def parse_workers(text: str | None) -> list[int] | None:
    if not text:
        return None
    out = [int(x) for x in text.split(",") if x.strip()]
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError("--workers takes positive counts, e.g. 1,2")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="tiny runs: a smoke test of the tool, not a measurement")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "perf" / "REPORT.md")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--render-from", type=Path, help="re-render the report from a --json file, without running")
    p.add_argument("--workers", type=parse_workers, help="worker counts to sweep, e.g. 1,2 (default: 1, 2, 4 … up "
                   "to the cores the servers get)")
    args = p.parse_args()
    plot_path = args.out.with_name("perf_throughput_p99.png")
    if args.render_from:
        stored = load_results(args.render_from)
        plot(stored["p1"], plot_path)
        args.out.write_text(render(stored, plot_path.name) + render_p5(stored.get("p5")))
        log(f"re-rendered {args.out} from {args.render_from}")
        return
    if wrk_available() is None:
        raise SystemExit("wrk is needed for the throughput ratios: apt-get install wrk")
    plan = QUICK if args.quick else FULL
    layout = cpu_layout(sorted(os.sched_getaffinity(0)))
    workers = worker_sweep(len(layout.servers), args.workers)
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "plan": asdict(plan),
                               "settings": settings(layout, workers, bool(args.workers)), "run": provenance(),
                               "generated_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    log(f"cores: servers {layout.servers}, load {layout.load}, pinned {layout.pinned}; workers {workers}")
    with tempfile.TemporaryDirectory(prefix="memtrace-perf-", dir=os.environ.get("PERF_TMPDIR")) as tmp, \
            affinity(layout.load if layout.pinned else None):  # this process is the aiohttp load generator
        ctx = Ctx(plan, layout, Path(tmp))
        results["p1"] = run_p1(ctx, workers, profile=not args.no_profile)
        results["orgs"] = {"shared": run_orgs(ctx, own_db=False), "own_db": run_orgs(ctx, own_db=True)}
        results["p2"] = run_p2(ctx, sorted({workers[0], workers[-1]}))
        results["p3"] = {"arc_only": run_p3(ctx, merge=False), "merge": run_p3(ctx, merge=True)}
        results["soak"] = run_soak(ctx)
        results["locust"] = run_locust(ctx)
        results["p5"] = run_p5(ctx, MT_ENV, log)
    results["elapsed_s"] = time.monotonic() - started
    results["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results["quick"] = args.quick
    plot(results["p1"], plot_path)
    args.out.write_text(render(results, plot_path.name) + render_p5(results.get("p5")))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=_jsonable))
    log(f"wrote {args.out} and {plot_path} in {results['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
