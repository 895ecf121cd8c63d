"""Process and measurement helpers shared by the perf tools and the load-test suite.

Everything listens on 127.0.0.1 only. Processes come from `tests/procs.py` (arclite, `memtrace serve`)
or are started the same way (the baseline app). Nothing here asserts timing; it only measures.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.procs import ArcLite, MemtraceServer, Proc, free_port  # noqa: E402, F401 - re-exported
from tests.provision import Tenant, provision  # noqa: E402, F401 - re-exported

LOOPBACK = "127.0.0.1"


def _check_loopback(url: str) -> None:
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError(f"perf tools talk to {LOOPBACK} only, got {url}")


def http_json(url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 30.0) -> Any:
    _check_loopback(url)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(  # noqa: S310 - loopback only (checked)
        url, data=data, headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only (checked)
        raw = resp.read()
    return json.loads(raw) if raw else None


def arc_stats(arc_url: str) -> dict[str, Any]:
    """arclite's write counters: requests and rows, in total and per database."""
    return dict(http_json(f"{arc_url}/api/v1/arclite/stats"))


def arc_query(arc_url: str, database: str, sql: str) -> dict[str, Any]:
    return dict(http_json(f"{arc_url}/api/v1/query", {"sql": sql}, {"x-arc-database": database}))


def arc_flush(arc_url: str) -> None:
    _check_loopback(arc_url)
    req = urllib.request.Request(  # noqa: S310 - loopback only (checked)
        f"{arc_url}/api/v1/write/line-protocol/flush", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30):  # noqa: S310 - loopback only (checked)
        pass


class BaselineServer(Proc):
    """tools/baseline_app.py under Granian with the worker settings `memtrace serve` uses."""

    def __init__(self, workers: int = 1, port: int | None = None):
        self.port = port or free_port()
        args = [sys.executable, str(REPO / "tools" / "baseline_app.py"), "--host", LOOPBACK,
                "--port", str(self.port), "--workers", str(workers)]
        super().__init__(args)
        self.wait_ready(f"{self.url}/health")

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


async def _provision_many(db: Path, names: Sequence[str], arc_url: str, database: str) -> list[Tenant]:
    from memtrace.metadata.api_keys import ApiKeys
    from memtrace.metadata.arc_instances import ArcInstances
    from memtrace.metadata.db import open_metadata
    from memtrace.metadata.orgs import Orgs

    metadata = await open_metadata(db)
    out: list[Tenant] = []
    try:
        for name in names:
            org = await Orgs(metadata).create(name)
            await ArcInstances(metadata).upsert(org.id, arc_url, database, "events")
            _, key = await ApiKeys(metadata).create(org.id, f"{name}-key", "read,write")
            out.append(Tenant(org.id, key, database))
    finally:
        await metadata.close()
    return out


def provision_many(db: Path, names: Sequence[str], arc_url: str, database: str) -> list[Tenant]:
    """Many orgs in one metadata connection, all bound to `database` of one Arc (org_id keeps them apart)."""
    return asyncio.run(_provision_many(db, names, arc_url, database))


def group_pids(pid: int) -> list[int]:
    """The process `pid` and every process in its process group (Granian's workers)."""
    pgid = os.getpgid(pid)
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    out.append(int(entry.name))
            except ProcessLookupError:
                continue
    return out


def rss_kib(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
        if m:
            total += int(m.group(1))
    return total


def cpu_ticks(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(parts[11]) + int(parts[12])  # utime + stime
    return total


# --- wrk ---------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass
class WrkResult:
    connections: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


def wrk_available() -> str | None:
    return shutil.which("wrk")


def run_wrk(url: str, lua: Path, connections: int, duration_s: int, threads: int = 1,
            env: dict[str, str] | None = None, timeout_s: int = 10) -> WrkResult:
    """One bounded wrk run (`--latency`), parsed. Status counts come from the Lua `done()` summary."""
    _check_loopback(url)
    exe = wrk_available()
    if exe is None:
        raise RuntimeError("wrk not found: apt-get install wrk (Debian package)")
    threads = max(1, min(threads, connections))
    args = [exe, "-t", str(threads), "-c", str(connections), "-d", f"{duration_s}s", "--latency",
            "--timeout", f"{timeout_s}s", "-s", str(lua), url]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=duration_s + 60,
                          env={**os.environ, **(env or {})}, check=False)
    out = proc.stdout
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr}\n{out}")
    lat = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M))
    m_req = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    m_rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not (m_req and m_rps and lat):
        raise RuntimeError(f"unreadable wrk output:\n{out}\n{proc.stderr}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    statuses = {k: int(v) for k, v in re.findall(r"^status (\d+): (\d+)$", out, re.M)}
    return WrkResult(
        connections=connections,
        duration_s=float(duration_s),
        requests=int(m_req.group(1)),
        rps=float(m_rps.group(1)),
        p50_ms=_ms(lat["50"]),
        p90_ms=_ms(lat["90"]),
        p99_ms=_ms(lat["99"]),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(int(x) for x in sock.groups()) if sock else 0,
        statuses=statuses,
    )


def wait_delivered(arc_url: str, rows: int, database: str | None = None, timeout: float = 120.0) -> float:
    """Block until arclite counts at least `rows` rows written (in `database` when given); time waited."""
    start = time.monotonic()
    while True:
        stats = arc_stats(arc_url)
        if database is None:
            have = int(stats["rows_written"])
        else:
            have = sum(stats.get("by_database", {}).get(database, {}).get("rows", {}).values())
        if have >= rows:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"only {have} of {rows} rows reached {arc_url} in {timeout}s")
        time.sleep(0.05)
