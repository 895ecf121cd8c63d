"""Process and measurement helpers shared by the perf tools and the load-test suite.

Everything listens on 127.0.0.1 only. Processes come from `tests/procs.py` (arclite, `memtrace serve`)
or are started the same way (the baseline app). Nothing here asserts timing; it only measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.procs import ArcLite as ArcLite  # noqa: E402 - re-exported
from tests.procs import MemtraceServer as MemtraceServer  # noqa: E402
from tests.procs import Proc as Proc  # noqa: E402
from tests.procs import free_port as free_port  # noqa: E402
from tests.provision import Tenant as Tenant  # noqa: E402
from tests.provision import provision as provision  # noqa: E402

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


async def _provision_many(db: Path, names: Sequence[str], arc_url: str, database: str,
                          own_db: bool) -> list[Tenant]:
    from memtrace.metadata.api_keys import ApiKeys
    from memtrace.metadata.arc_instances import ArcInstances
    from memtrace.metadata.db import open_metadata
    from memtrace.metadata.orgs import Orgs

    metadata = await open_metadata(db)
    out: list[Tenant] = []
    try:
        for i, name in enumerate(names):
            org = await Orgs(metadata).create(name)
            db_name = f"{database}_{i}" if own_db else database
            await ArcInstances(metadata).upsert(org.id, arc_url, db_name, "events")
            _, key = await ApiKeys(metadata).create(org.id, f"{name}-key", "read,write")
            out.append(Tenant(org.id, key, db_name))
    finally:
        await metadata.close()
    return out


def provision_many(db: Path, names: Sequence[str], arc_url: str, database: str, own_db: bool = False) -> list[Tenant]:
    """Many orgs in one metadata connection, bound to one Arc: all to `database` (org_id keeps them apart),
    or with `own_db` each to its own database `<database>_<i>` (the common production layout)."""
    return asyncio.run(_provision_many(db, names, arc_url, database, own_db))


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


def rss_each_kib(pids: Sequence[int]) -> dict[int, int]:
    """VmRSS per live process (KiB); processes that are gone are left out."""
    out = {}
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
            if m:
                out[pid] = int(m.group(1))
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


def stat_ticks(stat_line: str) -> int:
    """utime + stime (clock ticks) from one /proc/<pid>/stat line; the name field may hold spaces and ')'."""
    fields = stat_line.rsplit(")", 1)[1].split()
    # after the name: state(0) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(11) stime(12)
    return int(fields[11]) + int(fields[12])


def cpu_ticks(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += stat_ticks(Path(f"/proc/{pid}/stat").read_text())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


CLK_TCK = os.sysconf("SC_CLK_TCK")
MAIN_THREAD = "main (event loop)"


def thread_ticks(pid: int) -> dict[str, int]:
    """CPU ticks per thread of one process, summed by OS thread name (Memtrace names its journal threads);
    the main thread, which runs the event loop in a Granian worker, is MAIN_THREAD."""
    out: dict[str, int] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return out
    for task in tasks:
        try:
            ticks = stat_ticks((task / "stat").read_text())
            name = (task / "comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        label = MAIN_THREAD if task.name == str(pid) else name
        out[label] = out.get(label, 0) + ticks
    return out


def cores_used(ticks: int, wall_s: float, hz: int = CLK_TCK) -> float:
    """CPU time (ticks) over wall time: how many cores a side kept busy on average."""
    return ticks / hz / wall_s if wall_s > 0 else 0.0


class CpuMeter:
    """CPU use of named process groups (a leader pid each: its whole group counts) over one interval.

    `self_as` names the side this Python process is (the in-process aiohttp load generator), `children_as`
    the side of child processes reaped inside the interval (wrk: its ticks are gone from /proc once it exits,
    so they are taken from getrusage(RUSAGE_CHILDREN)).
    """

    def __init__(self, groups: dict[str, int], self_as: str | None = None, children_as: str | None = None,
                 threads_of: int | None = None):
        self.groups, self.self_as, self.children_as = groups, self_as, children_as
        self.threads_of = threads_of
        self.cores: dict[str, float] = {}
        self.threads: dict[str, float] = {}  # cores per thread name of process `threads_of`

    def _sample(self) -> dict[str, float]:
        out = {name: float(cpu_ticks(group_pids(pid))) / CLK_TCK for name, pid in self.groups.items()}
        if self.self_as:
            out[self.self_as] = out.get(self.self_as, 0.0) + time.process_time()
        if self.children_as:
            ru = resource.getrusage(resource.RUSAGE_CHILDREN)
            out[self.children_as] = out.get(self.children_as, 0.0) + ru.ru_utime + ru.ru_stime
        return out

    def __enter__(self) -> CpuMeter:
        self._t0, self._s0 = time.monotonic(), self._sample()
        self._th0 = thread_ticks(self.threads_of) if self.threads_of else {}
        return self

    def __exit__(self, *exc: object) -> None:
        s1, wall = self._sample(), time.monotonic() - self._t0
        th1 = thread_ticks(self.threads_of) if self.threads_of else {}
        self.cores = {k: max(0.0, s1[k] - self._s0.get(k, 0.0)) / wall for k in s1} if wall > 0 else {}
        if wall > 0:
            self.threads = {k: max(0, v - self._th0.get(k, 0)) / CLK_TCK / wall for k, v in th1.items()}


# --- cores: who runs where -----------------------------------------------------------------------------

@dataclass(frozen=True)
class CpuLayout:
    """Cores for the load generator and for the servers (Granian workers + arclite); `pinned` when disjoint."""

    load: tuple[int, ...]
    servers: tuple[int, ...]
    pinned: bool

    @property
    def wrk_threads(self) -> int:
        return max(1, len(self.load))


def cpu_layout(cpus: Sequence[int], min_to_pin: int = 4) -> CpuLayout:
    """With at least `min_to_pin` cores: a quarter (at least one) for the load generator, the rest for the
    servers, disjoint. Fewer cores: everything shares every core, and the load generator counts as one core."""
    cpus = tuple(sorted(cpus))
    if len(cpus) < min_to_pin:
        return CpuLayout(load=cpus[:1], servers=cpus, pinned=False)
    n_load = max(1, len(cpus) // 4)
    return CpuLayout(load=cpus[:n_load], servers=cpus[n_load:], pinned=True)


def worker_sweep(cores: int, chosen: Sequence[int] | None = None) -> list[int]:
    """Worker counts to measure: `chosen` if given, else 1, 2, 4 … up to `cores`, and `cores` itself."""
    if chosen:
        return sorted({w for w in chosen if w >= 1})
    out, w = [], 1
    while w <= max(1, cores):
        out.append(w)
        w *= 2
    if out[-1] != max(1, cores):
        out.append(cores)
    return out


@contextlib.contextmanager
def affinity(cpus: Sequence[int] | None) -> Iterator[None]:
    """Run the block with this process on `cpus`: processes started inside inherit them (None: unchanged)."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class Sampler:
    """Calls `fn()` every `interval_s` in a thread; the values with their time since start."""

    def __init__(self, fn: Any, interval_s: float):
        self.fn, self.interval_s = fn, interval_s
        self.samples: list[tuple[float, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        while True:
            self.samples.append((time.monotonic() - t0, self.fn()))
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


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
    threads: int = 1
    cpu: dict[str, float] = field(default_factory=dict)  # cores used per side during the run
    thread_cpu: dict[str, float] = field(default_factory=dict)  # cores per thread of one worker, when asked


def wrk_available() -> str | None:
    return shutil.which("wrk")


def run_wrk(url: str, lua: Path, connections: int, duration_s: int, threads: int = 1,
            env: dict[str, str] | None = None, timeout_s: int = 10, cpus: Sequence[int] | None = None,
            meter: dict[str, int] | None = None, threads_of: int | None = None) -> WrkResult:
    """One bounded wrk run (`--latency`), parsed. Status counts come from the Lua `done()` summary.

    `cpus`: pin wrk there. `meter`: process groups (name → leader pid) whose CPU use is measured over the run,
    with wrk's own as "load". `threads_of`: a worker pid whose CPU is also measured per thread."""
    _check_loopback(url)
    exe = wrk_available()
    if exe is None:
        raise RuntimeError("wrk not found: apt-get install wrk (Debian package)")
    threads = max(1, min(threads, connections))
    args = [exe, "-t", str(threads), "-c", str(connections), "-d", f"{duration_s}s", "--latency",
            "--timeout", f"{timeout_s}s", "-s", str(lua), url]
    if cpus:
        args = ["taskset", "-c", ",".join(map(str, cpus)), *args]
    with CpuMeter(meter or {}, children_as="load", threads_of=threads_of) as cpu:
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
        threads=threads,
        cpu=cpu.cores,
        thread_cpu=cpu.threads,
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


SOAK_MIN_WINDOW_S = 600.0
"""A verdict on memory growth needs at least this long after warm-up: a slope over 45 s says nothing."""


def soak_stats(samples: Sequence[tuple[float, int]], warmup_s: float, tolerance_pct: float,
               min_window_s: float = SOAK_MIN_WINDOW_S) -> dict[str, Any]:
    """RSS samples (seconds, KiB) of a soak: start/end/max, the slope after warm-up (least squares, KiB/min),
    `judged`: the samples after warm-up span at least `min_window_s`, and `bounded`: judged, and growth after
    warm-up (the highest sample over the first one past warm-up) within `tolerance_pct` of that first one."""
    if not samples:
        raise ValueError("no samples")
    values = [v for _, v in samples]
    post = [(t, v) for t, v in samples if t >= warmup_s]
    if len(post) < 2:
        post = list(samples[-2:]) if len(samples) >= 2 else list(samples)
    ref = post[0][1]
    growth_pct = (max(v for _, v in post) - ref) / ref * 100 if ref else 0.0
    slope = 0.0
    if len(post) >= 2:
        mt = sum(t for t, _ in post) / len(post)
        mv = sum(v for _, v in post) / len(post)
        var = sum((t - mt) ** 2 for t, _ in post)
        slope = sum((t - mt) * (v - mv) for t, v in post) / var * 60 if var else 0.0
    window = post[-1][0] - post[0][0]
    judged = window >= min_window_s
    return {"start_kib": values[0], "end_kib": values[-1], "max_kib": max(values), "after_warmup_kib": ref,
            "growth_pct": growth_pct, "slope_kib_per_min": slope, "warmup_s": warmup_s,
            "tolerance_pct": tolerance_pct, "window_s": window, "min_window_s": min_window_s, "judged": judged,
            "bounded": judged and growth_pct <= tolerance_pct, "n_samples": len(samples)}
