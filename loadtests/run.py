"""Run the locust suites headless against a real stack on 127.0.0.1, then prove batching and routing.

    .venv/bin/python loadtests/run.py [--scenarios single,batch100,batch1000,mixed] [--duration 8]
        [--users 16] [--orgs 4] [--arcs 2] [--workers 1] [--processes 1] [--json out.json]

The stack: `--arcs` arclite instances, Memtrace (`--workers` Granian workers), `--orgs` orgs spread over the
arclites (each org its own database). Each scenario is bounded in time (`--duration`) and in requests
(`--max-requests`). At the end the arclite counters and per-database SQL prove:
- batching: rows per Arc write request (the deliverer sends per-org batches, not one request per memory);
- routing: each org's rows are in its own Arc and database only, exactly as many as were acknowledged.
Only correctness is checked here; speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for p in (REPO, REPO / "tools"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from tools.perfstack import (  # noqa: E402
    ArcLite,
    MemtraceServer,
    Tenant,
    arc_flush,
    arc_query,
    arc_stats,
    provision_many,
)

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
SCENARIOS = {"single": "IngestSingle", "batch100": "IngestBatch100", "batch1000": "IngestBatch1000",
             "mixed": "Mixed"}


@dataclass
class Org:
    tenant: Tenant
    arc: ArcLite


@dataclass
class Stack:
    base: Path
    arcs: list[ArcLite]
    server: MemtraceServer
    orgs: list[Org]
    workers: int

    def stop(self) -> None:
        self.server.stop()
        for arc in self.arcs:
            arc.stop()


def start_stack(base: Path, n_orgs: int = 2, n_arcs: int = 2, workers: int = 1,
                env: dict[str, str] | None = None) -> Stack:
    arcs = [ArcLite(base / f"arc{i}") for i in range(n_arcs)]
    data_dir = base / "memtrace"
    data_dir.mkdir(parents=True, exist_ok=True)
    orgs: list[Org] = []
    for i in range(n_orgs):
        arc = arcs[i % n_arcs]
        (tenant,) = provision_many(data_dir / "memtrace.db", [f"load{i}"], arc.url, f"db_load{i}")
        orgs.append(Org(tenant, arc))
    try:
        server = MemtraceServer(data_dir, workers=workers, env=env)
    except BaseException:
        for arc in arcs:
            arc.stop()
        raise
    return Stack(base, arcs, server, orgs, workers)


@dataclass
class ScenarioResult:
    scenario: str
    users: int
    duration_s: float
    by_name: dict[str, dict[str, float]]
    total: dict[str, float]
    created: Counter[str] = field(default_factory=Counter)
    ryw: Counter[str] = field(default_factory=Counter)
    rows_per_s: float = 0.0
    errors: str = ""


def _num(text: str | None) -> float:
    try:
        return float(text or "nan")
    except ValueError:  # locust writes N/A when a name saw no request
        return float("nan")


def _stats_csv(path: Path) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    by_name: dict[str, dict[str, float]] = {}
    total: dict[str, float] = {}
    with path.open() as f:
        for rec in csv.DictReader(f):
            entry = {
                "requests": _num(rec["Request Count"]),
                "failures": _num(rec["Failure Count"]),
                "rps": _num(rec["Requests/s"]),
                "p50_ms": _num(rec["50%"]),
                "p99_ms": _num(rec["99%"]),
            }
            if rec["Name"] == "Aggregated":
                total = entry
            else:
                by_name[f"{rec['Type']} {rec['Name']}"] = entry
    return by_name, total


def run_scenario(stack: Stack, scenario: str, users: int = 16, duration_s: int = 8, max_requests: int = 200_000,
                 processes: int = 1, ryw_sample: float = 0.05) -> ScenarioResult:
    """One bounded headless locust run; returns locust's stats and the per-org memories acknowledged."""
    work = Path(tempfile.mkdtemp(prefix=f"locust-{scenario}-", dir=stack.base))
    targets = [{"org_id": o.tenant.org_id, "key": o.tenant.key} for o in stack.orgs]
    env = {
        **os.environ,
        "MT_TARGETS": json.dumps(targets),
        "MT_MAX_REQUESTS": str(max(1, max_requests // max(1, processes))),
        "MT_TALLY_DIR": str(work),
        "MT_RUN": f"{scenario}-{time.time_ns()}",
        "MT_RYW_SAMPLE": str(ryw_sample),
    }
    args = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "-u", str(users), "-r", str(users), "-t", f"{duration_s}s", "--stop-timeout", "5",
            "--host", stack.server.url, "--csv", str(work / "run"), "--loglevel", "WARNING",
            "--exit-code-on-error", "0"]
    if processes > 1:
        args += ["--processes", str(processes)]
    args.append(SCENARIOS[scenario])
    started = time.monotonic()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=duration_s + 90, check=False,
                          cwd=work)
    elapsed = time.monotonic() - started
    stats_path = work / "run_stats.csv"
    if proc.returncode != 0 or not stats_path.exists():
        raise RuntimeError(f"locust {scenario} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    by_name, total = _stats_csv(stats_path)
    result = ScenarioResult(scenario, users, min(elapsed, float(duration_s)), by_name, total)
    for tally in work.glob("tally-*.json"):
        data = json.loads(tally.read_text())
        result.created.update(data["created"])
        result.ryw.update(data["ryw"])
    failures_csv = work / "run_failures.csv"
    if failures_csv.exists():
        result.errors = failures_csv.read_text()[:2000]
    # rows/s over locust's own measuring window: successful write requests per second times their size
    # (the tally also counts writes finished after locust stopped measuring, so it is not divided by time)
    for name, entry in by_name.items():
        m = re.search(r"POST /memories \((\d+)\)", name)
        if m and entry["requests"]:
            ok = (entry["requests"] - entry["failures"]) / entry["requests"]
            result.rows_per_s += entry["rps"] * ok * int(m.group(1))
    return result


@dataclass
class DeliveryCheck:
    expected: dict[str, int]
    arc_requests: dict[str, int]  # per arclite url
    arc_rows: dict[str, int]
    rows_per_request: dict[str, float]
    found: dict[str, dict[str, int]]  # org_id -> "arc url/db" -> distinct ids
    misrouted: list[str]
    missing: dict[str, int]
    drain_s: float

    @property
    def ok(self) -> bool:
        return not self.misrouted and not self.missing


def _org_counts(arc: ArcLite, database: str) -> dict[str, int]:
    answer = arc_query(arc.url, database, "SELECT org_id, count(DISTINCT id) AS n FROM events GROUP BY org_id")
    return {str(org): int(n) for org, n in answer.get("data", [])}


def check_delivery(stack: Stack, expected: Counter[str], baseline: dict[str, tuple[int, int]] | None = None,
                   timeout_s: float = 60.0) -> DeliveryCheck:
    """Wait until every acknowledged memory reached an Arc, then count rows per org in every Arc database.

    `expected` counts all memories acknowledged since the stack started, per org. `baseline` (arc url →
    (write requests, rows) at some earlier point) lets the batching figure cover one phase only.
    """
    start = time.monotonic()
    want_rows = sum(expected.values())
    while True:
        total = sum(int(arc_stats(a.url)["rows_written"]) for a in stack.arcs)
        if total >= want_rows or time.monotonic() - start > timeout_s:
            break
        time.sleep(0.1)
    drain_s = time.monotonic() - start
    for arc in stack.arcs:
        arc_flush(arc.url)
    found: dict[str, dict[str, int]] = {}
    arc_requests: dict[str, int] = {}
    arc_rows: dict[str, int] = {}
    per_request: dict[str, float] = {}
    for arc in stack.arcs:
        stats = arc_stats(arc.url)
        req0, rows0 = (baseline or {}).get(arc.url, (0, 0))
        arc_requests[arc.url] = int(stats["write_requests"]) - req0
        arc_rows[arc.url] = int(stats["rows_written"]) - rows0
        per_request[arc.url] = arc_rows[arc.url] / arc_requests[arc.url] if arc_requests[arc.url] else 0.0
        for database in stats.get("by_database", {}):
            for org_id, n in _org_counts(arc, database).items():
                found.setdefault(org_id, {})[f"{arc.url}/{database}"] = n
    home = {o.tenant.org_id: f"{o.arc.url}/{o.tenant.database}" for o in stack.orgs}
    misrouted = [f"{org}: {n} rows in {where} (home {home.get(org)})"
                 for org, places in found.items() for where, n in places.items() if where != home.get(org)]
    missing = {org: want - found.get(org, {}).get(home[org], 0)
               for org, want in expected.items() if found.get(org, {}).get(home[org], 0) != want}
    return DeliveryCheck(dict(expected), arc_requests, arc_rows, per_request, found, misrouted, missing, drain_s)


def arc_counters(stack: Stack) -> dict[str, tuple[int, int]]:
    out = {}
    for arc in stack.arcs:
        s = arc_stats(arc.url)
        out[arc.url] = (int(s["write_requests"]), int(s["rows_written"]))
    return out


def run_suite(base: Path, scenarios: list[str], duration_s: int, users: int, n_orgs: int, n_arcs: int,
              workers: int, processes: int = 1, max_requests: int = 200_000,
              ryw_sample: float = 0.2) -> dict[str, Any]:
    stack = start_stack(base, n_orgs, n_arcs, workers)
    try:
        results = []
        created: Counter[str] = Counter()
        for name in scenarios:
            before = arc_counters(stack)
            res = run_scenario(stack, name, users, duration_s, max_requests, processes, ryw_sample)
            created.update(res.created)
            check = check_delivery(stack, created, before)
            results.append({"result": res.__dict__, "delivery": {**check.__dict__, "ok": check.ok}})
        return {"workers": workers, "orgs": n_orgs, "arcs": n_arcs, "users": users, "processes": processes,
                "scenarios": results}
    finally:
        stack.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--scenarios", default="single,batch100,batch1000,mixed")
    p.add_argument("--duration", type=int, default=8)
    p.add_argument("--users", type=int, default=16)
    p.add_argument("--orgs", type=int, default=4)
    p.add_argument("--arcs", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="memtrace-load-") as tmp:
        out = run_suite(Path(tmp), args.scenarios.split(","), args.duration, args.users, args.orgs, args.arcs,
                        args.workers, args.processes, args.max_requests)
    text = json.dumps(out, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    for sc in out["scenarios"]:
        r, d = sc["result"], sc["delivery"]
        t = r["total"]
        print(f"{r['scenario']:>10}: {t.get('rps', 0):8.1f} req/s  {r['rows_per_s']:9.1f} rows/s  "
              f"p50 {t.get('p50_ms', 0):6.1f} ms  p99 {t.get('p99_ms', 0):6.1f} ms  "
              f"failures {t.get('failures', 0):.0f}  "
              f"rows/Arc request {d['rows_per_request']}  routing {'ok' if d['ok'] else 'BROKEN'}  ryw {r['ryw']}")
    if not all(sc["delivery"]["ok"] for sc in out["scenarios"]):
        raise SystemExit("batching/routing check failed")


if __name__ == "__main__":
    main()
