"""`make perf-report`: baselines and Memtrace back to back on this machine, then perf/REPORT.md and a plot.

Every figure that matters is a ratio against a ceiling measured in the same run on the same machine:

- P1  single-memory POST through the whole stack vs a bare BlackSheep+Granian app that decodes the same
      body into the same msgspec Struct (tools/baseline_app.py); wrk, a sweep of concurrencies, 1 and 2 workers.
- P2  1,000-memory batch POSTs (rows/s until every row is in Arc) vs the same rows written straight to the
      same arclite as columnar msgpack (tools/loadgen.py), same client, same concurrency.
- P3  list, search and session-context p50 vs the p50 of the exact SQL Memtrace sends, sent straight to arclite.
- P4  2 workers vs 1 worker; 1,000 active orgs vs 1 org on one server; worker RSS per idle org.
- The locust suites (loadtests/) for req/s, rows/s, p50/p99 per scenario, batching and routing.

Runs are short and bounded; everything listens on 127.0.0.1. `--quick` shrinks every run (a smoke test).

    .venv/bin/python tools/perf_report.py [--quick] [--no-profile] [--out perf/REPORT.md]
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for _p in (REPO, REPO / "tools"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import msgspec  # noqa: E402

from tools.loadgen import batch_bodies, direct_bodies, send_all, sequential  # noqa: E402
from tools.perfstack import (  # noqa: E402
    ArcLite,
    BaselineServer,
    MemtraceServer,
    WrkResult,
    arc_flush,
    arc_stats,
    group_pids,
    provision_many,
    rss_kib,
    run_wrk,
    wait_delivered,
    wrk_available,
)

LUA_SINGLE = REPO / "tools" / "wrk" / "post_single.lua"
# Production defaults except where a run needs otherwise (said in the report).
MT_ENV = {"MEMTRACE_ARC_FLUSH_INTERVAL_MS": "500", "MEMTRACE_SERVER_LOG_LEVEL": "warning"}
TARGETS = {"P1_rps": 0.60, "P1_p99": 3.0, "P2": 0.67, "P3": 1.3, "P4_workers": 1.7, "P4_orgs": 0.90}


@dataclass
class Plan:
    concurrencies: tuple[int, ...]
    wrk_s: int
    batch_requests: int
    batch_concurrency: int
    reads: int
    orgs: int
    locust_s: int
    locust_users: int


FULL = Plan(concurrencies=(4, 16, 64), wrk_s=5, batch_requests=30, batch_concurrency=4, reads=120, orgs=1000,
            locust_s=6, locust_users=16)
QUICK = Plan(concurrencies=(4, 32), wrk_s=2, batch_requests=6, batch_concurrency=2, reads=20, orgs=50,
             locust_s=2, locust_users=6)


def log(msg: str) -> None:
    print(f"[perf {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _workers_of(proc: Any) -> list[int]:
    return [p for p in group_pids(proc.popen.pid) if p != proc.popen.pid]


def sweep(url: str, plan: Plan, keys: str | None, tag: str) -> list[WrkResult]:
    env = {"MT_KEYS": keys or "", "MT_RUN": f"{tag}-{time.time_ns()}"}
    run_wrk(url, LUA_SINGLE, plan.concurrencies[0], 1, env=env)  # warm-up: connections, caches, JIT-free paths
    out = []
    for c in plan.concurrencies:
        env["MT_RUN"] = f"{tag}-c{c}-{time.time_ns()}"
        out.append(run_wrk(url, LUA_SINGLE, c, plan.wrk_s, env=env))
        log(f"  {tag} c={c}: {out[-1].rps:.0f} req/s p50 {out[-1].p50_ms:.2f} ms p99 {out[-1].p99_ms:.2f} ms "
            f"non-2xx {out[-1].non_2xx}")
    return out


def profile_worker(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    return subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "100", "-f", "raw",
                             "-o", str(out), "--nonblocking", "--threads"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- P1 and P4 (workers) --------------------------------------------------------------------------------

def run_p1(base: Path, plan: Plan, profile: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"baseline": {}, "memtrace": {}, "arc_batching": {}, "profile": None}
    for workers in (1, 2):
        log(f"P1 baseline, {workers} worker(s)")
        b = BaselineServer(workers)
        try:
            out["baseline"][workers] = sweep(f"{b.url}/api/v1/memories", plan, None, f"base{workers}")
        finally:
            b.stop()
        log(f"P1 memtrace, {workers} worker(s)")
        d = base / f"p1w{workers}"
        arc = ArcLite(d / "arc")
        (d / "mt").mkdir(parents=True)
        (tenant,) = provision_many(d / "mt" / "memtrace.db", ["p1"], arc.url, "db_p1")
        mt = MemtraceServer(d / "mt", workers, env=MT_ENV)
        try:
            out["memtrace"][workers] = sweep(f"{mt.url}/api/v1/memories", plan, tenant.key, f"mt{workers}")
            stats = arc_stats(arc.url)
            out["arc_batching"][workers] = {
                "write_requests": stats["write_requests"], "rows": stats["rows_written"],
                "rows_per_request": stats["rows_written"] / max(1, stats["write_requests"]),
            }
            if profile and workers == 1:
                worker = max(_workers_of(mt))
                prof = base / "p1.spy"
                spy = profile_worker(worker, plan.wrk_s + 1, prof)
                if spy is not None:
                    time.sleep(0.3)
                    run_wrk(f"{mt.url}/api/v1/memories", LUA_SINGLE, plan.concurrencies[-1], plan.wrk_s,
                            env={"MT_KEYS": tenant.key, "MT_RUN": f"prof-{time.time_ns()}"})
                    spy.wait(timeout=60)
                    out["profile"] = _summary(prof)
        finally:
            mt.stop()
            arc.stop()
    return out


def _summary(path: Path) -> str | None:
    if not path.exists():
        return None
    from tools.spy_summary import summarise

    return summarise(path, top=14)


# --- P4 (orgs, memory) ----------------------------------------------------------------------------------

def run_orgs(base: Path, plan: Plan) -> dict[str, Any]:
    log(f"P4 orgs: provisioning {plan.orgs} orgs")
    d = base / "orgs"
    arc = ArcLite(d / "arc")
    (d / "mt").mkdir(parents=True)
    t0 = time.monotonic()
    tenants = provision_many(d / "mt" / "memtrace.db", [f"o{i}" for i in range(plan.orgs)], arc.url, "db_orgs")
    provision_s = time.monotonic() - t0
    mt = MemtraceServer(d / "mt", 1, env=MT_ENV)
    c = 32 if 32 in plan.concurrencies else plan.concurrencies[-1]
    try:
        pids = _workers_of(mt)
        url = f"{mt.url}/api/v1/memories"
        one = tenants[0].key
        all_keys = ",".join(t.key for t in tenants)
        run_wrk(url, LUA_SINGLE, c, 1, env={"MT_KEYS": one, "MT_RUN": f"w1-{time.time_ns()}"})
        r1 = run_wrk(url, LUA_SINGLE, c, plan.wrk_s, env={"MT_KEYS": one, "MT_RUN": f"o1-{time.time_ns()}"})
        time.sleep(2.0)
        rss_1 = rss_kib(pids)
        log(f"  1 org: {r1.rps:.0f} req/s, worker RSS {rss_1} KiB; warming {plan.orgs} keys (argon2 once each)")
        # every key verified once (argon2, ~6 ms of CPU each) and every org written once before measuring;
        # otherwise the measured window pays the first argon2 verify of hundreds of keys
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
        rn = run_wrk(url, LUA_SINGLE, c, plan.wrk_s, env={"MT_KEYS": all_keys, "MT_RUN": f"on-{time.time_ns()}"})
        time.sleep(3.0)  # let every org's buffer flush: the orgs are now idle
        rss_n = rss_kib(pids)
        stats = arc_stats(arc.url)
        log(f"  {plan.orgs} orgs: {rn.rps:.0f} req/s, worker RSS {rss_n} KiB")
        return {"orgs": plan.orgs, "concurrency": c, "one": asdict(r1), "many": asdict(rn), "rss_one_kib": rss_1,
                "rss_many_kib": rss_n, "per_org_kib": (rss_n - rss_1) / max(1, plan.orgs - 1),
                "provision_s": provision_s, "warm_s": warm_s, "arc_requests": stats["write_requests"],
                "arc_rows": stats["rows_written"]}
    finally:
        mt.stop()
        arc.stop()


# --- P2 ----------------------------------------------------------------------------------------------------

def run_p2(base: Path, plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n, size, conc = plan.batch_requests, 1000, plan.batch_concurrency
    for workers in (1, 2):
        log(f"P2 batches of {size}, {workers} worker(s)")
        d = base / f"p2w{workers}"
        arc = ArcLite(d / "arc")
        (d / "mt").mkdir(parents=True)
        (tenant,) = provision_many(d / "mt" / "memtrace.db", ["p2"], arc.url, "db_p2")
        mt = MemtraceServer(d / "mt", workers, env=MT_ENV)
        try:
            run = f"p2w{workers}-{time.time_ns()}"
            direct = direct_bodies(run + "d", tenant.org_id, n, size)
            bodies = batch_bodies(run + "m", n, size)
            warm = direct_bodies(run + "w", tenant.org_id, 2, size)
            dheaders = {"x-arc-database": "db_direct", "content-type": "application/msgpack"}
            send_all(f"{arc.url}/api/v1/write/msgpack", warm, dheaders, conc)
            rd = send_all(f"{arc.url}/api/v1/write/msgpack", direct, dheaders, conc)
            direct_rows_s = n * size / rd.elapsed_s
            before = int(arc_stats(arc.url)["rows_written"])
            mheaders = {"x-api-key": tenant.key, "content-type": "application/json"}
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
            }
            log(f"  direct {direct_rows_s:.0f} rows/s; memtrace accepted {n * size / accepted_s:.0f} rows/s, "
                f"in Arc {n * size / e2e_s:.0f} rows/s")
        finally:
            mt.stop()
            arc.stop()
    return out


# --- P3 ----------------------------------------------------------------------------------------------------

def run_p3(base: Path, plan: Plan) -> dict[str, Any]:
    from memtrace.api.params import list_filter, search_filter
    from memtrace.memory import query
    from memtrace.memory.model import MemoryFilter, SearchRequest
    from memtrace.memory.service import CONTEXT_MAX_ROWS

    log("P3 reads: preloading")
    d = base / "p3"
    arc = ArcLite(d / "arc")
    (d / "mt").mkdir(parents=True)
    (tenant,) = provision_many(d / "mt" / "memtrace.db", ["p3"], arc.url, "db_p3")
    # Reads are measured once the journal's delivered rows have aged out (retention 1 s here instead of 10 s),
    # so both sides read the same rows from Arc; the merge with recent local rows is then empty.
    mt = MemtraceServer(d / "mt", 1, env={**MT_ENV, "MEMTRACE_JOURNAL_RETENTION_S": "1"})
    try:
        run = f"p3-{time.time_ns()}"
        bodies = batch_bodies(run, 10, 1000)
        ctx_items = [{"agent_id": "agent_ctx", "session_id": "sess_ctx", "memory_type": ("episodic", "decision")[i % 2],
                      "event_type": "error" if i % 13 == 0 else "tool_call", "importance": (i % 10) / 10,
                      "content": f"{run} context line {i}: crawled a page and found {i % 7} products"}
                     for i in range(1000)]
        bodies.append(msgspec.json.encode({"memories": ctx_items}))
        headers = {"x-api-key": tenant.key, "content-type": "application/json"}
        res = send_all(f"{mt.url}/api/v1/memories", bodies, headers, 2)
        assert set(res.statuses) == {201}, res.statuses
        wait_delivered(arc.url, 11_000)
        arc_flush(arc.url)
        time.sleep(4.0)  # retention (1 s) + prune interval (2 s)

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
            sample = sequential([mt_call], warmup=0).latencies_ms  # noqa: F841 - keep the connection path warm
            mt_body = msgspec.json.decode(_fetch(mt_call))
            arc_body = msgspec.json.decode(_fetch(arc_call))
            rows_seen["memtrace"] = int(mt_body.get("count", mt_body.get("memory_count", 0)))
            rows_seen["arc"] = int(arc_body.get("row_count", 0))
            out[name] = {"mt_p50_ms": _median(lat_mt), "arc_p50_ms": _median(lat_arc),
                         "mt_p99_ms": _pct(lat_mt, 0.99), "arc_p99_ms": _pct(lat_arc, 0.99),
                         "rows": dict(rows_seen), "n": len(lat_mt)}
            log(f"  {name}: memtrace p50 {out[name]['mt_p50_ms']:.2f} ms, store p50 {out[name]['arc_p50_ms']:.2f} ms "
                f"(rows {dict(rows_seen)})")
        return out
    finally:
        mt.stop()
        arc.stop()


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

def run_locust(base: Path, plan: Plan) -> dict[str, Any]:
    from loadtests.run import run_suite

    log("locust suites (single, batch100, batch1000, mixed): 4 orgs on 2 arclites, 1 worker")
    return run_suite(base / "locust", ["single", "batch100", "batch1000", "mixed"], plan.locust_s,
                     plan.locust_users, n_orgs=4, n_arcs=2, workers=1)


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
        "cpu": cpu, "cores": str(os.cpu_count()), "memory": mem, "kernel": platform.release(),
        "python": platform.python_version(), "granian": granian.__version__,
        "wrk": wrk_v[0] if wrk_v else "?", "loadavg_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def plot(p1: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {("baseline", 1): "C0--", ("baseline", 2): "C0-", ("memtrace", 1): "C3--", ("memtrace", 2): "C3-"}
    for (side, w), style in styles.items():
        runs: list[WrkResult] = p1[side][w]
        xs = [r.connections for r in runs]
        ax1.plot(xs, [r.rps for r in runs], style, marker="o", label=f"{side}, {w} worker{'s' if w > 1 else ''}")
        ax2.plot(xs, [r.p99_ms for r in runs], style, marker="o", label=f"{side}, {w} worker{'s' if w > 1 else ''}")
    for ax, title, ylabel in ((ax1, "Throughput, single-memory POST", "req/s"), (ax2, "p99 latency", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_xticks([r.connections for r in p1["baseline"][1]])
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("concurrent connections (wrk)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _peak(runs: list[WrkResult]) -> WrkResult:
    return max(runs, key=lambda r: r.rps)


def render(results: dict[str, Any], plot_name: str, quick: bool) -> str:
    m, p1, p2, p3, orgs, loc = (results[k] for k in ("machine", "p1", "p2", "p3", "orgs", "locust"))
    lines: list[str] = []
    add = lines.append
    add("# Memtrace performance report")
    add("")
    add(f"Generated by `make perf-report` (`tools/perf_report.py{' --quick' if quick else ''}`) on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, in {results['elapsed_s']:.0f} s. "
        "Every target is a ratio against a ceiling measured in this same run on this same machine; "
        "absolute numbers are shown beside the ratios and are not comparable across machines.")
    add("")
    add("## Summary")
    add("")
    add("| target | measured | goal | |")
    add("|---|---|---|---|")
    p1_rows = {}
    for w in (1, 2):
        bpk, mpk = _peak(p1["baseline"][w]), _peak(p1["memtrace"][w])
        ratio = mpk.rps / bpk.rps
        # p99 compared at the same concurrency (the highest of the sweep, where both are saturated)
        b_hi, m_hi = p1["baseline"][w][-1], p1["memtrace"][w][-1]
        p99r = m_hi.p99_ms / b_hi.p99_ms if b_hi.p99_ms else float("nan")
        p1_rows[w] = (ratio, p99r, bpk, mpk, b_hi, m_hi)
        add(f"| P1 req/s, {w} worker{'s' if w > 1 else ''} (peak of sweep) | **{ratio:.2f}×** "
            f"({mpk.rps:.0f} vs {bpk.rps:.0f} req/s) | ≥ {TARGETS['P1_rps']}× | "
            f"{verdict(ratio >= TARGETS['P1_rps'])} |")
        add(f"| P1 p99 at c={m_hi.connections}, {w} worker{'s' if w > 1 else ''} | **{p99r:.2f}×** "
            f"({m_hi.p99_ms:.1f} vs {b_hi.p99_ms:.1f} ms) | ≤ {TARGETS['P1_p99']}× | "
            f"{verdict(p99r <= TARGETS['P1_p99'])} |")
    for w in (1, 2):
        r = p2[w]
        ratio = r["e2e_rows_s"] / r["direct_rows_s"]
        add(f"| P2 rows/s in Arc, 1,000-memory batches, {w} worker{'s' if w > 1 else ''} | **{ratio:.2f}×** "
            f"({r['e2e_rows_s']:.0f} vs {r['direct_rows_s']:.0f} rows/s; accepted {r['accepted_rows_s']:.0f} "
            f"= {r['accepted_rows_s'] / r['direct_rows_s']:.2f}×) | ≥ {TARGETS['P2']}× | "
            f"{verdict(ratio >= TARGETS['P2'])} |")
    for name, r in p3.items():
        ratio = r["mt_p50_ms"] / r["arc_p50_ms"]
        add(f"| P3 {name} p50 | **{ratio:.2f}×** ({r['mt_p50_ms']:.2f} vs {r['arc_p50_ms']:.2f} ms) | "
            f"≤ {TARGETS['P3']}× | {verdict(ratio <= TARGETS['P3'])} |")
    scale_mt = _peak(p1["memtrace"][2]).rps / _peak(p1["memtrace"][1]).rps
    scale_base = _peak(p1["baseline"][2]).rps / _peak(p1["baseline"][1]).rps
    add(f"| P4 2 workers / 1 worker (memtrace, peak req/s) | **{scale_mt:.2f}×** (baseline app: {scale_base:.2f}×) | "
        f"≥ {TARGETS['P4_workers']}× | {verdict(scale_mt >= TARGETS['P4_workers'])} |")
    org_ratio = orgs["many"]["rps"] / orgs["one"]["rps"]
    add(f"| P4 {orgs['orgs']} active orgs / 1 org (req/s, c={orgs['concurrency']}, 1 worker) | **{org_ratio:.2f}×** "
        f"({orgs['many']['rps']:.0f} vs {orgs['one']['rps']:.0f}) | ≥ {TARGETS['P4_orgs']}× | "
        f"{verdict(org_ratio >= TARGETS['P4_orgs'])} |")
    add(f"| P4 worker RSS per idle org | {orgs['per_org_kib']:.1f} KiB "
        f"({orgs['rss_one_kib'] / 1024:.0f} → {orgs['rss_many_kib'] / 1024:.0f} MiB for {orgs['orgs']} orgs) | "
        "bounded, reported | reported |")
    add("")
    add("Where a target is not met, the hand-written [analysis](ANALYSIS.md) says what the profile of its run showed "
        "and what would close the gap.")
    add("")
    add("## Machine and settings")
    add("")
    for k, v in m.items():
        add(f"- {k}: {v}")
    add(f"- loadavg at the end: {results['loadavg_end']}")
    add("- Everything on 127.0.0.1. The machine is shared with other jobs: expect a few percent of noise, "
        "more on p99.")
    add("- Memtrace: `memtrace serve` (Granian ASGI, uvloop, backpressure 1024), production defaults "
        "(arc.batch_size 1000, arc.flush_interval_ms 500, journal synchronous=FULL) except where noted; "
        "arclite (`python -m memtrace.arclite`, DuckDB) on its own port; data dirs on the local disk.")
    add("- Baseline app: `tools/baseline_app.py`, BlackSheep on Granian with the same options and worker count, "
        "decoding the body into the same `NewMemory` msgspec Struct and answering 201 with it re-encoded.")
    add("- Load generators: **wrk** (Debian package, 1 thread, Lua script `tools/wrk/post_single.lua`: unique "
        "content per request so dedup never answers 409, 50 agents, 200 sessions) for P1/P4; an asyncio aiohttp "
        "client (`tools/loadgen.py`, bodies built before the clock starts) for P2 and P3; **locust** "
        "(FastHttpUser, 1 process) for the scenario suites. wrk uses a fraction of one core, so the server "
        "saturates first; locust is CPU-hungry and its absolute numbers understate the server.")
    add("")
    add(f"## P1 / P4: single-memory POST vs the bare app (wrk, {results['plan']['wrk_s']} s per point)")
    add("")
    add(f"![throughput and p99 vs concurrency]({plot_name})")
    add("")
    add("| workers | conns | baseline req/s | memtrace req/s | ratio | baseline p50 / p99 ms | "
        "memtrace p50 / p99 ms | p99 ratio | memtrace non-2xx |")
    add("|---|---|---|---|---|---|---|---|---|")
    for w in (1, 2):
        for b, mt in zip(p1["baseline"][w], p1["memtrace"][w], strict=True):
            add(f"| {w} | {b.connections} | {b.rps:.0f} | {mt.rps:.0f} | {mt.rps / b.rps:.2f} | "
                f"{b.p50_ms:.2f} / {b.p99_ms:.2f} | {mt.p50_ms:.2f} / {mt.p99_ms:.2f} | "
                f"{mt.p99_ms / b.p99_ms:.2f} | {mt.non_2xx} |")
    add("")
    for w in (1, 2):
        ab = p1["arc_batching"][w]
        add(f"- Batching during the {w}-worker single-POST sweep: {ab['rows']} rows reached arclite in "
            f"{ab['write_requests']} write requests = **{ab['rows_per_request']:.0f} rows per Arc request**.")
    add(f"- {orgs['orgs']} orgs (all bound to one arclite database; org_id keeps them apart): provisioning took "
        f"{orgs['provision_s']:.1f} s; after the run arclite had {orgs['arc_rows']} rows in "
        f"{orgs['arc_requests']} requests. 1 org: {orgs['one']['rps']:.0f} req/s, p99 {orgs['one']['p99_ms']:.1f} ms; "
        f"{orgs['orgs']} orgs: {orgs['many']['rps']:.0f} req/s, p99 {orgs['many']['p99_ms']:.1f} ms "
        f"(every key verified and every org written once in a warm-up before measuring, "
        f"{orgs.get('warm_s', float('nan')):.1f} s).")
    add("")
    add("## P2: batch ingest vs writing the same rows straight to the store")
    add("")
    add(f"{results['plan']['batch_requests']} requests of 1,000 memories, {results['plan']['batch_concurrency']} "
        "at a time, from the same client. Direct: the same rows (built by Memtrace's own `build_rows`, encoded by "
        "`encode_rows`) POSTed as columnar msgpack to the same arclite (another database). Memtrace: JSON batches; "
        "*accepted* is rows/s until the last 201 (journaled, fsynced), *in Arc* is rows/s until arclite counted "
        "every row (the ratio uses this one).")
    add("")
    add("| workers | direct rows/s (p50 ms) | memtrace accepted rows/s | memtrace in-Arc rows/s | ratio | "
        "memtrace p50 / p99 ms | Arc requests for the rows |")
    add("|---|---|---|---|---|---|---|")
    for w in (1, 2):
        r = p2[w]
        add(f"| {w} | {r['direct_rows_s']:.0f} ({r['direct_p50_ms']:.0f}) | {r['accepted_rows_s']:.0f} | "
            f"{r['e2e_rows_s']:.0f} | {r['e2e_rows_s'] / r['direct_rows_s']:.2f} | "
            f"{r['mt_p50_ms']:.0f} / {r['mt_p99_ms']:.0f} | {r['arc_requests']} for {r['rows']} |")
    add("")
    add("## P3: reads vs the store query they run")
    add("")
    add("One request at a time, the two sides interleaved in blocks. The store side sends the exact SQL Memtrace "
        "builds (`memory/query.py`) to arclite and decodes the JSON answer. 11,000 memories preloaded; the journal's "
        "retention was set to 1 s for this stack, so reads find no recent local rows to merge (the steady state of "
        "an org that is not writing). Context reads the 1,000 memories of one session.")
    add("")
    add("| read | memtrace p50 / p99 ms | store p50 / p99 ms | p50 ratio | rows |")
    add("|---|---|---|---|---|")
    for name, r in p3.items():
        add(f"| {name} | {r['mt_p50_ms']:.2f} / {r['mt_p99_ms']:.2f} | {r['arc_p50_ms']:.2f} / {r['arc_p99_ms']:.2f} | "
            f"{r['mt_p50_ms'] / r['arc_p50_ms']:.2f} | {r['rows']} |")
    add("")
    add(f"## Scenario suites (locust, {loc['users']} users, {results['plan']['locust_s']} s each, "
        f"{loc['orgs']} orgs on {loc['arcs']} arclites, 1 worker)")
    add("")
    add("| scenario | req/s | rows/s | p50 ms | p99 ms | failures | rows per Arc request | routing | "
        "read-your-writes |")
    add("|---|---|---|---|---|---|---|---|---|")
    for sc in loc["scenarios"]:
        r, dlv = sc["result"], sc["delivery"]
        t = r["total"]
        per_req = ", ".join(f"{v:.0f}" for v in dlv["rows_per_request"].values())
        ryw = r["ryw"]
        ryw_s = f"{ryw.get('checked', 0) - ryw.get('missed', 0)}/{ryw.get('checked', 0)}" if ryw else "-"
        add(f"| {r['scenario']} | {t.get('rps', 0):.0f} | {r['rows_per_s']:.0f} | {t.get('p50_ms', 0):.0f} | "
            f"{t.get('p99_ms', 0):.0f} | {t.get('failures', 0):.0f} | {per_req} | "
            f"{'ok' if dlv['ok'] else 'BROKEN: ' + str(dlv['misrouted'] or dlv['missing'])} | {ryw_s} |")
    mixed = next((sc["result"] for sc in loc["scenarios"] if sc["result"]["scenario"] == "mixed"), None)
    if mixed:
        add("")
        add("Mixed, per request type: " + "; ".join(
            f"{name.split(' ', 1)[1]} {v['rps']:.0f} req/s p50 {v['p50_ms']:.0f} ms p99 {v['p99_ms']:.0f} ms"
            for name, v in mixed["by_name"].items()))
    add("")
    add("Routing: after each scenario, every org's rows were counted with SQL in every database of both arclites; "
        "`ok` means each org's acknowledged memories are all in its own Arc and database, exactly once, and "
        "nowhere else. Locust percentiles are rounded by locust (2 significant digits).")
    add("")
    if results["p1"].get("profile"):
        add("## Profile of the single-POST path (py-spy, 1 worker, under wrk)")
        add("")
        add("```")
        add(results["p1"]["profile"])
        add("```")
        add("")
    add("## Analysis")
    add("")
    add("Profiles and the reasoning behind them cannot be recomputed by this tool: they are hand-written in "
        "[ANALYSIS.md](ANALYSIS.md), which names the run it refers to. Numbers in this file come from this run only.")
    return "\n".join(lines) + "\n"




def _jsonable(o: Any) -> Any:
    return asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)


def load_results(path: Path) -> dict[str, Any]:
    """Results as written by --json, with the wrk runs turned back into WrkResult and worker keys into ints."""
    results: dict[str, Any] = json.loads(path.read_text())
    p1 = results["p1"]
    for side in ("baseline", "memtrace"):
        p1[side] = {int(w): [WrkResult(**r) for r in runs] for w, runs in p1[side].items()}
    p1["arc_batching"] = {int(w): v for w, v in p1["arc_batching"].items()}
    results["p2"] = {int(w): v for w, v in results["p2"].items()}
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="tiny runs: a smoke test of the tool, not a measurement")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "perf" / "REPORT.md")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--render-from", type=Path, help="re-render the report from a --json file, without running")
    args = p.parse_args()
    plot_path = args.out.with_name("perf_throughput_p99.png")
    if args.render_from:
        results = load_results(args.render_from)
        plot(results["p1"], plot_path)
        args.out.write_text(render(results, plot_path.name, bool(results.get("quick"))))
        log(f"re-rendered {args.out} from {args.render_from}")
        return
    if wrk_available() is None:
        raise SystemExit("wrk is needed for the throughput ratios: apt-get install wrk")
    plan = QUICK if args.quick else FULL
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "plan": asdict(plan)}
    with tempfile.TemporaryDirectory(prefix="memtrace-perf-", dir=os.environ.get("PERF_TMPDIR")) as tmp:
        base = Path(tmp)
        results["p1"] = run_p1(base, plan, profile=not args.no_profile)
        results["orgs"] = run_orgs(base, plan)
        results["p2"] = run_p2(base, plan)
        results["p3"] = run_p3(base, plan)
        results["locust"] = run_locust(base, plan)
    results["elapsed_s"] = time.monotonic() - started
    results["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results["quick"] = args.quick
    plot(results["p1"], plot_path)
    args.out.write_text(render(results, plot_path.name, args.quick))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=_jsonable))
    log(f"wrote {args.out} and {plot_path} in {results['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
